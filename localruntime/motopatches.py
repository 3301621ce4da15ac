"""Adjustments to moto, applied in the endpoint process before it serves requests.

- S3 accepts notification filter rule names in any case (`Prefix`, as Chalice sends them).
- S3 events carry `versionId` (versioned buckets) and a `sequencer`, as AWS sends them.
- Work moto repeats on every request is done once: the list of its service modules
  (read from disk), each response class's method names (found by introspection),
  CamelCase-to-snake_case names, the service behind a host name, and the parse of an
  UpdateExpression (twice per UpdateItem; the tree is only read: the validator works on
  its own copy). A DynamoDB projection of top-level attributes copies just those
  attributes instead of converting the whole item once per projected path. Random ids
  and receipt handles are drawn a string at a time rather than a character at a time.
  A DynamoDB item is measured once as it is built, not once per attribute. A service's
  backend for an account is looked up without moto's global lock once it exists. DynamoDB
  attribute values are parsed and serialized directly (`localruntime.attributevalues`)
  rather than by walking the model member by member. PutItem no longer converts the item
  it stored to JSON only to drop it.
- A bucket policy's `aws:SecureTransport` condition is evaluated (loopback counts as TLS).
- Lambda's ListEventSourceMappings filters by function name or ARN alike, as AWS does.
- Requests run in moto one at a time (`serialized`); a long poll gives its turn up while
  it waits.
- moto never runs a Lambda function: S3 notifications that target a function and SQS
  event source mappings are recorded but invoke nothing. The local runtime runs the
  handlers itself, from queues it polls.
"""

from __future__ import annotations

import functools
import itertools
import re
import string
import sys
import threading
import time
from types import ModuleType
from typing import Any
from urllib.parse import quote_plus

from localruntime import attributevalues

_FILTER_RULE_NAME = re.compile(r"<Name>\s*(prefix|suffix)\s*</Name>", re.IGNORECASE)
_sequence = itertools.count()


def normalise_filter_rule_names(body: str | bytes) -> str | bytes:
    """Lower-case `<Name>Prefix</Name>` / `<Name>Suffix</Name>` in a notification configuration."""
    if isinstance(body, bytes):
        text = body.decode("utf-8")
        return _FILTER_RULE_NAME.sub(lambda m: f"<Name>{m.group(1).lower()}</Name>", text).encode()
    return _FILTER_RULE_NAME.sub(lambda m: f"<Name>{m.group(1).lower()}</Name>", body)


def next_sequencer() -> str:
    """A hex string that sorts after every earlier one, like S3's `sequencer`."""
    return f"{time.time_ns():016X}{next(_sequence) % 0x10000:04X}"


def function_name_of(name_or_arn: str) -> str:
    """`name` from `name`, `arn:...:function:name` or `arn:...:function:name:qualifier`."""
    if ":function:" in name_or_arn:
        return name_or_arn.split(":function:", 1)[1].split(":", 1)[0]
    return name_or_arn


def _patch_notification_filters() -> None:
    from moto.s3.responses import S3Response

    original = S3Response._notification_config_from_body

    def notification_config_from_body(self: Any) -> dict[str, Any]:
        if self.body:
            self.body = normalise_filter_rule_names(self.body)
        return original(self)

    S3Response._notification_config_from_body = notification_config_from_body


def _patch_s3_event_shape() -> None:
    from moto.s3 import notifications

    original = notifications._get_s3_event

    def get_s3_event(event_name: str, bucket: Any, key: Any,
                     notification_id: str) -> dict[str, Any]:
        event = original(event_name, bucket, key, notification_id)
        s3_object = event["Records"][0]["s3"]["object"]
        s3_object["key"] = quote_plus(key.name, safe="/")
        version_id = getattr(key, "version_id", None)
        if version_id and version_id != "null":
            s3_object["versionId"] = version_id
        s3_object["sequencer"] = next_sequencer()
        return event

    notifications._get_s3_event = get_s3_event


