"""A file's figures by the hour of each event (docs/spec.md, "Rollups"): what it adds to each
hour's rollup, kept in its result record as `event_hours`.

The aggregator fills one `HourBucket` per UTC hour of the valid records' own timestamps (the
buckets of hours a file has left behind packed into arrays: memory stays flat as its hours go
by); `partials()` turns them into the bounded, JSON-ready form the record stores:

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
import struct
import zlib
from array import array
from collections import Counter, defaultdict, deque
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from itertools import repeat
from operator import floordiv, sub
from typing import Any, NamedTuple

import msgspec

from chalicelib.core.records import shown_endpoint
from chalicelib.core.sketch import bins_of

_append = list.append
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


def hour_numbers(moments: list[datetime]) -> list[int]:
    """The hour_number of each moment: in C when all are naive or all offset-aware."""
    epoch = _EPOCH_NAIVE if moments[0].tzinfo is None else _EPOCH_AWARE
    try:
        return list(map(floordiv, map(sub, moments, repeat(epoch)), repeat(HOUR)))
    except TypeError:  # naive and offset-aware mixed
        return [hour_number(moment) for moment in moments]


def hour_text(number: int) -> str:
    """YYYY-MM-DDTHH of an hour number."""
    return (_EPOCH_AWARE + number * HOUR).strftime("%Y-%m-%dT%H")


def hour_of_iso(text: str) -> int:
    return hour_number(datetime.fromisoformat(text.replace("Z", "+00:00")))


class Packed(NamedTuple):
    """What a Counter counted, in its order, in a fraction of its memory: keys and counts in
    arrays of two bytes each while they fit (integers up to 65,535), else a tuple of the
    keys and an array of eight-byte counts."""

    keys: Sequence[Any]
    counts: Sequence[int]

    @classmethod
    def of(cls, counter: Counter[Any]) -> Packed:
        keys, counts = list(counter), list(counter.values())
        packed_keys = _two_bytes_each(keys)
        packed_counts = _two_bytes_each(counts)
        return cls(tuple(keys) if packed_keys is None else packed_keys,
                   array("q", counts) if packed_counts is None else packed_counts)

    def with_(self, counter: Counter[Any]) -> Counter[Any]:
        """Every count: the packed ones, then the counter's, as if one Counter had counted
        them all (it may be `counter` itself)."""
        if not self.keys:
            return counter
        merged = Counter(dict(zip(self.keys, self.counts, strict=True)))
        merged.update(counter)
        return merged


def _two_bytes_each(numbers: list[Any]) -> array[int] | None:
    """The numbers in an array of two bytes each; None if one is not an integer 0..65,535.
    struct packs them in about half the time array() takes to convert them one by one."""
    try:
        data = struct.pack(f"{len(numbers)}H", *numbers)
    except struct.error:
        return None
    packed = array("H")
    packed.frombytes(data)
    return packed


NOTHING = Packed((), ())


class _Times:
    """Response times as value -> count: since the last pack() in `times`, before it in
    `packed` (less memory for a bucket that may get no more)."""

    __slots__ = ("packed", "times")

    def __init__(self) -> None:
        self.times: Counter[Any] = Counter()
        self.packed = NOTHING

    def all_times(self) -> Counter[Any]:
        return self.packed.with_(self.times)

    def pack(self) -> None:
        if self.times:
            self.packed = Packed.of(self.all_times())
            self.times = Counter()


class EndpointBucket(_Times):
    """One endpoint's records in an hour: requests and their response times."""

    __slots__ = ("requests",)

    def __init__(self) -> None:
        super().__init__()
        self.requests = 0


class HourBucket(_Times):
    """The valid records of one hour: counts by level spelling and status code, the
    response times as value -> count (since the last pack() in `times`, before it in
    `packed`), errors by endpoint, and per endpoint an EndpointBucket. The times by
    endpoint wait in `pending` till fold() counts them."""

    __slots__ = ("codes", "endpoints", "errors", "folded", "levels", "pending",
                 "pending_errors", "records")

    def __init__(self) -> None:
        super().__init__()
        self.records = 0
        self.folded = 0  # records whose times by endpoint are counted
        self.levels: Counter[str] = Counter()
        self.codes: Counter[Any] = Counter()
        self.errors: Counter[str] = Counter()
        self.pending: defaultdict[str, list[Any]] = defaultdict(list)
        self.pending_errors: list[str] = []  # the endpoint of each ERROR record
        self.endpoints: dict[str, EndpointBucket] = {}

    def add(self, levels: Counter[str], codes: Counter[Any], times: list[Any],
            endpoints: list[str], errors: list[str]) -> None:
        """One batch of the hour's records: counts by level and code, the response times
        counted, and by endpoint (grouped by a C-level map) the times and the errors left
        for fold() to count."""
        self.records += len(times)
        self.levels.update(levels)
        self.codes.update(codes)
        self.times.update(times)
        self.pending_errors += errors
        deque(map(_append, map(self.pending.__getitem__, endpoints), times), maxlen=0)

    @property
    def waiting(self) -> int:
        return self.records - self.folded

    def fold(self) -> dict[str, list[Any]]:
        """Count what waits: errors by endpoint, and the times into the endpoints' buckets;
        returns the times by endpoint."""
        pending = self.pending
        self.pending = defaultdict(list)
        self.folded = self.records
        self.errors.update(self.pending_errors)
        self.pending_errors = []
        endpoints = self.endpoints
        for name, values in pending.items():
            bucket = endpoints.get(name)
            if bucket is None:
                bucket = endpoints[name] = EndpointBucket()
            bucket.requests += len(values)
            bucket.times.update(values)
        return pending

    def pack(self) -> None:
        """Keep the response times counted so far in less memory (Packed), for an hour that
        may get no more records; adding more stays possible."""
        super().pack()
        for bucket in self.endpoints.values():
            bucket.pack()


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
    """The encoded EventHours of a file's buckets (folded: nothing waits in them), within
    every bound (module docstring)."""
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
    times = bucket.all_times()
    top, rest = ranked[:endpoints], ranked[endpoints:]
    return HourPartial(
        hour=hour_text(hour), records=bucket.records, levels=levels,
        status_codes={str(code): n for code, n in sorted(bucket.codes.items())},
        rt_sum=math.fsum(value * count for value, count in times.items()),
        bins=bins_of(times),
        endpoints=[_endpoint_partial(e, bucket.endpoints[e], bucket.errors[e]) for e in top],
        other_requests=sum(bucket.endpoints[e].requests for e in rest),
        other_errors=sum(bucket.errors[e] for e in rest))


def _endpoint_partial(name: str, bucket: EndpointBucket, errors: int) -> EndpointPartial:
    return EndpointPartial(shown_endpoint(name), bucket.requests, errors,
                           bins_of(bucket.all_times()))
