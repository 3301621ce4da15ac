"""Speed-ups: work moto repeats on every request, done once or not at all.

None of them changes what a request answers (the endpoint tests run with them).

- The list of moto's service modules (read from disk), each response class's method names
  (found by introspection), CamelCase-to-snake_case names, the service behind a host
  name, and the parse of an UpdateExpression (twice per UpdateItem; the tree is only
  read: the validator works on its own copy) are computed once.
- A DynamoDB projection of top-level attributes copies just those attributes instead of
  converting the whole item once per projected path; an item is measured once as it is
  built, not once per attribute; PutItem no longer converts the item it stored to JSON
  only to drop it; attribute values are parsed and serialized directly
  (`localruntime.attributevalues`) rather than by walking the model member by member.
- Random ids and receipt handles are drawn a string at a time rather than a character
  at a time. A service's backend for an account is looked up without moto's global lock
  once it exists.
- Requests run in moto one at a time (`serialized`); a long poll gives its turn up while
  it waits.
"""

from __future__ import annotations

import functools
import string
import sys
import threading
from types import ModuleType
from typing import Any

from localruntime import attributevalues
from localruntime.motoguard import replaced


def _replace_function(module: ModuleType, name: str, replacement: Any) -> None:
    """Swap a function for every moto module that imported it, loaded now or later."""
    original = getattr(module, name)
    for loaded in list(sys.modules.values()):
        if (getattr(loaded, "__name__", "").startswith("moto")
                and getattr(loaded, name, None) is original):
            setattr(loaded, name, replacement)


def _random_string(self: Any, length: int = 20, include_digits: bool = True,
                   lower_case: bool = False) -> str:
    """MotoRandom.get_random_string, one draw per string instead of one per character."""
    pool = string.ascii_letters + (string.digits if include_digits else "")
    text = "".join(self.choices(pool, k=length))
    return text.lower() if lower_case else text


ITEM_SIZE_LIMIT = 405_000  # what moto's LimitedSizeDict allows


def _item_init(self: Any, hash_key: Any, range_key: Any, attrs: dict[str, Any]) -> None:
    """moto's Item.__init__ with a running size total: moto re-measures every attribute
    already set each time it sets one (quadratic in the number of attributes)."""
    from moto.dynamodb.models import dynamo_type

    self.hash_key = hash_key
    self.range_key = range_key
    self.attrs = dynamo_type.LimitedSizeDict()
    total = 0
    for key, value in attrs.items():
        converted = dynamo_type.DynamoType(value)
        total += dynamo_type.bytesize(key) + converted.size()
        if total > ITEM_SIZE_LIMIT:
            raise dynamo_type.ItemSizeTooLarge
        dict.__setitem__(self.attrs, key, converted)


def _patch_repeated_work() -> None:
    from moto import backends
    from moto.core import base_backend, responses, utils
    from moto.dynamodb.models import dynamo_type
    from moto.dynamodb.parsing import expressions
    from moto.moto_api._internal import mock_random as moto_random_instance
    from moto.moto_api._internal import moto_random
    from moto.moto_server import werkzeug_app
    from moto.sqs import models as _sqs_models  # noqa: F401 - loaded so its import is swapped
    from moto.sqs import utils as sqs_utils

    replaced(backends, "list_of_moto_modules", ())
    replaced(responses, "method_names_from_class", ("clazz",))
    replaced(utils, "camelcase_to_underscores", ("argument",))
    replaced(moto_random.MotoRandom, "get_random_string",
             ("self", "length", "include_digits", "lower_case"))
    replaced(sqs_utils, "generate_receipt_handle", ())
    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules
    responses.method_names_from_class = functools.cache(responses.method_names_from_class)
    _replace_function(utils, "camelcase_to_underscores",
                      functools.lru_cache(maxsize=4096)(utils.camelcase_to_underscores))
    moto_random.MotoRandom.get_random_string = _random_string
    _replace_function(sqs_utils, "generate_receipt_handle",
                      lambda: "".join(moto_random_instance.choices(string.ascii_lowercase, k=185)))

    dispatcher = werkzeug_app.DomainDispatcherApplication
    replaced(dispatcher, "get_backend_for_host", ("self", "host"))
    dispatcher.get_backend_for_host = functools.lru_cache(maxsize=256)(
        dispatcher.get_backend_for_host)

    item_class = dynamo_type.Item
    replaced(item_class, "project", ("self", "projection_expressions"))
    replaced(item_class, "__init__", ("self", "hash_key", "range_key", "attrs"))

    def project(self: Any, projection_expressions: list[list[str]]) -> Any:
        if all(len(path) == 1 and "[" not in path[0] for path in projection_expressions):
            # Top-level attributes only: the projection is read, never changed.
            return item_class(hash_key=self.hash_key, range_key=self.range_key,
                              attrs={path[0]: self.attrs[path[0]]
                                     for path in projection_expressions
                                     if path[0] in self.attrs})
        regular = self.to_regular_json()
        result: dict[str, Any] = {}
        for expression in projection_expressions:
            dynamo_type.merge_dicts(result, dynamo_type.find_nested_key(expression, regular))
        return item_class(hash_key=self.hash_key, range_key=self.range_key,
                          attrs=dynamo_type.serializer.serialize(result)["M"])

    item_class.project = project
    item_class.__init__ = _item_init

    parser = expressions.UpdateExpressionParser
    replaced(parser, "make", ("expression_str",))
    parser.make = classmethod(functools.lru_cache(maxsize=512)(parser.make.__func__))

    original_getitem = replaced(base_backend.BackendDict, "__getitem__", ("self", "account_id"))

    def backend_for_account(self: Any, account_id: str) -> Any:
        # An account's backend, once made, stays until a reset empties the whole dict:
        # no need to take moto's global lock on every request just to find it.
        if dict.__contains__(self, account_id):
            return dict.__getitem__(self, account_id)
        return original_getitem(self, account_id)

    base_backend.BackendDict.__getitem__ = backend_for_account


