"""What a valid line is: a table of tricky lines, each with its hand-written verdict.

Every case runs through the streaming fast path (whole, and in 1-byte chunks) and through
the reference, and both must give the verdict written here.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib.core.reference import (
    BOM,
    REASON_JSON,
    REASON_OBJECT,
    REASON_UTF8,
    classify_line,
    summarize_bytes,
)
from chalicelib.core.summary import summarize_chunks

FIELDS = {
    "timestamp": '"2024-05-01T12:00:00Z"',
    "level": '"INFO"',
    "endpoint": '"/api/users"',
    "response_time_ms": "120",
    "status_code": "200",
    "user_id": '"u1"',
}
TS_RULE = "timestamp: expected an RFC 3339 date-time string, 0001-9999 in UTC"
LEVEL_RULE = "level: expected one of DEBUG, INFO, WARN, WARNING, ERROR"
ENDPOINT_RULE = "endpoint: expected a non-empty string"
TIME_RULE = "response_time_ms: expected a number from 0 to 1e15"
STATUS_RULE = "status_code: expected an integer 100-599"
USER_RULE = "user_id: expected a non-empty string"


def line(drop: str | None = None, extra: str = "", **raw: str) -> bytes:
    """A record line with some fields' JSON text replaced, one dropped, or extra members."""
    fields = {**FIELDS, **raw}
    members = [f'"{name}":{text}' for name, text in fields.items() if name != drop]
    if extra:
        members.append(extra)
    return ("{" + ",".join(members) + "}").encode("utf-8", "surrogatepass")


def summaries(data: bytes) -> list[dict[str, Any]]:
    """The reference's summary, then the fast path's (whole, then in 1-byte chunks)."""
    return [summarize_bytes(data), summarize_chunks([data]),
            summarize_chunks([data[i:i + 1] for i in range(len(data))])]


def verdict(data: bytes) -> dict[str, Any]:
    ref, *fast = summaries(data)
    assert all(result == ref for result in fast)
    return ref


VALID_LINES = {
    "plain": line(),
    "extra fields of every kind": line(extra='"x":[1,{"y":null}],"z":true,"w":-1.5e3'),
    "unicode and spaces": line(endpoint='"/ünï cødé/ 😀"', user_id='"user one"'),
    "escaped values": line(endpoint='"\\/api\\u002fusers"', level='"\\u0049NFO"'),
    "escaped key": line(drop="level", extra='"lev\\u0065l":"INFO"'),
    "surrogate pair escape": line(endpoint='"\\ud83d\\ude00"'),
    "whitespace around and inside": b'  { "timestamp" : "2024-05-01T12:00:00Z" , "level":"INFO",'
                                    b'"endpoint":"/a","response_time_ms":1,"status_code":200,'
                                    b'"user_id":"u" }\t',
    "float time": line(response_time_ms="0.5"),
    "zero time": line(response_time_ms="0"),
    "negative zero time": line(response_time_ms="-0.0"),
    "timestamp leap second": line(timestamp='"2016-12-31T23:59:60Z"'),
    "exponent time": line(response_time_ms="1E2"),
    "largest time": line(response_time_ms="1000000000000000"),
    "largest time as a float": line(response_time_ms="1e15"),
    "huge integer in an ignored field": line(extra='"big":' + "9" * 5000),
    "status at the bounds": line(status_code="100"),
    "status 599": line(status_code="599"),
    "lowercase level": line(level='"info"'),
    "WARNING alias": line(level='"Warning"'),
    "repeated key, last one valid": line(extra='"status_code":201').replace(
        b'"status_code":200', b'"status_code":true'),
    "key order": b'{"user_id":"u","status_code":200,"response_time_ms":1,"endpoint":"/a",'
                 b'"level":"DEBUG","timestamp":"2024-05-01T12:00:00Z"}',
    "nesting within the limit": line(extra='"deep":' + "[" * 500 + "]" * 500),
}


@pytest.mark.parametrize("name", VALID_LINES)
def test_valid_lines(name: str) -> None:
    result = verdict(VALID_LINES[name] + b"\n")
    assert (result["line_count"], result["malformed_count"]) == (1, 0)
    assert classify_line(VALID_LINES[name])[1] is None


