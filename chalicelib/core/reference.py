"""The rules of docs/spec.md written plainly with the standard library.

This is the executable specification: the fast path (`chalicelib.core.scan`) must produce
exactly the same statistics on every input, which the property tests check. It also
explains why a line is malformed, and serves as the naive baseline in `make bench`.
"""

from __future__ import annotations

import gzip
import json
import math
import re
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from chalicelib.core.records import (
    BOM,
    GZIP_MAGIC,
    JSON_WHITESPACE,
    LEVEL_NAMES,
    MAX_LINE_BYTES,
    MAX_RESPONSE_TIME_MS,
    MAX_SAMPLES,
    TOP_ENDPOINTS,
    shown_endpoint,
)
from chalicelib.core.schema import Statistics

_TIMESTAMP = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]+))?(?:([Zz])|([+-])([0-9]{2}):?([0-9]{2}))?",
    re.ASCII,
)

REASON_TOO_LONG = f"line longer than {MAX_LINE_BYTES} bytes"
REASON_UTF8 = "not valid UTF-8"
REASON_JSON = "not valid JSON"
REASON_OBJECT = "not a JSON object"
FIELD_RULES = (
    ("timestamp", "expected an RFC 3339 date-time string, 0001-9999 in UTC"),
    ("level", "expected one of DEBUG, INFO, WARN, WARNING, ERROR"),
    ("endpoint", "expected a non-empty string"),
    ("response_time_ms", "expected a number from 0 to 1e15"),
    ("status_code", "expected an integer 100-599"),
    ("user_id", "expected a non-empty string"),
)


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def _parse_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:  # more digits than int() converts by default
        return int(Decimal(text))


def parse_timestamp(value: str) -> datetime | None:
    """RFC 3339 date-time ('T', 't' or space; optional fraction; Z or ±hh[:]mm; none = UTC).

    A leap second (:60, at any minute) is read as hh:mm:59.999999, whatever its fraction."""
    m = _TIMESTAMP.fullmatch(value)
    if m is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    fraction, zulu, sign, off_h, off_m = m.groups()[6:]
    if second == 60:  # a leap second: the last microsecond of its minute
        second, fraction = 59, "999999"
    tz = UTC
    if sign is not None:
        hours, minutes = int(off_h), int(off_m)
        if hours > 23 or minutes > 59:
            return None
        offset = timedelta(hours=hours, minutes=minutes)
        tz = timezone(-offset if sign == "-" else offset) if offset else UTC
    elif zulu is None:
        tz = UTC
    micro, round_up = 0, False
    if fraction:
        micro = int(fraction[:6].ljust(6, "0"))
        round_up = len(fraction) > 6 and fraction[6] >= "5"
    try:
        parsed = datetime(year, month, day, hour, minute, second, micro, tzinfo=tz)
        if round_up:
            parsed += timedelta(microseconds=1)
        parsed.astimezone(UTC)  # the instant must exist in UTC, years 0001-9999
    except (ValueError, OverflowError):
        return None
    return parsed


def _is_number(value: Any) -> bool:
    return type(value) in (int, float) and 0 <= value <= MAX_RESPONSE_TIME_MS


def _has_lone_surrogate(value: Any) -> bool:
    """True if a string anywhere in the decoded value holds a lone surrogate (from an escape)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def mean(values: Sequence[Any]) -> float:
    """The exactly rounded sum of the values as doubles, divided by their count."""
    return math.fsum(values) / len(values)


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and len(value) > 0


def classify_line(line: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """Return (record, None) for a valid non-blank line, else (None, reason)."""
    if len(line) > MAX_LINE_BYTES:
        return None, REASON_TOO_LONG
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return None, REASON_UTF8
    try:
        obj = json.loads(text, parse_constant=_reject_constant, parse_int=_parse_int)
    except (ValueError, RecursionError):
        return None, REASON_JSON
    if _has_lone_surrogate(obj):
        return None, REASON_JSON
    if not isinstance(obj, dict):
        return None, REASON_OBJECT
    for name, _ in FIELD_RULES:
        if name not in obj:
            return None, f"missing field: {name}"
    ts = obj["timestamp"]
    checks = (
        isinstance(ts, str) and parse_timestamp(ts) is not None,
        isinstance(obj["level"], str) and obj["level"].isascii()
        and obj["level"].upper() in LEVEL_NAMES,
        _is_text(obj["endpoint"]),
        _is_number(obj["response_time_ms"]),
        type(obj["status_code"]) is int and 100 <= obj["status_code"] <= 599,
        _is_text(obj["user_id"]),
    )
    for ok, (name, rule) in zip(checks, FIELD_RULES, strict=True):
        if not ok:
            return None, f"{name}: {rule}"
    obj["response_time_ms"] += 0  # -0.0 is read as 0
    return obj, None


def iso_utc(value: datetime) -> str:
    """UTC ISO-8601 with a Z suffix; a naive value is taken as UTC."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat() + "Z"


