"""Speed-ups: work moto repeats on every request, done once or not at all.

None of them changes what a request answers (the endpoint tests run with them). Each is a
named function in `SPEEDUPS`; `LOCALRUNTIME_SPEEDUPS_OFF=name,name` (or `all`) starts the
endpoint without some, which `make bench-speedups` uses to measure what each one gains on
the end-to-end benchmark (docs/local-runtime.md, "How fast").

- Each response class's method names (found by introspection), CamelCase-to-snake_case
  names, the service behind a host name, and the parse of an UpdateExpression (twice per
  UpdateItem; the tree is only read: the validator works on its own copy) are computed once.
- An UpdateExpression's whole-expression checks run once, at its root, not at every node;
  the walks over its tree ask what a node type is once per type, not once per node; the
  validator's copy of the parsed tree is a plain recursive copy.
- A DynamoDB projection of top-level attributes converts just those attributes instead of
  the whole item; attribute values are parsed and
  serialized directly (`localruntime.endpoint.attributevalues`) rather than by walking the model
  member by member.
- Random ids and receipt handles are drawn a string at a time rather than a character
  at a time.
- A Kinesis shard finds its newest record, and the records after an iterator, by their
  sequence numbers (which moto numbers 1, 2, 3... in each shard) instead of walking every
  record from the oldest: PutRecords and GetRecords no longer grow with the shard's length.
- A DynamoDB Query on the table reads its partition's items only, not every item of the
  table sorted; a Query on an index reads every item without sorting them first; an item's
  size is computed once per Query, not twice per item read.
"""

from __future__ import annotations

import copy
import functools
import string
import sys
from collections.abc import Callable, Collection
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from localruntime.endpoint import attributevalues
from localruntime.endpoint.motoguard import replaced


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


SPEEDUPS: dict[str, Callable[[], None]] = {}
OFF_VARIABLE = "LOCALRUNTIME_SPEEDUPS_OFF"


def speedup(name: str) -> Callable[[Callable[[], None]], Callable[[], None]]:
    def register(patch: Callable[[], None]) -> Callable[[], None]:
        SPEEDUPS[name] = patch
        return patch
    return register


@speedup("method-names")
def _cache_method_names() -> None:
    from moto.core import responses

    replaced(responses, "method_names_from_class", ("clazz",))
    responses.method_names_from_class = functools.cache(responses.method_names_from_class)


@speedup("snake-case")
def _cache_snake_case() -> None:
    from moto.core import utils

    replaced(utils, "camelcase_to_underscores", ("argument",))
    _replace_function(utils, "camelcase_to_underscores",
                      functools.lru_cache(maxsize=4096)(utils.camelcase_to_underscores))


@speedup("random-strings")
def _draw_strings_whole() -> None:
    from moto.moto_api._internal import mock_random as moto_random_instance
    from moto.moto_api._internal import moto_random
    from moto.sqs import models as _sqs_models  # noqa: F401 - loaded so its import is swapped
    from moto.sqs import utils as sqs_utils

    replaced(moto_random.MotoRandom, "get_random_string",
             ("self", "length", "include_digits", "lower_case"))
    replaced(sqs_utils, "generate_receipt_handle", ())
    moto_random.MotoRandom.get_random_string = _random_string
    _replace_function(sqs_utils, "generate_receipt_handle",
                      lambda: "".join(moto_random_instance.choices(string.ascii_lowercase, k=185)))


@speedup("host-backend")
def _cache_host_backend() -> None:
    from moto.moto_server import werkzeug_app

    dispatcher = werkzeug_app.DomainDispatcherApplication
    replaced(dispatcher, "get_backend_for_host", ("self", "host"))
    dispatcher.get_backend_for_host = functools.lru_cache(maxsize=256)(
        dispatcher.get_backend_for_host)


