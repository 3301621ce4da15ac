"""Rollups: what each result record adds to the rollup items, and how they read back
(docs/spec.md, "Rollups"). Pure: the stats table's adapter is chalicelib.rollups.

f(record) maps rollup items (`Target`) to deltas. Any record adds `files_received` on its
upload hour; a final one adds its file-level figures there, and its `event_hours` to the
hours of its events. A change of a record adds f(new) - f(old), so a redrive (failed ->
queued -> completed) moves the file from failed to completed, and a record removed (TTL)
changes nothing.

Items, in the stats table (partition `series`, sort `hour`), one partition per UTC month and
kind; each item is one document (`figures`: zlib-compressed JSON) that the rollups handler
reads, adds a delta to and writes back under a version condition:

    hours#YYYY-MM      DD#source         one UTC day: per hour, files, levels, codes, sketch
    endpoints#YYYY-MM  DDTHH#source      one UTC hour: ENDPOINTS_KEPT endpoints and `other`

A day per item keeps GET /stats to one Query per month, whose items are few and dense
(30 days of 720 hour items with ~330 attributes each took 10 s through the local endpoint).

A delta is a nested dict of numbers, sketches as bin name -> count (a record's form); a
document keeps sketches dense (`DenseBins` JSON) so that reading adds them in one pass, and
packed, their counts are one array of 64-bit integers after the JSON (parsing 31 days' JSON
integers took 8x as long):

    day:        {"HH": {"files_received": n, ..., "levels": {...}, "codes": {...},
                        "rt_sum": x, "bins": sketch}}
    endpoints:  {"named": {name: {"requests": n, "errors": n, "bins": sketch}},
                 "other": {"requests": n, "errors": n, "bins": sketch}}
"""

from __future__ import annotations

import struct
import sys
import zlib
from array import array
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from chalicelib.core.eventtime import (
    ENDPOINTS_PER_HOUR,
    OTHER,
    RETENTION_DAYS,
    EventHours,
    decode,
    hour_of_iso,
    hour_text,
)
from chalicelib.core.jobs import Source, source_of
from chalicelib.core.results import upload_time
from chalicelib.core.schema import Status
from chalicelib.core.sketch import FLOOR_MS, RELATIVE_ACCURACY, DenseBins

HOURS = "hours"
ENDPOINTS = "endpoints"
LEVELS = ("info", "warn", "error", "debug")
FILE_COUNTERS = ("files_received", "files_completed", "files_failed", "malformed",
                 "out_of_range")
BINS = "bins"
QUANTILES = (0.5, 0.95, 0.99, 1.0)
CACHED = "q"  # an hour's QUANTILES, made when its sketch changes (read when it is alone)
NAMED = "named"
ENDPOINTS_KEPT = 100  # named endpoints an hour item keeps; past it the least busy go to other
# A packed document's most (DynamoDB's item limit is 400 KB, with the keys and markers): an
# endpoints item past it moves its least busy endpoints to other. A day item stays below it
# by construction (24 hours of 500 codes and full sketches of random counts: 245 KB).
DOCUMENT_BYTES_KEPT = 350_000
Number = int | float
Figures = dict[str, Any]  # a delta, or a stored document (module docstring)


@dataclass(frozen=True, order=True)
class Target:
    """A rollup item's key."""

    series: str
    hour: str

    @property
    def kind(self) -> str:
        return self.series.split("#", 1)[0]

    @property
    def day(self) -> str:
        """YYYY-MM-DD."""
        return f"{self.series.split('#', 1)[1]}-{self.hour[:2]}"

    @property
    def source(self) -> str:
        return self.hour.split("#")[1]


def day_target(hour: str, source: str) -> Target:
    """The item holding hour YYYY-MM-DDTHH's figures."""
    return Target(f"{HOURS}#{hour[:7]}", f"{hour[8:10]}#{source}")


def endpoints_target(hour: str, source: str) -> Target:
    return Target(f"{ENDPOINTS}#{hour[:7]}", f"{hour[8:10]}T{hour[11:13]}#{source}")


def item_hour(target: Target) -> str:
    """YYYY-MM-DDTHH of an endpoints item."""
    return f"{target.day}T{target.hour[3:5]}"