def nearest_rank(sorted_values: list[Any], p: int) -> Any:
    return sorted_values[(p * len(sorted_values) + 99) // 100 - 1]


def summarize_bytes(data: bytes, *, gzip_hint: bool = False) -> Statistics:
    """Statistics of a whole file held in memory: simple, slow, obviously correct."""
    line_count, malformed, samples, records = read_lines(data, gzip_hint=gzip_hint)
    return _statistics(line_count, malformed, samples, records)


def read_lines(data: bytes, *, gzip_hint: bool = False
               ) -> tuple[int, int, list[dict[str, Any]], list[dict[str, Any]]]:
    """Non-blank lines, malformed lines, the malformed samples and the valid records."""
    if gzip_hint or data.startswith(GZIP_MAGIC):
        data = gzip.decompress(data)
    if data.startswith(BOM):
        data = data[len(BOM):]
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    line_count = 0
    samples: list[dict[str, Any]] = []
    malformed = 0
    records: list[dict[str, Any]] = []
    for number, line in enumerate(lines, start=1):
        if len(line) <= MAX_LINE_BYTES and not line.strip(JSON_WHITESPACE):
            continue
        line_count += 1
        record, reason = classify_line(line)
        if record is None:
            malformed += 1
            if len(samples) < MAX_SAMPLES:
                samples.append({"line": number, "reason": reason})
        else:
            records.append(record)
    return line_count, malformed, samples, records


def _statistics(line_count: int, malformed: int, samples: list[dict[str, Any]],
                records: list[dict[str, Any]]) -> Statistics:
    levels = Counter(LEVEL_NAMES[r["level"].upper()] for r in records)
    times = [r["response_time_ms"] for r in records]
    ordered = sorted(times)
    by_endpoint: dict[str, list[Any]] = {}
    errors: Counter[str] = Counter()
    for r in records:
        by_endpoint.setdefault(r["endpoint"], []).append(r["response_time_ms"])
        if LEVEL_NAMES[r["level"].upper()] == "ERROR":
            errors[r["endpoint"]] += 1
    stamps = [parse_timestamp(r["timestamp"]) for r in records]
    top = sorted(by_endpoint.items(), key=lambda item: (-len(item[1]), item[0]))[:TOP_ENDPOINTS]
    has_data = bool(records)
    return {
        "line_count": line_count,
        "malformed_count": malformed,
        "malformed_samples": samples,  # type: ignore[typeddict-item]
        "info_count": levels["INFO"],
        "warn_count": levels["WARN"],
        "error_count": levels["ERROR"],
        "debug_count": levels["DEBUG"],
        "avg_response_time_ms": round(mean(times), 3) if has_data else None,
        "max_response_time_ms": max(times) if has_data else None,
        "p50_response_time_ms": nearest_rank(ordered, 50) if has_data else None,
        "p95_response_time_ms": nearest_rank(ordered, 95) if has_data else None,
        "p99_response_time_ms": nearest_rank(ordered, 99) if has_data else None,
        "unique_users": len({r["user_id"] for r in records}),
        "unique_endpoints": len(by_endpoint),
        "status_codes": {str(code): count for code, count in
                         sorted(Counter(r["status_code"] for r in records).items())},
        "top_endpoints": [
            {
                "endpoint": shown_endpoint(endpoint),
                "count": len(values),
                "error_count": errors[endpoint],
                "avg_response_time_ms": round(mean(values), 3),
            }
            for endpoint, values in top
        ],
        "first_timestamp": iso_utc(min(stamps)) if has_data else None,  # type: ignore[type-var, arg-type]
        "last_timestamp": iso_utc(max(stamps)) if has_data else None,  # type: ignore[type-var, arg-type]
    }