MALFORMED_LINES = {
    "truncated JSON": (line()[:-1], REASON_JSON),
    "trailing comma": (line()[:-1] + b",}", REASON_JSON),
    "single quotes": (line().replace(b'"u1"', b"'u1'"), REASON_JSON),
    "invalid UTF-8 in a field": (line(endpoint='"/a\x00"').replace(b"\x00", b"\xff"),
                                 REASON_UTF8),
    "invalid UTF-8 in an ignored field": (line(extra='"x":"\x00"').replace(b"\x00", b"\xc3("),
                                          REASON_UTF8),
    "UTF-8 encoded surrogate": (line(extra='"x":"\x00"').replace(b"\x00", b"\xed\xa0\x80"),
                                REASON_UTF8),
    "lone surrogate escape in a field": (line(user_id='"\\ud800"'), REASON_JSON),
    "lone surrogate escape in an ignored field": (line(extra='"x":["\\udc00"]'), REASON_JSON),
    "lone surrogate escape in a key": (line(extra='"\\ud800":1'), REASON_JSON),
    "raw control character": (line(extra='"x":"a\x01b"'), REASON_JSON),
    "NaN literal": (line(response_time_ms="NaN"), REASON_JSON),
    "Infinity literal": (line(response_time_ms="Infinity"), REASON_JSON),
    "-Infinity in an ignored field": (line(extra='"x":-Infinity'), REASON_JSON),
    "nesting beyond the recursion limit": (line(extra='"x":' + "[" * 5000 + "]" * 5000),
                                           REASON_JSON),
    "two objects on one line": (line() + line(), REASON_JSON),
    "array": (b"[" + line() + b"]", REASON_OBJECT),
    "string": (b'"text"', REASON_OBJECT),
    "number": (b"42", REASON_OBJECT),
    "null": (b"null", REASON_OBJECT),
    "timestamp not a string": (line(timestamp="1714564800"), TS_RULE),
    "timestamp month 13": (line(timestamp='"2024-13-01T00:00:00Z"'), TS_RULE),
    "timestamp day 30 in February": (line(timestamp='"2024-02-30T00:00:00Z"'), TS_RULE),
    "timestamp without seconds": (line(timestamp='"2024-05-01T12:00Z"'), TS_RULE),
    "timestamp second 61": (line(timestamp='"2024-05-01T23:59:61Z"'), TS_RULE),
    "timestamp offset +24:00": (line(timestamp='"2024-05-01T12:00:00+24:00"'), TS_RULE),
    "timestamp date only": (line(timestamp='"2024-05-01"'), TS_RULE),
    "level unknown": (line(level='"VERBOSE"'), LEVEL_RULE),
    "level empty": (line(level='""'), LEVEL_RULE),
    "level with a dotless i": (line(level='"\u0131nfo"'), LEVEL_RULE),
    "level with a space": (line(level='"INFO "'), LEVEL_RULE),
    "level a number": (line(level="1"), LEVEL_RULE),
    "endpoint empty": (line(endpoint='""'), ENDPOINT_RULE),
    "endpoint a list": (line(endpoint='["/a"]'), ENDPOINT_RULE),
    "endpoint null": (line(endpoint="null"), ENDPOINT_RULE),
    "negative time": (line(response_time_ms="-1"), TIME_RULE),
    "negative float time": (line(response_time_ms="-0.5"), TIME_RULE),
    "time overflowing to infinity": (line(response_time_ms="1e400"), TIME_RULE),
    "time over 1e15": (line(response_time_ms="1000000000000001"), TIME_RULE),
    "float time over 1e15": (line(response_time_ms="1.0000000000000002e15"), TIME_RULE),
    "time over the largest double": (line(response_time_ms="1.7976931348623157e308"), TIME_RULE),
    "integer beyond 64 bits": (line(response_time_ms=str(2**64 + 1)), TIME_RULE),
    "time integer too big for a double": (line(response_time_ms="9" * 400), TIME_RULE),
    "time as a string": (line(response_time_ms='"5"'), TIME_RULE),
    "time true": (line(response_time_ms="true"), TIME_RULE),
    "time false": (line(response_time_ms="false"), TIME_RULE),
    "status 99": (line(status_code="99"), STATUS_RULE),
    "status 600": (line(status_code="600"), STATUS_RULE),
    "status 200.0": (line(status_code="200.0"), STATUS_RULE),
    "status 2e2": (line(status_code="2e2"), STATUS_RULE),
    "status true": (line(status_code="true"), STATUS_RULE),
    "status as a string": (line(status_code='"200"'), STATUS_RULE),
    "user empty": (line(user_id='""'), USER_RULE),
    "user a number": (line(user_id="7"), USER_RULE),
    "repeated key, last one invalid": (line(extra='"status_code":true'), STATUS_RULE),
    "missing fields are reported before wrong types": (
        line(drop="user_id", status_code="true"), "missing field: user_id"),
}
MALFORMED_LINES.update({
    f"missing {name}": (line(drop=name), f"missing field: {name}") for name in FIELDS})


@pytest.mark.parametrize("name", MALFORMED_LINES)
def test_malformed_lines(name: str) -> None:
    text, reason = MALFORMED_LINES[name]
    data = line() + b"\n" + text + b"\n" + line() + b"\n"
    result = verdict(data)
    assert (result["line_count"], result["malformed_count"]) == (3, 1)
    assert result["malformed_samples"] == [{"line": 2, "reason": reason}]
    assert result["info_count"] == 2