def _is_attribute_value(shape: Any) -> bool:
    return shape.name == "AttributeValue" and tuple(shape.members) == attributevalues.MEMBERS


def _patch_attribute_values() -> None:
    from moto.core import parse, serialize

    original_serialize = replaced(serialize.BaseJSONSerializer, "_serialize_type_structure",
                                  ("self", "serialized", "value", "shape", "key"))

    def serialize_structure(self: Any, serialized: Any, value: Any, shape: Any,
                            key: str) -> None:
        if (key and _is_attribute_value(shape)
                and not getattr(self._value_picker, "response_transformers", None)):
            try:
                dumped = attributevalues.dump(value, self._base64)
            except attributevalues.NotPlain:
                pass
            else:
                self._default_serialize(serialized, dumped, shape, key)
                return
        original_serialize(self, serialized, value, shape, key)

    serialize.BaseJSONSerializer._serialize_type_structure = serialize_structure

    original_parse = replaced(parse.BaseJSONParser, "_parse_structure", ("self", "shape", "value"))

    def parse_structure(self: Any, shape: Any, value: Any) -> Any:
        if _is_attribute_value(shape):
            try:
                return attributevalues.load(value, self._blob_parser)
            except attributevalues.NotPlain:
                pass
        return original_parse(self, shape, value)

    parse.BaseJSONParser._parse_structure = parse_structure


class _UnreadItem:
    """A stored item whose JSON form nobody reads."""

    def __init__(self, item: Any) -> None:
        self._item = item

    def to_json(self, root_attr_name: str = "Attributes") -> dict[str, Any]:
        return {root_attr_name: {}}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._item, name)


def _patch_put_item_answer() -> None:
    """PutItem converts the item it stored to JSON (a deep copy of every nested value) and
    then drops it: it answers with the old item or with nothing. Skip that conversion."""
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.responses import DynamoHandler

    in_put_item = threading.local()
    handler_put_item = replaced(DynamoHandler, "put_item", ("self",))
    backend_put_item = replaced(DynamoDBBackend, "put_item", (
        "self", "table_name", "item_attrs", "expected", "condition_expression",
        "expression_attribute_names", "expression_attribute_values", "overwrite",
        "return_values_on_condition_check_failure"))

    def answer_put_item(self: Any) -> Any:
        in_put_item.active = True
        try:
            return handler_put_item(self)
        finally:
            in_put_item.active = False

    def store_item(self: Any, *args: Any, **kwargs: Any) -> Any:
        item = backend_put_item(self, *args, **kwargs)
        return _UnreadItem(item) if getattr(in_put_item, "active", False) else item

    DynamoHandler.put_item = answer_put_item
    DynamoDBBackend.put_item = store_item


APP_LOCK = threading.Lock()
_turn = threading.local()


def serialized(application: Any) -> Any:
    """Run one request at a time inside moto.

    moto is pure Python, so threads running requests side by side get no parallelism from
    the interpreter lock, only its hand-overs: every few milliseconds a request is
    suspended for another, and each takes longer the more there are. In turn, each runs
    to the end. A long poll (ReceiveMessage waiting for messages) gives its turn up while
    it waits (see `_patch_long_polls`)."""

    def call(environ: dict[str, Any], start_response: Any) -> Any:
        with APP_LOCK:
            _turn.held = True
            try:
                return list(application(environ, start_response))
            finally:
                _turn.held = False

    return call


def _patch_long_polls() -> None:
    from moto.sqs.models import Queue

    original = replaced(Queue, "wait_for_messages", ("self", "timeout"))

    def wait_for_messages(self: Any, timeout: int) -> None:
        if not getattr(_turn, "held", False):
            original(self, timeout)
            return
        _turn.held = False
        APP_LOCK.release()
        try:
            original(self, timeout)
        finally:
            APP_LOCK.acquire()
            _turn.held = True

    Queue.wait_for_messages = wait_for_messages


def apply() -> None:
    _patch_repeated_work()
    _patch_long_polls()
    _patch_attribute_values()
    _patch_put_item_answer()