@speedup("item-projection")
def _project_top_level_attributes() -> None:
    from moto.dynamodb.models import dynamo_type

    item_class = dynamo_type.Item
    replaced(item_class, "project", ("self", "projection_expressions"))

    def project(self: Any, projection_expressions: list[list[str]]) -> Any:
        if all(len(path) == 1 and "[" not in path[0] for path in projection_expressions):
            # Top-level attributes only: just those go through moto's round trip (which
            # also normalises numbers: "0001" is answered as "1").
            regular = {path[0]: dynamo_type.deserializer.deserialize(
                           self.attrs[path[0]].to_regular_json())
                       for path in projection_expressions if path[0] in self.attrs}
        else:
            regular = self.to_regular_json()
        result: dict[str, Any] = {}
        for expression in projection_expressions:
            dynamo_type.merge_dicts(result, dynamo_type.find_nested_key(expression, regular))
        return item_class(hash_key=self.hash_key, range_key=self.range_key,
                          attrs=dynamo_type.serializer.serialize(result)["M"])

    item_class.project = project


@speedup("update-parse")
def _parse_update_expressions_once() -> None:
    from moto.dynamodb.parsing import expressions

    parser = expressions.UpdateExpressionParser
    replaced(parser, "make", ("expression_str",))
    parser.make = classmethod(functools.lru_cache(maxsize=512)(parser.make.__func__))


@speedup("update-checks")
def _check_update_expressions_once() -> None:
    """Two checks of an UpdateExpression (one ADD/REMOVE/SET clause of each kind, no
    overlapping paths) read the whole expression, but moto runs them at every node, and
    every clause, action, path and value is a node of the expression's type: quadratic in
    the number of actions. Run at the root, they raise whenever a check below it would;
    then moto's own walk runs, so the error names what moto's names."""
    from moto.dynamodb.parsing import ast_nodes, validators

    walk = replaced(ast_nodes.DepthFirstTraverser, "traverse", ("self", "node"))

    def check_at_root(self: Any, node: Any) -> Any:
        try:
            return self.process(node) if isinstance(node, ast_nodes.UpdateExpression) else node
        except Exception:  # noqa: BLE001 - moto's own walk raises the error moto would name
            return walk(self, node)

    for checker in (validators.ActionCountValidator, validators.OverlappingPathsValidator):
        replaced(checker, "traverse", ("self", "node"))
        checker.traverse = check_at_root  # type: ignore[method-assign]


@speedup("update-traversal")
def _traverse_update_expressions_directly() -> None:
    """Eight processors walk each UpdateExpression tree, asking at every node whether it is
    a node (nodes are ABCs: a Python-level isinstance) and which node types the processor
    handles (a dict built per node). Both answers depend only on the types: asked once."""
    from moto.dynamodb.parsing import ast_nodes

    traverser = ast_nodes.DepthFirstTraverser
    replaced(traverser, "traverse_node_recursively", ("self", "node", "child_id"))
    replaced(traverser, "nodes_to_be_processed", ("self",))
    replaced(traverser, "pre_processing_of_child", ("self", "parent_node", "child_id"))
    no_hook = traverser.pre_processing_of_child
    is_node: dict[type, bool] = {}
    handles: dict[tuple[type, type], bool] = {}
    has_hook: dict[type, bool] = {}

    def traverse_node_recursively(self: Any, node: Any, child_id: int = -1) -> Any:
        kind = type(node)
        known = is_node.get(kind)
        if known is None:
            known = is_node[kind] = issubclass(kind, ast_nodes.Node)
        if not known:
            return node
        parent_node = node.parent
        if node.children is not None:
            processor = type(self)
            hook = has_hook.get(processor)
            if hook is None:
                hook = has_hook[processor] = processor.pre_processing_of_child is not no_hook
            for i, child_node in enumerate(node.children):
                if hook:
                    self.pre_processing_of_child(node, i)
                self.traverse_node_recursively(child_node, i)
        key = (type(self), kind)
        wanted = handles.get(key)
        if wanted is None:
            wanted = handles[key] = issubclass(kind, self.nodes_to_be_processed())
        if wanted:
            node = self.process(node)
            node.parent = parent_node
            if parent_node:
                parent_node.children[child_id] = node
        return node

    traverser.traverse_node_recursively = traverse_node_recursively