def test_a_value_spanning_lines_is_two_malformed_lines() -> None:
    text = line()
    cut = text.index(b",") + 1
    result = verdict(text[:cut] + b"\n" + text[cut:] + b"\n")
    assert result["malformed_count"] == 2
    assert result["line_count"] == 2


def test_a_shared_line_and_a_spanned_value_do_not_cancel_out() -> None:
    text = line()
    cut = text.index(b",") + 1
    data = b"\n".join([text, text + text, text[:cut], text[cut:], text]) + b"\n"
    result = verdict(data)
    assert (result["line_count"], result["malformed_count"], result["info_count"]) == (5, 3, 2)
    assert [s["line"] for s in result["malformed_samples"]] == [2, 3, 4]


def test_crlf_bom_blank_lines_and_no_final_newline() -> None:
    data = BOM + b"\r\n".join([line(), b"", b"   ", b"\t\r", line(level='"error"'), b"oops",
                               line(level='"debug"')])
    result = verdict(data)
    assert result["line_count"] == 4  # blank and whitespace-only lines are not counted
    assert result["malformed_samples"] == [{"line": 6, "reason": REASON_JSON}]  # but numbered
    assert (result["info_count"], result["error_count"], result["debug_count"]) == (1, 1, 1)


@pytest.mark.parametrize("data", [b"", BOM, b"\n", b"\n\n \n", b"\r\n", b" "])
def test_empty_and_blank_files_have_no_lines(data: bytes) -> None:
    result = verdict(data)
    assert result["line_count"] == result["malformed_count"] == 0
    assert result["avg_response_time_ms"] is None
    assert result["first_timestamp"] is None


def test_levels_are_case_insensitive_and_warning_counts_as_warn() -> None:
    levels = ["INFO", "info", "Info", "WARN", "warn", "WARNING", "warning", "WaRnInG", "ERROR",
              "error", "DEBUG", "dEbUg"]
    data = b"\n".join(line(level=json.dumps(level)) for level in levels)
    result = verdict(data)
    assert (result["info_count"], result["warn_count"], result["error_count"],
            result["debug_count"]) == (3, 5, 2, 2)


TIMESTAMPS = [
    ("2024-05-01T12:00:00Z", "2024-05-01T12:00:00Z"),
    ("2024-05-01t12:00:00z", "2024-05-01T12:00:00Z"),
    ("2024-05-01 12:00:00Z", "2024-05-01T12:00:00Z"),
    ("2024-05-01T12:00:00", "2024-05-01T12:00:00Z"),
    ("2024-05-01T14:30:00+02:30", "2024-05-01T12:00:00Z"),
    ("2024-05-01T09:00:00-0300", "2024-05-01T12:00:00Z"),
    ("2024-05-02T00:00:00+12:00", "2024-05-01T12:00:00Z"),
    ("2024-05-01T12:00:00-00:00", "2024-05-01T12:00:00Z"),
    ("2024-05-01T12:00:00.5Z", "2024-05-01T12:00:00.500000Z"),
    ("2024-05-01T12:00:00.123456Z", "2024-05-01T12:00:00.123456Z"),
    ("2024-05-01T12:00:00.1234564Z", "2024-05-01T12:00:00.123456Z"),
    ("2024-05-01T12:00:00.1234565Z", "2024-05-01T12:00:00.123457Z"),
    ("2024-05-01T23:59:59.9999999Z", "2024-05-02T00:00:00Z"),
    ("2024-05-01T12:00:00.000000000000001+00:00", "2024-05-01T12:00:00Z"),
]


@pytest.mark.parametrize(("stamp", "utc"), TIMESTAMPS)
def test_timestamp_forms_and_their_utc_value(stamp: str, utc: str) -> None:
    result = verdict(line(timestamp=json.dumps(stamp)) + b"\n")
    assert result["malformed_count"] == 0
    assert result["first_timestamp"] == result["last_timestamp"] == utc


def test_first_and_last_over_mixed_naive_and_offset_timestamps() -> None:
    stamps = ["2024-05-01T12:00:00", "2024-05-01T13:00:00+02:00", "2024-05-01T12:30:00Z",
              "2024-05-01 11:59:59.999", "2024-05-01T10:00:00-03:00"]
    result = verdict(b"\n".join(line(timestamp=json.dumps(s)) for s in stamps))
    assert result["first_timestamp"] == "2024-05-01T11:00:00Z"
    assert result["last_timestamp"] == "2024-05-01T13:00:00Z"


def test_lines_that_are_no_object_past_the_samples_are_counted_without_their_reason() -> None:
    garbage = [b"x", b"  [1]", b"42", b'"s"', b"null", b"\t{", b"{}", b"x"] * 3
    data = b"\n".join([line(), *garbage, line()]) + b"\n"
    result = verdict(data)
    assert (result["line_count"], result["malformed_count"]) == (26, 24)
    assert [s["line"] for s in result["malformed_samples"]] == [2, 3, 4, 5, 6]
