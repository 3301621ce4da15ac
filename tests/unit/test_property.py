"""The streaming fast path equals the reference on random files, however they are chunked."""

from __future__ import annotations

import gzip
import itertools
import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.core.records import BOM, MAX_LINE_BYTES
from chalicelib.core.reference import summarize_bytes
from chalicelib.core.summary import summarize_chunks

FIELDS = ("timestamp", "level", "endpoint", "response_time_ms", "status_code", "user_id")
SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ENDPOINTS = ("/api/users", "/api/orders", "/a b", "/ünï/cødé", "/x", "/api/orders/{id}", " ")
USERS = ("u1", "u2", "user 3", "ユーザー", "u5")
LEVEL_WORDS = ("DEBUG", "INFO", "WARN", "WARNING", "ERROR")


MOMENTS = st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2100, 1, 1))
SEPARATORS = st.sampled_from("T t  ")
FRACTION_DIGITS = st.integers(0, 9)
MORE_DIGITS = st.text("0123456789", min_size=9, max_size=9)
ZONES = st.sampled_from(("", "Z", "z", "offset", "offset"))
SIGNS = st.sampled_from("+-")
HOURS, MINUTES = st.integers(0, 23), st.integers(0, 59)
OFFSET_COLONS = st.sampled_from((":", "", ":"))
LEAP_SECOND = st.sampled_from((False,) * 9 + (True,))


@st.composite
def timestamps(draw: st.DrawFn) -> str:
    moment = draw(MOMENTS)
    second = "60" if draw(LEAP_SECOND) else moment.strftime("%S")  # docs/spec.md: accepted
    text = moment.strftime("%Y-%m-%d") + draw(SEPARATORS) + moment.strftime("%H:%M:") + second
    digits = draw(FRACTION_DIGITS)
    if digits:
        text += "." + (f"{moment.microsecond:06d}" + draw(MORE_DIGITS))[:digits]
    zone = draw(ZONES)
    if zone == "offset":
        text += (f"{draw(SIGNS)}{draw(HOURS):02d}{draw(OFFSET_COLONS)}"
                 f"{draw(MINUTES):02d}")
    else:
        text += zone
    return text


TIMESTAMPS = timestamps()


LEVELS = st.builds(
    lambda word, mask: "".join(c.lower() if bit else c for c, bit in zip(word, mask,
                                                                          strict=False)),
    st.sampled_from(LEVEL_WORDS), st.lists(st.booleans(), min_size=7, max_size=7))
RESPONSE_TIMES = st.one_of(
    st.integers(0, 2000),
    st.integers(0, 10**12),
    st.floats(0, 1e6, allow_nan=False, allow_infinity=False),
    st.sampled_from((0, 0.0, -0.0, 1.5, 2**53 + 1, 10**20, 1e300)),
)
ENDPOINT_NAMES = st.one_of(st.sampled_from(ENDPOINTS), st.text(min_size=1, max_size=6))
USER_NAMES = st.one_of(st.sampled_from(USERS), st.text(min_size=1, max_size=6))
_LEAF = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.text(max_size=5),
                  st.floats(allow_nan=False, allow_infinity=False))
EXTRAS = st.dictionaries(
    st.sampled_from(("request_id", "extra", "meta", "ip")),
    st.recursive(_LEAF, lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=3), inner, max_size=3)),
        max_leaves=6),
    max_size=2)
STATUS = st.integers(100, 599)
BOOLS = st.booleans()


@st.composite
def records(draw: st.DrawFn) -> dict[str, Any]:
    record = {
        "timestamp": draw(TIMESTAMPS),
        "level": draw(LEVELS),
        "endpoint": draw(ENDPOINT_NAMES),
        "response_time_ms": draw(RESPONSE_TIMES),
        "status_code": draw(STATUS),
        "user_id": draw(USER_NAMES),
    }
    record.update(draw(EXTRAS))
    order = draw(st.permutations(list(record)))
    return {key: record[key] for key in order}


RECORDS = records()


JSON_SEPARATORS = st.sampled_from(((",", ":"), (", ", ": "), (" ,", " : ")))
PADDING = st.sampled_from(("", "", " ", "\t "))