def expires_at(target: Target) -> int:
    """Rollup items live RETENTION_DAYS after their last hour."""
    if target.kind == HOURS:
        start = datetime.strptime(target.day, "%Y-%m-%d") + timedelta(hours=23)
    else:
        start = datetime.strptime(item_hour(target), "%Y-%m-%dT%H")
    return int(start.replace(tzinfo=UTC).timestamp()) + RETENTION_DAYS * 86400


# ---- deltas: nested dicts of numbers ----------------------------------------------------

def add_into(total: Figures, delta: Mapping[str, Any], sign: int = 1) -> None:
    """total += sign x delta, dropping what becomes zero or empty (nested figures are
    dicts: an ABC check costs ~7 % of a rollups batch)."""
    for name, value in delta.items():
        if isinstance(value, dict):
            inner = total.setdefault(name, {})
            add_into(inner, value, sign)
            if not inner:
                del total[name]
        elif value:
            result = total.get(name, 0) + sign * value
            if result:
                total[name] = result
            else:
                total.pop(name, None)


Contribution = dict[Target, Figures]


def contribution(record: Mapping[str, Any] | None) -> Contribution:
    """f(record): what the record adds to the rollups (nothing for no record)."""
    out: Contribution = {}
    if not record or not record.get("created_at"):
        return out
    source = record.get("source") or source_of(str(record.get("key", "")))
    upload_hour = hour_text(hour_of_iso(upload_time(record)))  # type: ignore[arg-type]

    def add(target: Target, delta: Figures) -> None:
        add_into(out.setdefault(target, {}), delta)

    status = record.get("status")
    files: Figures = {"files_received": 1}
    if status in (Status.COMPLETED, Status.FAILED):
        files[f"files_{Status(status).value}"] = 1
        files["malformed"] = int(record.get("malformed_count") or 0)
    event_hours = _event_hours(record) if status == Status.COMPLETED else None
    if event_hours is not None:
        files["out_of_range"] = event_hours.out_of_range
    add(day_target(upload_hour, source), {upload_hour[11:13]: files})
    for hour in event_hours.hours if event_hours is not None else ():
        add(day_target(hour.hour, source), {hour.hour[11:13]: {
            "records": hour.records, "levels": hour.levels, "codes": hour.status_codes,
            "rt_sum": hour.rt_sum, BINS: hour.bins}})
        named = {e.endpoint: {"requests": e.requests, "errors": e.errors, BINS: e.bins}
                 for e in hour.endpoints}
        other = {"requests": hour.other_requests, "errors": hour.other_errors}
        add(endpoints_target(hour.hour, source), {NAMED: named, OTHER: other})
    return {target: delta for target, delta in out.items() if delta}


def _event_hours(record: Mapping[str, Any]) -> EventHours | None:
    value = record.get("event_hours")
    if not value:
        return None
    if isinstance(value, str):  # base64 text: a Lambda event's binary attribute
        import base64
        value = base64.b64decode(value)
    return decode(bytes(value))


def difference(new: Contribution, old: Contribution) -> Contribution:
    """new - old, without the items that do not change."""
    out: Contribution = {}
    for target in sorted(set(new) | set(old)):
        delta: Figures = {}
        add_into(delta, new.get(target, {}))
        add_into(delta, old.get(target, {}), -1)
        if delta:
            out[target] = delta
    return out


# ---- a stored document plus a delta -----------------------------------------------------

def fold(target: Target, document: Figures, delta: Mapping[str, Any]) -> Figures:
    """The document after the delta (the document is changed in place and returned)."""
    if target.kind == HOURS:
        document.pop(DAY, None)  # made again when packed
        for hour, figures in delta.items():
            slot = document.setdefault(hour, {})
            _fold_figures(slot, figures)
            slot.pop(CACHED, None)
            if BINS in slot:
                slot[CACHED] = DenseBins.from_json(slot[BINS]).quantiles(QUANTILES)
            if not slot:
                del document[hour]
        return document
    named = document.setdefault(NAMED, {})
    other = document.setdefault(OTHER, {})
    for name, figures in sorted(delta.get(NAMED, {}).items()):
        _fold_endpoint(named, other, name, figures)
    _fold_figures(other, delta.get(OTHER, {}))
    for part in (NAMED, OTHER):
        if not document[part]:
            del document[part]
    return document