def _patch_lambda_invocations() -> None:
    from moto.awslambda.models import LambdaBackend
    from moto.s3 import notifications
    from moto.sqs.models import sqs_backends

    def invoke_nothing(account_id: str, event_body: Any, fn_arn: str, region_name: str) -> None:
        return None

    notifications._invoke_awslambda = invoke_nothing

    original_create = LambdaBackend.create_event_source_mapping

    def create_event_source_mapping(self: Any, spec: dict[str, Any]) -> Any:
        esm = original_create(self, spec)
        for queue in sqs_backends[self.account_id][self.region_name].queues.values():
            queue.lambda_event_source_mappings.pop(esm.function_arn, None)
        return esm

    LambdaBackend.create_event_source_mapping = create_event_source_mapping

    original_list = LambdaBackend.list_event_source_mappings

    def list_event_source_mappings(self: Any, event_source_arn: str,
                                   function_name: str) -> list[Any]:
        mappings = original_list(self, event_source_arn, None)
        if not function_name:
            return list(mappings)
        wanted = function_name_of(function_name)
        return [m for m in mappings if function_name_of(m.function_arn) == wanted]

    LambdaBackend.list_event_source_mappings = list_event_source_mappings


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

    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules
    responses.method_names_from_class = functools.cache(responses.method_names_from_class)
    _replace_function(utils, "camelcase_to_underscores",
                      functools.lru_cache(maxsize=4096)(utils.camelcase_to_underscores))
    moto_random.MotoRandom.get_random_string = _random_string
    _replace_function(sqs_utils, "generate_receipt_handle",
                      lambda: "".join(moto_random_instance.choices(string.ascii_lowercase, k=185)))

    dispatcher = werkzeug_app.DomainDispatcherApplication
    dispatcher.get_backend_for_host = functools.lru_cache(maxsize=256)(
        dispatcher.get_backend_for_host)

    item_class = dynamo_type.Item

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
    parser.make = classmethod(functools.lru_cache(maxsize=512)(parser.make.__func__))

    original_getitem = base_backend.BackendDict.__getitem__

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

    original_serialize = serialize.BaseJSONSerializer._serialize_type_structure

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

    original_parse = parse.BaseJSONParser._parse_structure

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
    handler_put_item = DynamoHandler.put_item
    backend_put_item = DynamoDBBackend.put_item

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

    original = Queue.wait_for_messages

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


REQUEST_CONTEXT = {"aws:securetransport": "true"}


def statement_applies(statement: dict[str, Any], context: dict[str, str]) -> bool:
    """Whether a policy statement's `Bool` conditions hold for the request's context keys
    (lower-case); other operators are left to moto."""
    for key, expected in statement.get("Condition", {}).get("Bool", {}).items():
        values = expected if isinstance(expected, list) else [expected]
        actual = context.get(key.lower())
        if actual is None or actual not in {str(v).lower() for v in values}:
            return False
    return True


def evaluate_secure_transport() -> None:
    """A bucket policy's `Bool` conditions (`aws:SecureTransport`) are evaluated.

    moto treats a condition it cannot evaluate as met, and a condition not met as a
    denial, so the TLS-only bucket policy provisioning sets would deny every request. The
    statements whose `Bool` conditions do not hold are set aside first. The endpoint
    listens on loopback only and speaks plain HTTP: its requests count as TLS (AWS would
    refuse them).
    """
    import json

    from moto.iam.access_control import IAMPolicy, PermissionResult
    from moto.s3.models import FakeBucket

    if getattr(FakeBucket.get_permission, "secure_transport", False):
        return

    def get_permission(self: Any, action: str, resource: str) -> Any:
        if self.policy is None:
            return PermissionResult.NEUTRAL
        document = json.loads(self.policy.decode())
        statements = document.get("Statement", [])
        if isinstance(statements, dict):
            statements = [statements]
        kept = []
        for statement in statements:
            if not statement_applies(statement, REQUEST_CONTEXT):
                continue
            statement = dict(statement)
            condition = {k: v for k, v in statement.pop("Condition", {}).items() if k != "Bool"}
            if condition:
                statement["Condition"] = condition
            kept.append(statement)
        if not kept:
            return PermissionResult.NEUTRAL
        return IAMPolicy(json.dumps({**document, "Statement": kept})).is_action_permitted(
            action, resource)

    get_permission.secure_transport = True  # type: ignore[attr-defined]
    FakeBucket.get_permission = get_permission


def apply_in_process() -> None:
    """What in-process moto (tests) needs to answer as AWS does for provisioned stages:
    the TLS-only bucket policy evaluated, versioned buckets' events carrying versionId."""
    evaluate_secure_transport()
    if not getattr(_patch_s3_event_shape, "applied", False):
        _patch_s3_event_shape()
        _patch_s3_event_shape.applied = True  # type: ignore[attr-defined]


def apply() -> None:
    evaluate_secure_transport()
    _patch_repeated_work()
    _patch_long_polls()
    _patch_attribute_values()
    _patch_put_item_answer()
    _patch_notification_filters()
    _patch_s3_event_shape()
    _patch_lambda_invocations()
