"""Exact statistics over valid records, accumulated block by block.

Each field of a block's records is pulled out once into a list and fed whole to a
Counter, a set, min/max or a C-level `map`: no statement runs once per record. The
records go to the bucket of their UTC hour (core.eventtime), which counts their response
times as a histogram of distinct values (summed over the hours, the file's exact
nearest-rank percentiles and maximum) and groups them by endpoint; FOLD_AT of them at a
time are counted into the endpoints' histograms and added to their exact running totals.
An hour no batch has added to for a while is packed into arrays. Memory grows with the
number of distinct values by hour and endpoint, not of lines; averages equal
reference.mean bit for bit.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Hashable, Iterable, Sequence
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any, TypeVar

from chalicelib.core.eventtime import HourBucket, hour_number, hour_numbers, partials
from chalicelib.core.records import (
    COUNTS,
    MAX_SAMPLES,
    TOP_ENDPOINTS,
    Count,
    LogRecord,
    normalize_level,
    shown_endpoint,
    without_negative_zero,
)
from chalicelib.core.reference import iso_utc
from chalicelib.core.schema import STATISTICS_FIELDS, Statistics

_append = list.append
_EXACT_INT = 2**53
PACK_EVERY = 8  # batches between two looks for idle hours to pack
IDLE_BATCHES = 8  # an hour no batch added to for this many is packed
FOLD_AT = 8192  # times waiting by endpoint (in all hours) before they are counted
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def in_range(value: datetime) -> bool:
    """True if the instant exists in UTC (years 0001-9999), as the reference requires."""
    if value.tzinfo is None:
        return True
    try:
        value.astimezone(UTC)
    except OverflowError:
        return False
    return True


def _extremes(stamps: Sequence[datetime]) -> tuple[datetime, datetime]:
    try:
        return min(stamps), max(stamps)
    except TypeError:  # naive (UTC) mixed with offset-aware values
        aware = [_as_utc(s) for s in stamps]
        return min(aware), max(aware)


def _grouped(keys: Iterable[K], items: Iterable[V]) -> dict[K, list[V]]:
    """key -> its items, in order (keys in the order first met), grouped by a C-level map."""
    groups: defaultdict[K, list[V]] = defaultdict(list)
    deque(map(_append, map(groups.__getitem__, keys), items), maxlen=0)
    return groups


def _error_endpoints(records: list[LogRecord], error_forms: set[str]) -> list[str]:
    """The endpoint of each record whose level is one of the spellings of ERROR."""
    if not error_forms:
        return []
    return [r.endpoint for r in records if r.level in error_forms]


class Aggregator:
    """Accumulates one file's statistics; `result()` returns the record's content fields."""

    def __init__(self) -> None:
        self.line_count = 0
        self.malformed_count = 0
        self.samples: list[dict[str, Any]] = []
        self._level_names: dict[str, str] = {}
        self._levels: Counter[str] = Counter()
        self._totals: dict[str, _Total] = {}
        self._counts = [_Tally(count) for count in COUNTS]
        self._codes = next(t for t in self._counts if t.count.field == "status_code")
        self._first: datetime | None = None
        self._last: datetime | None = None
        self.hours: dict[int, HourBucket] = {}  # the valid records by their UTC hour
        self._batches = 0
        self._recent: dict[int, int] = {}  # hour -> batch that last added to it, till packed
        self._waiting = 0  # records whose times wait in their hours' `pending`

    def malformed(self, line: int, reason: str) -> None:
        self.malformed_count += 1
        if len(self.samples) < MAX_SAMPLES:
            self.samples.append({"line": line, "reason": reason})

    @property
    def samples_full(self) -> bool:
        return len(self.samples) >= MAX_SAMPLES

    def level_of(self, raw: str) -> str | None:
        name = self._level_names.get(raw)
        if name is None:
            name = normalize_level(raw)
            if name is not None:
                self._level_names[raw] = name
        return name

    def add(self, records: list[LogRecord]) -> bool:
        """Add a batch of decoded records; False (and nothing added) if one is not valid.

        msgspec checks everything but two rules: the level's spelling, and that the
        timestamp exists in UTC. An instant outside UTC's range lies before or after every
        other, so it is always the batch's first or last.
        """
        if not records:
            return True
        stamps = [r.timestamp for r in records]
        first, last = _extremes(stamps)
        if not (in_range(first) and in_range(last)):
            return False
        levels = [r.level for r in records]
        level_counts = Counter(levels)
        error_forms = self._error_forms(level_counts)
        if error_forms is None:
            return False
        self._levels.update(level_counts)
        codes = self._add_counts(records)
        hour = hour_number(first)
        if hour == hour_number(last):
            self._add_to_hour(hour, level_counts, codes, [r.response_time_ms for r in records],
                              [r.endpoint for r in records],
                              _error_endpoints(records, error_forms))
        else:
            self._add_by_hour(records, stamps, error_forms)
        self._merge_extremes(first, last)
        self._batches += 1
        if self._batches % PACK_EVERY == 0:
            self._pack_idle_hours()
        return True

    def event_hours(self, upload_hour: int) -> bytes:
        """The record's `event_hours`: what the file adds to each hour (core.eventtime)."""
        self._fold_all()
        return partials(self.hours, self._level_names, upload_hour)

    def _error_forms(self, level_counts: Counter[str]) -> set[str] | None:
        """The spellings of ERROR among the batch's levels; None if one is not a level."""
        forms = set()
        for raw in level_counts:
            name = self.level_of(raw)
            if name is None:
                return None
            if name == "ERROR":
                forms.add(raw)
        return forms

    def _add_to_hour(self, hour: int, levels: Counter[str], codes: Counter[Any],
                     values: list[Any], endpoints: list[str], errors: list[str]) -> None:
        self._hour(hour).add(levels, codes, values, endpoints, errors)
        self._waiting += len(values)
        if self._waiting >= FOLD_AT:
            self._fold_all()

    def _fold(self, bucket: HourBucket) -> None:
        """Count the times waiting in an hour by endpoint (HourBucket.fold) and add them to
        the endpoints' totals."""
        self._waiting -= bucket.waiting
        totals = self._totals
        for endpoint, group in bucket.fold().items():
            total = totals.get(endpoint)
            if total is None:
                total = totals[endpoint] = _Total()
            total.add(group)

    def _fold_all(self) -> None:
        for bucket in self.hours.values():
            if bucket.waiting:
                self._fold(bucket)

    def _add_counts(self, records: list[LogRecord]) -> Counter[Any]:
        """Count the COUNTS' fields; returns the batch's status codes."""
        codes: Counter[Any] = Counter()
        for tally in self._counts:
            if tally is self._codes:
                codes.update(tally.read(records))
                tally.values.update(codes)
            else:
                tally.values.update(tally.read(records))
        return codes

    def _hour(self, hour: int) -> HourBucket:
        """The hour's bucket, marked as added to by this batch."""
        self._recent[hour] = self._batches
        bucket = self.hours.get(hour)
        if bucket is None:
            bucket = self.hours[hour] = HourBucket()
        return bucket

    def _add_by_hour(self, records: list[LogRecord], stamps: list[datetime],
                     error_forms: set[str]) -> None:
        """A batch whose records lie in several hours: each hour's share on its own."""
        for hour, share in _grouped(hour_numbers(stamps), records).items():
            self._add_to_hour(hour, Counter([r.level for r in share]),
                              Counter([r.status_code for r in share]),
                              [r.response_time_ms for r in share], [r.endpoint for r in share],
                              _error_endpoints(share, error_forms))

    def _pack_idle_hours(self) -> None:
        """Pack the hours no batch has added to for IDLE_BATCHES batches (HourBucket.pack):
        in a file in time order, every hour but the last few."""
        for hour, batch in list(self._recent.items()):
            if self._batches - batch >= IDLE_BATCHES:
                self._fold(self.hours[hour])
                self.hours[hour].pack()
                del self._recent[hour]

    def _merge_extremes(self, first: datetime, last: datetime) -> None:
        if self._first is None or self._last is None:
            self._first, self._last = first, last
            return
        try:
            self._first = min(self._first, first)
            self._last = max(self._last, last)
        except TypeError:
            self._first = min(_as_utc(self._first), _as_utc(first))
            self._last = max(_as_utc(self._last), _as_utc(last))

    def result(self) -> Statistics:
        self._fold_all()
        levels: Counter[str] = Counter()
        for raw, count in self._levels.items():
            levels[self._level_names[raw]] += count
        histogram: Counter[Any] = Counter()  # the file's: the sum of its hours'
        errors: Counter[str] = Counter()
        for bucket in self.hours.values():
            histogram.update(bucket.all_times())
            errors.update(bucket.errors)
        totals = self._totals
        n = sum(total.count for total in totals.values())
        top = sorted(totals, key=lambda e: (-totals[e].count, e))[:TOP_ENDPOINTS]
        p50 = p95 = p99 = None
        if n:
            p50, p95, p99 = _percentiles(histogram, n, (50, 95, 99))
        statistics: dict[str, Any] = {
            "line_count": self.line_count,
            "malformed_count": self.malformed_count,
            "malformed_samples": list(self.samples),
            "info_count": levels["INFO"],
            "warn_count": levels["WARN"],
            "error_count": levels["ERROR"],
            "debug_count": levels["DEBUG"],
            "avg_response_time_ms": round(_Total.merged(totals.values()).mean(), 3) if n else None,
            "max_response_time_ms": max(histogram) if n else None,
            "p50_response_time_ms": p50,
            "p95_response_time_ms": p95,
            "p99_response_time_ms": p99,
            "unique_endpoints": len(totals),
            "top_endpoints": [
                {
                    "endpoint": shown_endpoint(e),
                    "count": totals[e].count,
                    "error_count": errors[e],
                    "avg_response_time_ms": round(totals[e].mean(), 3),
                }
                for e in top
            ],
            "first_timestamp": iso_utc(self._first) if n and self._first else None,
            "last_timestamp": iso_utc(self._last) if n and self._last else None,
        }
        for tally in self._counts:
            statistics[tally.count.statistic] = tally.result()
        return without_negative_zero(
            {name: statistics[name] for name in STATISTICS_FIELDS})  # type: ignore[arg-type]