def _fold_figures(stored: Figures, delta: Mapping[str, Any]) -> None:
    """Add a delta whose sketch is bin names -> counts to a document whose sketch is dense."""
    plain = {name: value for name, value in delta.items() if name != BINS}
    add_into(stored, plain)
    if delta.get(BINS):
        bins = DenseBins.from_json(stored[BINS]) if BINS in stored else DenseBins()
        bins.add_names(delta[BINS])
        if bins.empty():
            stored.pop(BINS, None)
        else:
            stored[BINS] = bins.to_json()


def _fold_endpoint(named: Figures, other: Figures, name: str, delta: Mapping[str, Any]) -> None:
    """An endpoint's delta: to its entry, a new entry while fewer than ENDPOINTS_KEPT are
    kept (or in place of the least busy one, which goes to `other`, if the new one is
    busier), else to `other`. Totals stay exact; a kept endpoint lacks at most what went
    to `other` before it was kept."""
    if name in named:
        _fold_figures(named[name], delta)
        if not named[name]:
            del named[name]
        return
    requests = delta.get("requests", 0)
    if requests > 0 and len(named) >= ENDPOINTS_KEPT:
        least = min(named, key=_busyness(named))
        if named[least].get("requests", 0) < requests:
            _fold_stored(other, named.pop(least))
    if requests > 0 and len(named) < ENDPOINTS_KEPT:
        named[name] = {}
        _fold_figures(named[name], delta)
    else:
        _fold_figures(other, delta)


def _busyness(named: Figures) -> Callable[[str], tuple[int, str]]:
    """The order in which named endpoints leave for other: least requests first, then name."""
    return lambda name: (named[name].get("requests", 0), name)


def _fold_stored(stored: Figures, more: Figures) -> None:
    """Add one stored entry (dense sketch) to another."""
    add_into(stored, {name: value for name, value in more.items() if name != BINS})
    if BINS in more:
        bins = DenseBins.from_json(stored[BINS]) if BINS in stored else DenseBins()
        bins.add(DenseBins.from_json(more[BINS]))
        stored[BINS] = bins.to_json()


DAY = "day"  # a packed day item's sketch of all its hours (GET /stats adds it for whole days)
_HEADER = struct.Struct("<I")
_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(dict[str, Any])