@speedup("update-copy")
def _copy_update_expressions_plainly() -> None:
    """The validator deep-copies the parsed expression (it rewrites its copy); a parsed
    tree is nodes, lists and strings, which a plain recursive copy copies 5x faster."""
    from moto.dynamodb.parsing import validators

    replaced(validators, "deepcopy", ("x", "memo", "_nil"))
    validators.deepcopy = _copy_tree


def _copy_tree(value: Any, memo: dict[int, Any] | None = None, _nil: Any = None) -> Any:
    """copy.deepcopy, by a plain walk for a whole parsed tree (a root node, no parent)."""
    from moto.dynamodb.parsing.ast_nodes import Node

    if memo is None and isinstance(value, Node) and value.parent is None:
        return _copy_node(value, None, Node)
    return copy.deepcopy(value, memo)


def _copy_node(node: Any, parent: Any, node_class: type) -> Any:
    twin = object.__new__(type(node))
    fields = dict(node.__dict__)
    fields["parent"] = parent
    children = node.children
    if children is not None:
        fields["children"] = [
            _copy_node(child, twin, node_class) if isinstance(child, node_class)
            else child if type(child) in (str, int, float, bool) or child is None
            else copy.deepcopy(child)
            for child in children]
    for name, value in fields.items():
        if name not in ("parent", "children", "type"):
            fields[name] = copy.deepcopy(value)
    twin.__dict__.update(fields)
    return twin


def _is_attribute_value(shape: Any) -> bool:
    return shape.name == "AttributeValue" and tuple(shape.members) == attributevalues.MEMBERS


@speedup("attribute-values")
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


@speedup("kinesis-shard")
def _index_kinesis_shards() -> None:
    from moto.kinesis.models import Shard

    replaced(Shard, "get_max_sequence_number", ("self",))
    replaced(Shard, "get_min_sequence_number", ("self",))
    original_get = replaced(Shard, "get_records", ("self", "last_sequence_id", "limit"))

    def get_max_sequence_number(self: Any) -> int:
        return next(reversed(self.records)) if self.records else 0

    def get_min_sequence_number(self: Any) -> int:
        return next(iter(self.records)) if self.records else 0

    def get_records(self: Any, last_sequence_id: str, limit: int | None
                    ) -> tuple[list[Any], int, int]:
        records = self.records
        if not records or (limit is not None and limit < 1):
            return original_get(self, last_sequence_id, limit)
        first, newest = next(iter(records)), next(reversed(records))
        if newest - first + 1 != len(records):  # not numbered one by one: moto's walk
            return original_get(self, last_sequence_id, limit)
        last = int(last_sequence_id)
        start = max(last + 1, first)
        end = newest if limit is None else min(newest, start + limit - 1)
        found = [records[n] for n in range(start, end + 1)]
        if not found:
            return [], last, 0
        behind = records[newest].created_at - found[-1].created_at
        return found, end, int(behind * 1000)

    Shard.get_max_sequence_number = get_max_sequence_number
    Shard.get_min_sequence_number = get_min_sequence_number
    Shard.get_records = get_records


@dataclass
class _Query:
    """What the Query under way reads: its table, the items moto is to look through (None:
    every item, sorted, as moto lists them), and the size of each item measured so far (the
    item is kept, so that its id is not another's)."""

    table: Any
    items: list[Any] | None
    sizes: dict[int, tuple[Any, int]] = field(default_factory=dict)


_QUERY: ContextVar[_Query | None] = ContextVar("query", default=None)


def _partition(table: Any, hash_key: Any) -> list[Any] | None:
    """The items of the table with this hash key, or None where moto's search may answer
    otherwise (a key of another type, or that does not hash; a stray entry)."""
    from moto.dynamodb.models.dynamo_type import Item

    if hash_key is None or hash_key.type != table.hash_key_type:
        return None
    try:
        found = table.items.get(hash_key)  # never items[...]: a defaultdict would add it
    except Exception:  # noqa: BLE001 - a value moto compares but cannot hash: its search
        return None
    if found is None:
        return []
    if table.range_key_attr is None:
        return [found] if isinstance(found, Item) else None
    return list(found.values()) if isinstance(found, dict) else None