def render(draw: st.DrawFn, record: dict[str, Any]) -> bytes:
    text = json.dumps(record, separators=draw(JSON_SEPARATORS), ensure_ascii=draw(BOOLS))
    return (draw(PADDING) + text + draw(PADDING)).encode()


WRONG_TYPES = {
    "timestamp": (1714564800, None, "2024-13-01T00:00:00Z", "2024-02-30T00:00:00Z",
                  "2024-05-01T12:00Z", "2024-05-01T12:00:61Z", "2024-05-01T12:00:00+24:00",
                  "yesterday", ""),
    "level": ("VERBOSE", "", "ınfo", "INFO ", 1, None, ["INFO"]),
    "endpoint": ("", 5, None, ["/a"], {"p": 1}),
    "response_time_ms": (-1, -0.5, "5", True, False, None, [1]),
    "status_code": (99, 600, 200.0, True, "200", None, 2e2, -200),
    "user_id": ("", 7, None, True),
}

RAW_VALUES = {  # literal JSON text that json.dumps cannot produce
    "response_time_ms": ("NaN", "Infinity", "-Infinity", "1e400", "9" * 400, "-0.0", "1E2"),
    "status_code": ("NaN", "2.0e2", "200.5"),
    "endpoint": ('"\\ud800"', '"a\\udc00b"', '"\\ud83d\\ude00"'),
    "extra": ('"\\ud800x"', "9" * 5000, "[" * 1200 + "]" * 1200, '"\\ud83d\\ude00"'),
}


MALFORMED_KINDS = st.sampled_from((
    "truncated", "missing", "wrong", "raw", "not_object", "bad_utf8", "bad_utf8_extra",
    "two_values", "split_value", "two_then_split", "duplicate_key", "control_char",
    "trailing_comma", "not_json_whitespace"))
LINE_KINDS = st.sampled_from(("valid",) * 6 + ("malformed", "malformed", "blank"))
BLANKS = st.sampled_from((b"", b" ", b"\t", b"\r", b" \t "))  # JSON's whitespace only
# Whitespace to Python and Unicode, not to JSON: a line of these is a malformed line.
OTHER_WHITESPACE = st.sampled_from((b"\x0b", b"\x0c", b"\x0b\x0c", b" \x0c\t", b"\x1c",
                                    b"\xc2\xa0", b"\xe2\x80\x83"))
ENDINGS = st.sampled_from((b"\n", b"\r\n"))