def pack(target: Target, document: Figures) -> bytes:
    """The stored form, at most DOCUMENT_BYTES_KEPT: an endpoints document larger than that
    packed has its least busy named endpoints moved to other (in place) until it fits."""
    packed = _pack(target, document)
    named = document.get(NAMED) if target.kind == ENDPOINTS else None
    while len(packed) > DOCUMENT_BYTES_KEPT and named:
        by_requests = sorted(named, key=_busyness(named))
        other = document.setdefault(OTHER, {})
        for name in by_requests[:max(1, len(named) // 10)]:
            _fold_stored(other, named.pop(name))
        if not named:
            del document[NAMED]
        packed = _pack(target, document)
    return packed


def _pack(target: Target, document: Figures) -> bytes:
    """JSON whose sketches point into an int64 array that follows it, compressed."""
    counts = array("q")

    def out(value: Mapping[str, Any]) -> Figures:
        shown: Figures = {}
        for name, inner in value.items():
            if name == BINS and isinstance(inner, list | tuple):  # not an endpoint "bins"
                zero, offset, values = inner
                shown[name] = [zero, offset, len(counts), len(values)]
                counts.extend(values)
            elif isinstance(inner, Mapping):
                shown[name] = out(inner)
            else:
                shown[name] = inner
        return shown

    hours = {name: slot for name, slot in document.items() if name != DAY}
    shown = out(hours)
    if target.kind == HOURS:
        day = DenseBins()
        for slot in hours.values():
            if BINS in slot:
                day.add(DenseBins.from_json(slot[BINS]))
        if not day.empty():
            shown[DAY] = out({BINS: day.to_json()})
    if sys.byteorder != "little":
        counts.byteswap()
    text = _ENCODER.encode(shown)
    return zlib.compress(_HEADER.pack(len(text)) + text + counts.tobytes(), 6)


def unpack(data: bytes) -> Figures:
    """The document; its sketches' counts are arrays (DenseBins reads them as they are, and
    makes a list when it changes them)."""
    raw = zlib.decompress(data)
    (length,) = _HEADER.unpack_from(raw)
    start = _HEADER.size + length
    counts = array("q")
    counts.frombytes(raw[start:])
    if sys.byteorder != "little":
        counts.byteswap()

    def back(value: Figures) -> Figures:
        for inner in value.values():
            if type(inner) is dict:
                pointer = inner.get(BINS)
                if type(pointer) is list:  # not an endpoint named "bins"
                    zero, offset, first, size = pointer
                    inner[BINS] = [zero, offset, counts[first:first + size]]
                back(inner)
        return value

    # msgspec decodes a day's document 5x faster than json (37 vs 211 µs)
    return back(_DECODER.decode(raw[_HEADER.size:start]))


# ---- exactly once: the writes of one stream record --------------------------------------

SEQUENCE_DIGITS = 40


def position(sequence_number: str) -> str:
    """Where a write stands in the stream: the sequence number, comparable as text."""
    if not sequence_number.isdigit() or len(sequence_number) > SEQUENCE_DIGITS:
        raise ValueError(f"not a stream sequence number: {sequence_number!r}")
    return sequence_number.zfill(SEQUENCE_DIGITS)


MARKER_PREFIX = "m_"


def marker(job_id: str) -> str:
    """The attribute in which an item remembers the last write of a job's it applied."""
    return f"{MARKER_PREFIX}{job_id}"


@dataclass(frozen=True)
class Change:
    """What one stream record adds to one item."""

    job_id: str
    position: str
    delta: Figures


@dataclass(frozen=True)
class Write:
    """One read-modify-write of an item: each change, in order, unless the item's marker
    for its job is already at its position or later."""

    target: Target
    changes: tuple[Change, ...]
    expires_at: int


def writes(changes: Iterable[tuple[str, str, Contribution]]) -> list[Write]:
    """The writes of a batch's changes (job, sequence number, f(new) - f(old)), in stream
    order: one per item, in an order that depends only on the changes."""
    by_target: dict[Target, list[Change]] = {}
    for job_id, sequence_number, delta in changes:
        for target, figures in delta.items():
            by_target.setdefault(target, []).append(
                Change(job_id, position(sequence_number), figures))
    return [Write(target, tuple(by_target[target]), expires_at(target))
            for target in sorted(by_target)]


# ---- reading: the answers of GET /stats and GET /endpoints ------------------------------

def whole_hours(since: datetime, until: datetime) -> tuple[datetime, datetime]:
    """The range widened to whole UTC hours: until is the end of its hour."""
    start = since.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    end = until.astimezone(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    return start, end


def hour_list(start: datetime, end: datetime) -> list[str]:
    """YYYY-MM-DDTHH of each UTC hour from `start` (whole hours) to before `end`: one
    strftime a day (an hour's each took 2.5 ms of a month's /stats)."""
    hours: list[str] = []
    day = start.replace(hour=0)
    while day < end:
        prefix = day.strftime("%Y-%m-%dT")
        first = start.hour if day <= start else 0
        last = min(24, int((end - day).total_seconds() // 3600))
        hours.extend(f"{prefix}{hour:02d}" for hour in range(first, last))
        day += timedelta(days=1)
    return hours


@dataclass
class HourFigures:
    received: int = 0
    completed: int = 0
    failed: int = 0
    malformed: int = 0
    out_of_range: int = 0
    records: int = 0
    rt_sum: float = 0.0
    levels: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LEVELS, 0))
    status_codes: dict[str, int] = field(default_factory=dict)
    bins: DenseBins = field(default_factory=DenseBins)
    slots: int = 0
    cached: list[float] | None = None
    _first: Any = field(default=None, repr=False)  # the only slot's sketch, not added yet

    def add_document(self, figures: Mapping[str, Any]) -> None:
        """Add one hour of a day item's document (its sketch only when a second one comes:
        alone, its cached quantiles answer)."""
        self.received += figures.get("files_received", 0)
        self.completed += figures.get("files_completed", 0)
        self.failed += figures.get("files_failed", 0)
        self.malformed += figures.get("malformed", 0)
        self.out_of_range += figures.get("out_of_range", 0)
        self.records += figures.get("records", 0)
        self.rt_sum += figures.get("rt_sum", 0)
        for mine, theirs in ((self.levels, figures.get("levels")),
                             (self.status_codes, figures.get("codes"))):
            for key, value in (theirs or {}).items():
                mine[key] = mine.get(key, 0) + value
        self.slots += 1
        if self.slots == 1:
            self._first, self.cached = figures.get(BINS), figures.get(CACHED)
            return
        self.cached = None
        self.sketch()
        if BINS in figures:
            self.bins.add(DenseBins.from_json(figures[BINS]))

    def sketch(self) -> DenseBins:
        if self._first is not None:
            self.bins.add(DenseBins.from_json(self._first))
            self._first = None
        return self.bins

    def add_counts(self, other: HourFigures) -> None:
        """Add another's figures but its sketch (range_sketch makes the range's)."""
        self.received += other.received
        self.completed += other.completed
        self.failed += other.failed
        self.malformed += other.malformed
        self.out_of_range += other.out_of_range
        self.records += other.records
        self.rt_sum += other.rt_sum
        for mine, theirs in ((self.levels, other.levels),
                             (self.status_codes, other.status_codes)):
            for key, value in theirs.items():
                mine[key] = mine.get(key, 0) + value

    @property
    def error_rate(self) -> float | None:
        return round(self.levels["error"] / self.records, 6) if self.records > 0 else None

    def latency(self) -> dict[str, float] | None:
        values = self.cached if self.cached is not None else self.sketch().quantiles(QUANTILES)
        if values is None or not self.records:
            return None
        p50, p95, p99, top = values
        return {"p50": p50, "p95": p95, "p99": p99, "max": top,
                "mean": round(self.rt_sum / self.records, 3)}


RollupItem = tuple[Target, Figures]  # an item's key and its document


def stats_by_hour(items: Iterable[RollupItem], hours: list[str], source: str | None
                  ) -> dict[str, HourFigures]:
    """Every hour of the range (oldest first) with the figures of its day items."""
    figures = {hour: HourFigures() for hour in hours}
    for target, document in items:
        if target.kind != HOURS or (source is not None and target.source != source):
            continue
        for hour, slot in document.items():
            into = figures.get(f"{target.day}T{hour}")
            if into is not None:
                into.add_document(slot)
    return figures


def range_sketch(items: Iterable[RollupItem], hours: list[str], source: str | None
                 ) -> DenseBins:
    """The latency sketch of the range: a whole day's from its item's DAY sketch, the hours
    of a day the range cuts one by one."""
    wanted = set(hours)
    total = DenseBins()
    for target, document in items:
        if target.kind != HOURS or (source is not None and target.source != source):
            continue
        day = target.day
        if all(f"{day}T{hh:02d}" in wanted for hh in range(24)):
            if DAY in document:
                total.add(DenseBins.from_json(document[DAY][BINS]))
            continue
        for hour, slot in document.items():
            if hour != DAY and f"{day}T{hour}" in wanted and BINS in slot:
                total.add(DenseBins.from_json(slot[BINS]))
    return total


@dataclass
class EndpointFigures:
    requests: int = 0
    errors: int = 0
    bins: DenseBins = field(default_factory=DenseBins)

    def add_document(self, figures: Mapping[str, Any]) -> None:
        self.requests += figures.get("requests", 0)
        self.errors += figures.get("errors", 0)
        if BINS in figures:
            self.bins.add(DenseBins.from_json(figures[BINS]))


def endpoints_in(items: Iterable[RollupItem], hours: list[str], source: str | None
                 ) -> tuple[dict[str, EndpointFigures], EndpointFigures]:
    """Per endpoint name, and the `other` bucket, over the endpoint items of the range."""
    named: dict[str, EndpointFigures] = {}
    other = EndpointFigures()
    wanted = set(hours)
    for target, document in items:
        if target.kind != ENDPOINTS or item_hour(target) not in wanted \
                or (source is not None and target.source != source):
            continue
        for name, figures in document.get(NAMED, {}).items():
            named.setdefault(name, EndpointFigures()).add_document(figures)
        other.add_document(document.get(OTHER, {}))
    return named, other


def p95(bins: DenseBins) -> float | None:
    values = bins.quantiles((0.95,))
    return values[0] if values else None


ACCURACY = {
    "counts": "exact",
    "percentiles_relative_error": RELATIVE_ACCURACY,
    "percentile_rank": "q*(n-1), 0-based, rounded down (DDSketch); a file's own "
                       "p50/p95/p99 use the nearest rank ceil(q*n), 1-based",
    "zero_bin_below_ms": FLOOR_MS,
    "max": "the highest sketch bin: within the same relative error",
    "endpoints_per_hour_per_file": ENDPOINTS_PER_HOUR,
    "endpoints_per_hour": ENDPOINTS_KEPT,
}
SOURCES = tuple(s.value for s in Source)
