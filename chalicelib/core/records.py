"""What a valid log record is (docs/spec.md), as a msgspec type for the fast path."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from itertools import product
from typing import TYPE_CHECKING, Annotated, Literal

import msgspec

if TYPE_CHECKING:
    from chalicelib.core.schema import Statistics

MAX_LINE_BYTES = 1024 * 1024
MAX_ENDPOINT_CHARS = 256  # of an endpoint name as shown in top_endpoints
# 31,700 years: beyond it a value is no response time, and every statistic over the values
# stays within what a DynamoDB number holds (at most 9.99e125).
MAX_RESPONSE_TIME_MS = 10**15
BOM = b"\xef\xbb\xbf"
# RFC 8259's whitespace: a line of only these is blank; any other byte makes it a line.
JSON_WHITESPACE = b" \t\r\n"
GZIP_MAGIC = b"\x1f\x8b"
MAX_SAMPLES = 5  # malformed lines kept as samples
TOP_ENDPOINTS = 20
LEVELS = ("DEBUG", "INFO", "WARN", "ERROR")
LEVEL_NAMES = {"DEBUG": "DEBUG", "INFO": "INFO", "WARN": "WARN", "WARNING": "WARN",
                "ERROR": "ERROR"}

# Every spelling in any letter case (224 of them): msgspec checks the level while decoding
# and returns one shared string object per spelling, which makes counting them cheaper.
LEVEL_SPELLINGS = tuple("".join(letters) for name in LEVEL_NAMES
                        for letters in product(*((c.upper(), c.lower()) for c in name)))
Level = Literal[LEVEL_SPELLINGS]  # type: ignore[valid-type]
NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]
ResponseTime = (Annotated[int, msgspec.Meta(ge=0, le=MAX_RESPONSE_TIME_MS)]
                | Annotated[float, msgspec.Meta(ge=0, le=MAX_RESPONSE_TIME_MS)])
# Every code as a literal, for the same reason: one shared int per code (most are above the
# interpreter's cached small ints), so no int is made per line and counting hits on identity.
StatusCode = Literal[tuple(range(100, 600))]  # type: ignore[valid-type]


class LogRecord(msgspec.Struct, gc=False):
    """One valid line. `timestamp` is naive when the line had no offset (meaning UTC)."""

    timestamp: datetime
    level: Level
    endpoint: NonEmpty
    response_time_ms: ResponseTime
    status_code: StatusCode  # type: ignore[valid-type]
    user_id: NonEmpty


@dataclass(frozen=True)
class Count:
    """A statistic of the record counted over one field of the valid records; a record
    without the field (an optional one, None) is not counted."""

    statistic: str
    field: str
    distinct: bool  # True: how many different values; False: value (as a string) -> count


COUNTS = (
    Count("unique_users", "user_id", distinct=True),
    Count("status_codes", "status_code", distinct=False),
)


def without_negative_zero(statistics: Statistics) -> Statistics:
    """A response time of -0.0 is read as 0 (docs/spec.md): `x + 0` is x for every other
    number and 0.0 for -0.0, so no statistic shows a sign on zero."""
    for name in ("avg_response_time_ms", "max_response_time_ms", "p50_response_time_ms",
                 "p95_response_time_ms", "p99_response_time_ms"):
        value = statistics[name]  # type: ignore[literal-required]
        if value is not None:
            statistics[name] = value + 0  # type: ignore[literal-required]
    for endpoint in statistics["top_endpoints"]:
        endpoint["avg_response_time_ms"] += 0
    return statistics


def normalize_level(raw: str) -> str | None:
    """Case-insensitive ASCII level name, WARNING folded into WARN; None if not a level."""
    if not raw.isascii():
        return None
    return LEVEL_NAMES.get(raw.upper())


def shown_endpoint(name: str) -> str:
    """An endpoint's name in the record: cut to MAX_ENDPOINT_CHARS, the cut marked by '…'."""
    if len(name) <= MAX_ENDPOINT_CHARS:
        return name
    return name[:MAX_ENDPOINT_CHARS - 1] + "…"