def _unsorted(table: Any, index_name: str) -> list[Any] | None:
    """Every item of the table in the table's order, for a Query on an index, or None where
    moto's sorted list may answer otherwise: a stray entry, or an item whose index key
    attribute holds another type than its definition's (moto does not check; two values of
    different types can tie when sorted)."""
    from moto.dynamodb.models.dynamo_type import Item

    index = next((i for i in table.all_indexes() if i.name == index_name), None)
    if index is None:
        return None
    declared = {a["AttributeName"]: a["AttributeType"] for a in table.attr}
    keys = [(k["AttributeName"], declared.get(k["AttributeName"])) for k in index.schema]
    items = ([item for partition in table.items.values() for item in partition.values()]
             if table.range_key_attr else list(table.items.values()))
    for item in items:
        if not isinstance(item, Item):
            return None
        for name, kind in keys:
            value = item.attrs.get(name)
            if value is not None and value.type != kind:
                return None
    return items


@speedup("query-partition")
def _query_one_partition() -> None:
    """moto's Table.query gathers its candidates from every item of the table, sorted by
    the table's key (all_items), and keeps those with the hash key, though the table keeps
    a partition's items together (items[hash_key]); in its loop it measures each item read
    up to twice (a walk over every attribute). moto's query still runs, with all_items
    answering, for that table during that Query, the partition's items (a table Query), or
    every item unsorted (an index Query: moto sorts the ones it keeps by the index's key and
    then the table's, which no two items share); Item.size remembers what it measured.
    Candidates of a table Query are sorted by range key next, distinct within a partition:
    the order they come in does not matter either."""
    from moto.dynamodb.models.dynamo_type import Item
    from moto.dynamodb.models.table import Table

    every_item = replaced(Table, "all_items", ("self",))
    measure = replaced(Item, "size", ("self",))
    query = replaced(Table, "query", (
        "self", "hash_key", "range_comparison", "range_objs", "limit", "exclusive_start_key",
        "scan_index_forward", "projection_expressions", "index_name", "consistent_read",
        "filter_expression", "hash_key_conditions", "range_key_conditions", "filter_kwargs"))

    def all_items(self: Any) -> list[Any]:
        reading = _QUERY.get()
        if reading is not None and reading.table is self and reading.items is not None:
            return list(reading.items)
        return every_item(self)

    def size(self: Any) -> int:
        reading = _QUERY.get()
        if reading is None:
            return measure(self)
        known = reading.sizes.get(id(self))
        if known is None:
            known = reading.sizes[id(self)] = (self, measure(self))
        return known[1]

    def query_partition(self: Any, hash_key: Any, range_comparison: Any, range_objs: Any,
                        limit: Any, exclusive_start_key: Any, scan_index_forward: Any,
                        projection_expressions: Any, index_name: Any = None,
                        consistent_read: Any = False, filter_expression: Any = None,
                        hash_key_conditions: Any = None, range_key_conditions: Any = None,
                        **filter_kwargs: Any) -> Any:
        items = _unsorted(self, index_name) if index_name else _partition(self, hash_key)
        token = _QUERY.set(_Query(self, items))
        try:
            return query(self, hash_key, range_comparison, range_objs, limit,
                         exclusive_start_key, scan_index_forward, projection_expressions,
                         index_name, consistent_read, filter_expression, hash_key_conditions,
                         range_key_conditions, **filter_kwargs)
        finally:
            _QUERY.reset(token)

    Table.all_items = all_items
    Item.size = size
    Table.query = query_partition


def switched_off(value: str | None) -> frozenset[str]:
    """The speed-ups named in `LOCALRUNTIME_SPEEDUPS_OFF` (comma-separated, or `all`)."""
    names = {name.strip() for name in (value or "").split(",") if name.strip()}
    if "all" in names:
        return frozenset(SPEEDUPS)
    unknown = sorted(names - set(SPEEDUPS))
    if unknown:
        raise ValueError(f"{OFF_VARIABLE}: no speed-up named {', '.join(unknown)}; "
                         f"the speed-ups are {', '.join(SPEEDUPS)} (or all)")
    return frozenset(names)


def apply(off: Collection[str] = ()) -> None:
    """Apply every speed-up but those `off`."""
    for name, patch in SPEEDUPS.items():
        if name not in off:
            patch()