@st.composite
def malformed(draw: st.DrawFn) -> bytes:
    record = draw(RECORDS)
    kind = draw(MALFORMED_KINDS)
    if kind == "truncated":
        text = render(draw, record)
        return text[:draw(st.integers(1, len(text) - 1))]
    if kind == "missing":
        del record[draw(st.sampled_from(FIELDS))]
    elif kind == "wrong":
        field = draw(st.sampled_from(FIELDS))
        record[field] = draw(st.sampled_from(WRONG_TYPES[field]))
    elif kind == "raw":
        field = draw(st.sampled_from(sorted(RAW_VALUES)))
        record[field] = "\x00placeholder"
        return render(draw, record).replace(b'"\\u0000placeholder"',
                                            draw(st.sampled_from(RAW_VALUES[field])).encode())
    elif kind == "not_object":
        value = draw(st.sampled_from(([record], list(record.values()), 5, "text", None, True)))
        return json.dumps(value).encode()
    elif kind in ("bad_utf8", "bad_utf8_extra"):
        field = "endpoint" if kind == "bad_utf8" else "extra"
        record[field] = "\x00placeholder"
        bad = draw(st.sampled_from((b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xe2\x82", b"\x80")))
        return render(draw, record).replace(b"\\u0000placeholder", b"a" + bad + b"b")
    elif kind == "two_values":
        return render(draw, record) + draw(st.sampled_from((b"", b" "))) + render(draw, record)
    elif kind == "split_value":
        text = render(draw, record)
        cut = text.index(b",") + 1
        return text[:cut] + b"\n" + text[cut:]
    elif kind == "two_then_split":  # one line too many and one too few: counts still match
        text = render(draw, record)
        cut = text.index(b",") + 1
        return text + text + b"\n" + text[:cut] + b"\n" + text[cut:]
    elif kind == "duplicate_key":
        field = draw(st.sampled_from(FIELDS))
        wrong = json.dumps(draw(st.sampled_from(WRONG_TYPES[field])))
        body = json.dumps(record)[1:-1]
        if draw(st.booleans()):
            return f'{{"{field}":{wrong},{body}}}'.encode()
        return f'{{{body},"{field}":{wrong}}}'.encode()
    elif kind == "not_json_whitespace":
        return draw(OTHER_WHITESPACE)
    elif kind == "control_char":
        record["extra"] = "\x00placeholder"
        return render(draw, record).replace(b"\\u0000placeholder", b"a\x01b")
    else:
        return render(draw, record)[:-1] + b",}"
    return render(draw, record)


MALFORMED = malformed()


@st.composite
def files(draw: st.DrawFn) -> bytes:
    lines = []
    for kind in draw(st.lists(LINE_KINDS, max_size=30)):
        if kind == "valid":
            lines.append(render(draw, draw(RECORDS)))
        elif kind == "malformed":
            lines.append(draw(MALFORMED))
        else:
            lines.append(draw(BLANKS))
    ending = draw(ENDINGS)
    data = ending.join(lines)
    if lines and draw(BOOLS):
        data += ending
    if draw(BOOLS):
        data = BOM + data
    return data


def chunked(draw: st.DrawFn, data: bytes) -> list[bytes]:
    """Split into chunks of random sizes: all 1-byte, all small, or a random mix."""
    style = draw(st.sampled_from(("one", "small", "mixed", "whole")))
    if style == "whole" or not data:
        return [data]
    if style == "one":
        return [data[i:i + 1] for i in range(len(data))]
    top = 8 if style == "small" else max(2, len(data))
    chunks, start = [], 0
    while start < len(data):
        size = draw(st.integers(1, top))
        chunks.append(data[start:start + size])
        start += size
    return chunks


def gzip_members(draw: st.DrawFn, data: bytes) -> bytes:
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=3)))
    bounds = [0, *cuts, len(data)]
    return b"".join(gzip.compress(data[a:b]) for a, b in itertools.pairwise(bounds))


@SETTINGS
@given(st.data())
def test_fast_path_equals_reference_on_random_chunking(data: st.DataObject) -> None:
    content = data.draw(files())
    expected = summarize_bytes(content)
    assert summarize_chunks(chunked(data.draw, content)) == expected


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_fast_path_equals_reference_on_gzip(data: st.DataObject) -> None:
    content = data.draw(files())
    packed = gzip_members(data.draw, content)
    hint = data.draw(st.booleans())
    assert summarize_chunks(chunked(data.draw, packed), gzip_hint=hint) == summarize_bytes(
        packed, gzip_hint=hint)


def padded_record(size: int) -> bytes:
    """A valid record line of exactly `size` bytes."""
    record = {"timestamp": "2024-05-01T12:00:00Z", "level": "INFO", "endpoint": "/big",
              "response_time_ms": 7, "status_code": 200, "user_id": "u", "pad": ""}
    text = json.dumps(record, separators=(",", ":")).encode()
    return text.replace(b'"pad":""', b'"pad":"' + b"p" * (size - len(text)) + b'"')


LONG_LINES = st.sampled_from((b"x", b" ", b'{"a":"', b"valid"))


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_lines_longer_than_the_limit_anywhere(data: st.DataObject) -> None:
    content = data.draw(files())
    lines = content.split(b"\n")
    for _ in range(data.draw(st.integers(1, 2))):
        size = MAX_LINE_BYTES + data.draw(st.integers(-1, 2))
        kind = data.draw(LONG_LINES)
        lines.insert(data.draw(st.integers(0, len(lines))),
                     padded_record(size) if kind == b"valid" else (kind * size)[:size])
    content = b"\n".join(lines)
    size = data.draw(st.sampled_from((4096, 65536, 300_000, MAX_LINE_BYTES + 7,
                                      4 * MAX_LINE_BYTES)))
    chunks = [content[i:i + size] for i in range(0, len(content), size)]
    assert summarize_chunks(chunks) == summarize_bytes(content)