# A list comprehension reads a field of msgspec structs in about four fifths of the time
# attrgetter takes (CPython specializes its attribute access): the COUNTS' fields.
_COLUMNS: dict[str, Callable[[list[LogRecord]], list[Any]]] = {
    "user_id": lambda records: [r.user_id for r in records],
    "status_code": lambda records: [r.status_code for r in records],
}


def _column(field: str) -> Callable[[list[LogRecord]], list[Any]]:
    """The function reading `field` of every record of a batch."""
    read = _COLUMNS.get(field)
    if read is not None:
        return read
    get = attrgetter(field)
    return lambda records: list(map(get, records))


class _Tally:
    """One of the COUNTS: the values of its field seen so far (a set, or a Counter)."""

    __slots__ = ("count", "read", "values")

    def __init__(self, count: Count) -> None:
        self.count = count
        self.read = _column(count.field)
        self.values: set[Any] | Counter[Any] = set() if count.distinct else Counter()

    def result(self) -> int | dict[str, int]:
        if isinstance(self.values, set):
            return len(self.values) - (None in self.values)
        return {str(value): n for value, n in
                sorted((v, n) for v, n in self.values.items() if v is not None)}


class _Total:
    """The exact sum of the response times added, read out as reference.mean does.

    Integers are summed as integers while they are exact as doubles; other values are
    kept as a few floats whose exact sum is the exact sum of the values as doubles,
    which math.fsum then rounds once. Values are at most 1e15 (docs/spec.md), so no
    sum comes near the doubles' range.
    """

    __slots__ = ("count", "floats", "ints")

    def __init__(self) -> None:
        self.count = 0
        self.ints = 0
        self.floats: list[float] = []

    def add(self, values: list[Any]) -> None:
        self.count += len(values)
        total = sum(values)
        if type(total) is int and total <= _EXACT_INT:
            self.ints += total
        else:
            self.floats = _exact_partials([*self.floats, *values])

    def mean(self) -> float:
        return math.fsum([*self.floats, *_int_pieces(self.ints)]) / self.count

    @classmethod
    def merged(cls, totals: Iterable[_Total]) -> _Total:
        out = cls()
        for total in totals:
            out.count += total.count
            out.ints += total.ints
            out.floats = _exact_partials([*out.floats, *total.floats])
        return out


def _exact_partials(values: list[Any]) -> list[float]:
    """Floats whose exact sum is that of float(v) over values: fsum, then fsum of residues."""
    rest = list(values)
    partials: list[float] = []
    while True:
        total = math.fsum(rest)
        if total == 0.0:
            return partials
        partials.append(total)
        rest.append(-total)


def _int_pieces(value: int) -> list[float]:
    """Floats that add up exactly to an integer."""
    pieces: list[float] = []
    while value:
        piece = float(value)
        pieces.append(piece)
        value -= int(piece)
    return pieces


def _percentiles(histogram: Counter[Any], n: int, ps: tuple[int, ...]) -> list[Any]:
    ranks = [(p * n + 99) // 100 for p in ps]
    out: list[Any] = []
    seen = 0
    want = iter(ranks)
    target: int | None = next(want)
    for value in sorted(histogram):
        seen += histogram[value]
        while target is not None and seen >= target:
            out.append(value)
            target = next(want, None)
        if target is None:
            break
    return out
