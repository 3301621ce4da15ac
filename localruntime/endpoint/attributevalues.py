"""DynamoDB attribute values across moto's wire layer, without its walk of the model.

moto parses each JSON request and serializes each JSON response by walking botocore's
shape model member by member. A DynamoDB attribute value is a structure of ten members,
and for each one the serializer asks a chain of alias providers where the value lives,
so one GetItem of a record with nested maps costs milliseconds. `dump` and `load` give
the same results as that walk for attribute values made of plain dicts, lists and
strings; for anything else they raise `NotPlain` and the caller takes moto's own path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

MEMBERS = ("S", "N", "B", "SS", "NS", "BS", "M", "L", "NULL", "BOOL")
_MEMBER_SET = frozenset(MEMBERS)
_AS_IS = frozenset({"NULL", "BOOL"})


class NotPlain(Exception):
    """The value is not a plain attribute value; moto's generic path must handle it."""


def _members(value: Any) -> tuple[str, ...] | dict[str, Any]:
    if type(value) is not dict or not value.keys() <= _MEMBER_SET:
        raise NotPlain
    # One member (the usual case) needs no ordering; several come out in the model's order.
    return value if len(value) == 1 else MEMBERS


def _strings(items: Any) -> list[str]:
    if type(items) is not list or any(type(item) is not str for item in items):
        raise NotPlain
    return list(items)


def _blobs(items: Any) -> list[Any]:
    if type(items) is not list or any(not isinstance(item, (str, bytes)) for item in items):
        raise NotPlain
    return items


def dump(value: Any, base64: Callable[[str | bytes], str]) -> dict[str, Any]:
    """moto's JSON serialization of an `AttributeValue` structure."""
    out: dict[str, Any] = {}
    for name in _members(value):
        member = value.get(name)
        if member is None:
            continue
        if name == "S" or name == "N":
            if type(member) is not str:
                raise NotPlain
            out[name] = member
        elif name == "M":
            if type(member) is not dict or "" in member:
                # moto writes a value under an empty key into the map itself; keep that.
                raise NotPlain
            out[name] = {key: dump(item, base64) for key, item in member.items()
                         if item is not None}
        elif name == "L":
            if type(member) is not list:
                raise NotPlain
            out[name] = [None if item is None else dump(item, base64) for item in member]
        elif name == "SS" or name == "NS":
            out[name] = _strings(member)
        elif name == "B":
            if not isinstance(member, (str, bytes)):
                raise NotPlain
            out[name] = base64(member)
        elif name == "BS":
            out[name] = [base64(item) for item in _blobs(member)]
        else:
            out[name] = member
    return out


def load(value: Any, blob: Callable[[Any], bytes]) -> dict[str, Any]:
    """moto's JSON parse of an `AttributeValue` structure from a request."""
    out: dict[str, Any] = {}
    for name in _members(value):
        member = value.get(name)
        if member is None:
            continue
        if name == "S" or name == "N" or name in _AS_IS:
            out[name] = member
        elif name == "M":
            if type(member) is not dict:
                raise NotPlain
            out[name] = {key: None if item is None else load(item, blob)
                         for key, item in member.items()}
        elif name == "L":
            if type(member) is not list:
                raise NotPlain
            out[name] = [None if item is None else load(item, blob) for item in member]
        elif name == "SS" or name == "NS":
            if type(member) is not list:
                raise NotPlain
            out[name] = list(member)
        elif name == "B":
            out[name] = blob(member)
        else:
            if type(member) is not list:
                raise NotPlain
            out[name] = [blob(item) for item in member]
    return out