def test_extremes_of_mixed_naive_and_offset_timestamps_match() -> None:
    base = datetime(2024, 5, 1, 12, tzinfo=UTC)
    lines = []
    for minutes, zone in ((0, ""), (-30, "+01:00"), (90, "Z"), (0, "-02:00")):
        stamp = (base + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S") + zone
        lines.append(json.dumps({"timestamp": stamp, "level": "info", "endpoint": "/a",
                                 "response_time_ms": 1, "status_code": 200, "user_id": "u"}))
    content = "\n".join(lines).encode()
    result = summarize_chunks([content])
    assert result == summarize_bytes(content)
    assert result["first_timestamp"] == "2024-05-01T10:30:00Z"
    assert result["last_timestamp"] == "2024-05-01T14:00:00Z"
    assert not math.isnan(result["avg_response_time_ms"])


def _sign_of_zero_shown(statistics: dict[str, Any]) -> list[str]:
    """The response-time statistics that are a zero with its sign bit set."""
    values = {name: statistics[name] for name in statistics if name.endswith("_response_time_ms")}
    values.update({f"top_endpoints[{e['endpoint']}]": e["avg_response_time_ms"]
                   for e in statistics["top_endpoints"]})
    return [name for name, value in values.items()
            if value == 0 and math.copysign(1.0, value) < 0]


ZEROS = st.sampled_from(("-0.0", "-0", "-0e3", "0", "0.0", "-0.000"))


@SETTINGS
@given(st.data())
def test_a_negative_zero_response_time_is_read_as_zero(data: st.DataObject) -> None:
    lines = []
    for _ in range(data.draw(st.integers(1, 6))):
        record = data.draw(RECORDS)
        record["response_time_ms"] = "\x00zero"
        lines.append(render(data.draw, record).replace(b'"\\u0000zero"',
                                                       data.draw(ZEROS).encode()))
    content = b"\n".join(lines)

    fast, reference = summarize_chunks(chunked(data.draw, content)), summarize_bytes(content)

    assert fast == reference
    assert fast["malformed_count"] == 0
    assert _sign_of_zero_shown(fast) == [] and _sign_of_zero_shown(reference) == []


@given(st.data())
@SETTINGS
def test_a_line_of_whitespace_json_does_not_know_is_malformed(data: st.DataObject) -> None:
    blank, other = data.draw(BLANKS), data.draw(OTHER_WHITESPACE)
    content = b"\n".join([blank, other, blank])

    fast, reference = summarize_chunks(chunked(data.draw, content)), summarize_bytes(content)

    assert fast == reference
    assert (fast["line_count"], fast["malformed_count"]) == (1, 1)
    assert fast["malformed_samples"][0]["line"] == 2


@pytest.mark.parametrize(("stamp", "read_as"), [
    ("2016-12-31T23:59:60Z", "2016-12-31T23:59:59.999999Z"),
    ("2016-12-31T23:59:60.5Z", "2016-12-31T23:59:59.999999Z"),
    ("2017-01-01T00:59:60+01:00", "2016-12-31T23:59:59.999999Z"),
    ("2015-06-30 23:59:60", "2015-06-30T23:59:59.999999Z"),
])
def test_a_leap_second_is_the_last_microsecond_of_its_minute(stamp: str, read_as: str) -> None:
    line = json.dumps({"timestamp": stamp, "level": "INFO", "endpoint": "/a",
                       "response_time_ms": 1, "status_code": 200, "user_id": "u"}).encode()
    other = json.dumps({"timestamp": read_as, "level": "INFO", "endpoint": "/a",
                        "response_time_ms": 1, "status_code": 200, "user_id": "u"}).encode()
    content = line + b"\n" + other + b"\n"

    fast, reference = summarize_chunks([content]), summarize_bytes(content)

    assert fast == reference
    assert fast["malformed_count"] == 0
    assert fast["first_timestamp"] == fast["last_timestamp"] == read_as

