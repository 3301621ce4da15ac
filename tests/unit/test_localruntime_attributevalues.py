"""The endpoint's direct attribute-value path gives what moto's model walk gives."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from moto.core.parse import JSONParser, default_blob_parser
from moto.core.serialize import JSONSerializer, XFormedAttributePicker
from moto.core.utils import get_service_model

from localruntime.endpoint.attributevalues import MEMBERS, NotPlain, dump, load

MODEL = get_service_model("dynamodb")

text = st.text(max_size=8)
scalar = st.one_of(
    st.builds(lambda s: {"S": s}, text),
    st.builds(lambda n: {"N": str(n)}, st.integers()),
    st.builds(lambda b: {"B": b}, st.binary(max_size=8)),
    st.builds(lambda v: {"BOOL": v}, st.booleans()),
    st.just({"NULL": True}),
    st.builds(lambda s: {"SS": s}, st.lists(text, min_size=1, max_size=3, unique=True)),
    st.builds(lambda s: {"NS": [str(n) for n in s]},
              st.lists(st.integers(), min_size=1, max_size=3, unique=True)),
    st.builds(lambda s: {"BS": s}, st.lists(st.binary(max_size=4), min_size=1, max_size=3)),
)
attribute_value = st.recursive(
    scalar,
    lambda inner: st.one_of(
        st.builds(lambda m: {"M": m}, st.dictionaries(text, inner, max_size=4)),
        st.builds(lambda items: {"L": items}, st.lists(inner, max_size=4)),
    ),
    max_leaves=12,
)
items = st.dictionaries(st.text(min_size=1, max_size=8), attribute_value, max_size=6)


def generic_response(item: dict[str, Any]) -> dict[str, Any]:
    serializer = JSONSerializer(MODEL.operation_model("GetItem"),
                                value_picker=XFormedAttributePicker())
    return json.loads(serializer.serialize({"Item": item})["body"])


def generic_request(item: dict[str, Any]) -> dict[str, Any]:
    parser = JSONParser(MODEL.operation_model("PutItem"))
    return parser.parse({"body": json.dumps({"TableName": "t", "Item": item})})


def b64(value: str | bytes) -> str:
    data = value.encode() if isinstance(value, str) else value
    return base64.b64encode(data).decode()


def as_wire(value: Any) -> Any:
    """An attribute value as a client sends it: binary as base64 text."""
    if isinstance(value, bytes):
        return b64(value)
    if isinstance(value, dict):
        return {k: as_wire(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_wire(v) for v in value]
    return value


def dumped_or_generic(item: dict[str, Any]) -> dict[str, Any]:
    """What the patched endpoint answers: the direct path, or moto's where it declines."""
    out = {}
    for name, value in item.items():
        try:
            out[name] = dump(value, b64)
        except NotPlain:
            out.update(generic_response({name: value}).get("Item", {}))
    return out


def test_members_are_the_models() -> None:
    assert tuple(MODEL.shape_for("AttributeValue").members) == MEMBERS


@settings(max_examples=150, deadline=None)
@given(items)
def test_dump_matches_motos_serializer(item: dict[str, Any]) -> None:
    expected = generic_response(item).get("Item", {})
    assert dumped_or_generic(item) == expected


@settings(max_examples=150, deadline=None)
@given(items)
def test_load_matches_motos_parser(item: dict[str, Any]) -> None:
    wire = as_wire(item)
    expected = generic_request(wire)["Item"]
    assert {name: load(value, default_blob_parser) for name, value in wire.items()} == expected


def test_several_members_come_out_in_the_models_order() -> None:
    value = {"BOOL": True, "S": "x", "N": None}
    assert list(dump(value, b64)) == ["S", "BOOL"]
    assert dump(value, b64) == generic_response({"a": value})["Item"]["a"]
    assert list(load(value, default_blob_parser)) == ["S", "BOOL"]


def test_none_inside_maps_and_lists_is_kept_as_moto_keeps_it() -> None:
    value = {"M": {"gone": None, "kept": {"S": "x"}}, "L": None}
    assert dump(value, b64) == generic_response({"a": value})["Item"]["a"]
    listed = {"L": [None, {"N": "1"}]}
    assert dump(listed, b64) == generic_response({"a": listed})["Item"]["a"]
    assert load({"M": {"gone": None}}, default_blob_parser) == {"M": {"gone": None}}


@pytest.mark.parametrize("value", [
    "not a dict",
    {"S": "x", "Unknown": "y"},
    {"S": 5},
    {"M": "not a map"},
    {"L": {"not": "a list"}},
    {"SS": "abc"},
    {"BS": [1]},
    {"M": {"a": "not an attribute value"}},
    {"M": {"": {"S": "x"}}},
])
def test_anything_else_is_left_to_moto(value: Any) -> None:
    with pytest.raises(NotPlain):
        dump(value, b64)
