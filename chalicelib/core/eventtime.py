"""A file's figures by the hour of each event (docs/spec.md, "Rollups"): what it adds to each
hour's rollup, kept in its result record as `event_hours`.

The aggregator fills one `HourBucket` per UTC hour of the valid records' own timestamps;
`partials()` turns them into the bounded, JSON-ready form the record stores:

- hours outside [upload - RETENTION_DAYS, upload + FUTURE_HOURS] are not kept: their records
  count as `out_of_range` (on the upload's hour);
- at most MAX_HOURS_PER_FILE hours are kept, the busiest (ties: the earlier); the records of
  the others count as `out_of_range` too;
- per hour, the ENDPOINTS_PER_HOUR busiest endpoints (ties by name) keep requests, errors and
  a latency sketch; the others add their requests and errors to `other`;
- encoded, the partials take at most MAX_ENCODED_BYTES: past it, fewer endpoints per hour are
  kept (halving down to none), then fewer hours.
"""

from __future__ import annotations

import math
import zlib
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from chalicelib.core.records import shown_endpoint
from chalicelib.core.sketch import bins_of

HOUR = timedelta(hours=1)
_EPOCH_AWARE = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_NAIVE = datetime(1970, 1, 1)
RETENTION_DAYS = 32  # rollup items live this long after their hour
FUTURE_HOURS = 24  # events later than this after the upload are out of range
MAX_HOURS_PER_FILE = 48
ENDPOINTS_PER_HOUR = 20
MAX_ENCODED_BYTES = 256 * 1024
OTHER = "~other"  # the endpoint bucket of the endpoints past ENDPOINTS_PER_HOUR
LEVEL_KEYS = {"INFO": "info", "WARN": "warn", "ERROR": "error", "DEBUG": "debug"}


def hour_number(moment: datetime) -> int:
    """Hours since the epoch, UTC (a naive time is UTC)."""
    return (moment - (_EPOCH_NAIVE if moment.tzinfo is None else _EPOCH_AWARE)) // HOUR


def hour_text(number: int) -> str:
    """YYYY-MM-DDTHH of an hour number."""
    return (_EPOCH_AWARE + number * HOUR).strftime("%Y-%m-%dT%H")


def hour_of_iso(text: str) -> int:
    return hour_number(datetime.fromisoformat(text.replace("Z", "+00:00")))


class EndpointBucket:
    __slots__ = ("errors", "requests", "times")

    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.times: Counter[Any] = Counter()


class HourBucket:
    """The valid records of one hour: counts by level spelling and status code, the
    response times as value -> count, and per endpoint the same."""

    __slots__ = ("codes", "endpoints", "levels", "records", "times")

    def __init__(self) -> None:
        self.records = 0
        self.levels: Counter[str] = Counter()
        self.codes: Counter[Any] = Counter()
        self.times: Counter[Any] = Counter()
        self.endpoints: dict[str, EndpointBucket] = {}

    def add(self, levels: Counter[str], codes: Counter[Any], times: list[Any],
            groups: dict[str, list[Any]], errors: Counter[str]) -> None:
        """One batch of the hour's records: counts by level and code, response times, and
        the times by endpoint (Counter.update of a list counts in C; of a mapping, in
        Python)."""
        self.records += len(times)
        self.levels.update(levels)
        self.codes.update(codes)
        self.times.update(times)
        endpoints = self.endpoints
        for name, values in groups.items():
            bucket = endpoints.get(name)
            if bucket is None:
                bucket = endpoints[name] = EndpointBucket()
            bucket.requests += len(values)
            bucket.times.update(values)
        for name, count in errors.items():
            endpoints[name].errors += count


class EndpointPartial(msgspec.Struct, array_like=True):
    endpoint: str
    requests: int
    errors: int
    bins: dict[str, int]


class HourPartial(msgspec.Struct):
    hour: str  # YYYY-MM-DDTHH, UTC
    records: int
    levels: dict[str, int]
    status_codes: dict[str, int]
    rt_sum: float
    bins: dict[str, int]
    endpoints: list[EndpointPartial]
    other_requests: int = 0
    other_errors: int = 0


class EventHours(msgspec.Struct):
    """What a file adds to the hours of its events; `out_of_range` records added to none."""

    hours: list[HourPartial] = msgspec.field(default_factory=list)
    out_of_range: int = 0


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(EventHours)


def encode(event_hours: EventHours) -> bytes:
    return zlib.compress(_encoder.encode(event_hours), 6)


def decode(data: bytes) -> EventHours:
    return _decoder.decode(zlib.decompress(data))


def partials(buckets: dict[int, HourBucket], level_names: dict[str, str], upload_hour: int
             ) -> bytes:
    """The encoded EventHours of a file's buckets, within every bound (module docstring)."""
    earliest = upload_hour - RETENTION_DAYS * 24
    latest = upload_hour + FUTURE_HOURS
    kept = [h for h in buckets if earliest <= h <= latest]
    out_of_range = sum(b.records for h, b in buckets.items() if not earliest <= h <= latest)
    kept.sort(key=lambda h: (-buckets[h].records, h))
    for h in kept[MAX_HOURS_PER_FILE:]:
        out_of_range += buckets[h].records
    kept = sorted(kept[:MAX_HOURS_PER_FILE])
    endpoints = ENDPOINTS_PER_HOUR
    while True:
        data = encode(EventHours(
            [_hour_partial(h, buckets[h], level_names, endpoints) for h in kept], out_of_range))
        if len(data) <= MAX_ENCODED_BYTES or not kept:
            return data
        if endpoints:
            endpoints //= 2
            continue
        quietest = min(kept, key=lambda h: (buckets[h].records, -h))
        kept.remove(quietest)
        out_of_range += buckets[quietest].records


def _hour_partial(hour: int, bucket: HourBucket, level_names: dict[str, str],
                  endpoints: int) -> HourPartial:
    levels = dict.fromkeys(LEVEL_KEYS.values(), 0)
    for raw, count in bucket.levels.items():
        levels[LEVEL_KEYS[level_names[raw]]] += count
    ranked = sorted(bucket.endpoints, key=lambda e: (-bucket.endpoints[e].requests, e))
    top, rest = ranked[:endpoints], ranked[endpoints:]
    return HourPartial(
        hour=hour_text(hour), records=bucket.records, levels=levels,
        status_codes={str(code): n for code, n in sorted(bucket.codes.items())},
        rt_sum=math.fsum(value * count for value, count in bucket.times.items()),
        bins=bins_of(bucket.times),
        endpoints=[EndpointPartial(shown_endpoint(e), bucket.endpoints[e].requests,
                                   bucket.endpoints[e].errors, bins_of(bucket.endpoints[e].times))
                   for e in top],
        other_requests=sum(bucket.endpoints[e].requests for e in rest),
        other_errors=sum(bucket.endpoints[e].errors for e in rest))
