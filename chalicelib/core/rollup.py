"""Rollups: what each result record adds to the hour items, and how they read back
(docs/spec.md, "Rollups"). Pure: the stats table's adapter is chalicelib.rollups.

f(record) maps rollup items (`Target`) to counters. Any record adds `files_received` on its
upload hour; a final one adds its file-level figures there, and its `event_hours` to the
hours of its events. A change of a record adds f(new) - f(old), so a redrive (failed ->
queued -> completed) moves the file from failed to completed, and a record removed (TTL)
changes nothing.

Items, in the stats table (partition `series`, sort `hour`), one partition per UTC day and
kind, so a day's hours are one Query and no partition takes every write:

    hours#YYYY-MM-DD      HH#source                 files, levels, codes, latency sketch
    endpoints#YYYY-MM-DD  HH#source#<name digest>   one endpoint: requests, errors, sketch
    endpoints#YYYY-MM-DD  HH#source#~other          the endpoints past the per-hour bound
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

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
from chalicelib.core.sketch import FLOOR_MS, RELATIVE_ACCURACY, ZERO, quantiles

HOURS = "hours"
ENDPOINTS = "endpoints"
LEVELS = ("info", "warn", "error", "debug")
BIN_PREFIX = "b_"
CODE_PREFIX = "sc_"
LEVEL_PREFIX = "level_"
NAME = "endpoint"  # an endpoint item's name (SET, not a counter)
FILE_COUNTERS = ("files_received", "files_completed", "files_failed", "malformed",
                 "out_of_range")
Number = int | float


@dataclass(frozen=True, order=True)
class Target:
    """A rollup item's key."""

    series: str
    hour: str

    @property
    def day(self) -> str:
        return self.series.split("#", 1)[1]

    @property
    def hour_text(self) -> str:
        return f"{self.day}T{self.hour[:2]}"

    @property
    def source(self) -> str:
        return self.hour.split("#")[1]


def hours_target(hour: str, source: str) -> Target:
    """hour: YYYY-MM-DDTHH."""
    return Target(f"{HOURS}#{hour[:10]}", f"{hour[11:13]}#{source}")


def endpoint_target(hour: str, source: str, endpoint: str) -> Target:
    name = OTHER if endpoint == OTHER else hashlib.sha256(endpoint.encode()).hexdigest()[:20]
    return Target(f"{ENDPOINTS}#{hour[:10]}", f"{hour[11:13]}#{source}#{name}")


def expires_at(target: Target) -> int:
    """Rollup items live RETENTION_DAYS after their hour."""
    start = datetime.strptime(target.hour_text, "%Y-%m-%dT%H").replace(tzinfo=UTC)
    return int(start.timestamp()) + RETENTION_DAYS * 86400


@dataclass
class Delta:
    """What one change adds to one item: counters, and an endpoint's name."""

    counters: dict[str, Number] = field(default_factory=dict)
    name: str | None = None

    def add(self, counter: str, value: Number) -> None:
        if value:
            total = self.counters.get(counter, 0) + value
            if total:
                self.counters[counter] = total
            else:
                del self.counters[counter]


Contribution = dict[Target, Delta]


def contribution(record: Mapping[str, Any] | None) -> Contribution:
    """f(record): what the record adds to the rollups (nothing for no record)."""
    out: Contribution = {}
    if not record or not record.get("created_at"):
        return out
    source = record.get("source") or source_of(str(record.get("key", "")))
    upload_hour = hour_text(hour_of_iso(upload_time(record)))  # type: ignore[arg-type]

    def delta(target: Target) -> Delta:
        return out.setdefault(target, Delta())

    files = delta(hours_target(upload_hour, source))
    files.add("files_received", 1)
    status = record.get("status")
    if status not in (Status.COMPLETED, Status.FAILED):
        return out
    files.add(f"files_{Status(status).value}", 1)
    files.add("malformed", int(record.get("malformed_count") or 0))
    if status != Status.COMPLETED or not record.get("event_hours"):
        return out
    event_hours = _event_hours(record["event_hours"])
    files.add("out_of_range", event_hours.out_of_range)
    for hour in event_hours.hours:
        counts = delta(hours_target(hour.hour, source))
        counts.add("records", hour.records)
        for level, n in hour.levels.items():
            counts.add(LEVEL_PREFIX + level, n)
        for code, n in hour.status_codes.items():
            counts.add(CODE_PREFIX + code, n)
        counts.add("rt_sum", hour.rt_sum)
        _add_bins(counts, hour.bins)
        for endpoint in hour.endpoints:
            item = delta(endpoint_target(hour.hour, source, endpoint.endpoint))
            item.name = endpoint.endpoint
            item.add("requests", endpoint.requests)
            item.add("errors", endpoint.errors)
            _add_bins(item, endpoint.bins)
        if hour.other_requests:
            other = delta(endpoint_target(hour.hour, source, OTHER))
            other.name = OTHER
            other.add("requests", hour.other_requests)
            other.add("errors", hour.other_errors)
    return out


def _event_hours(value: Any) -> EventHours:
    if isinstance(value, str):  # base64 text: a Lambda event's binary attribute
        import base64
        value = base64.b64decode(value)
    return decode(bytes(value))


def _add_bins(delta: Delta, bins: Mapping[str, int]) -> None:
    for name, n in bins.items():
        delta.add(BIN_PREFIX + name, n)


def difference(new: Contribution, old: Contribution) -> Contribution:
    """new - old, without the items and counters that do not change."""
    out: Contribution = {}
    for target in sorted(set(new) | set(old)):
        delta = Delta(name=(new.get(target) or old.get(target) or Delta()).name)
        for counters, sign in ((new.get(target), 1), (old.get(target), -1)):
            for counter, value in (counters.counters if counters else {}).items():
                delta.add(counter, sign * value)
        if delta.counters:
            out[target] = delta
    return out


# ---- exactly once: the writes of one stream record --------------------------------------

# 100 x "#a99 :a99, " is 1.2 KB of an expression's 4 KB (moto's parser recurses per action:
# 150 overflowed its stack under pytest, 100 does not).
MAX_ADDS_PER_WRITE = 100
SEQUENCE_DIGITS = 40


def position(sequence_number: str, chunk: int) -> str:
    """Where a write stands in the stream: sequence number and chunk, comparable as text."""
    if not sequence_number.isdigit() or len(sequence_number) > SEQUENCE_DIGITS:
        raise ValueError(f"not a stream sequence number: {sequence_number!r}")
    return f"{sequence_number.zfill(SEQUENCE_DIGITS)}.{chunk:04d}"


def marker(job_id: str) -> str:
    """The attribute in which an item remembers the last write of a job's it applied."""
    return f"m_{job_id}"


@dataclass(frozen=True)
class Write:
    """One conditional UpdateItem: apply `adds` unless the item's marker for the job is
    already at `position` or later."""

    target: Target
    job_id: str
    position: str
    adds: dict[str, Number]
    name: str | None
    expires_at: int


def writes(delta: Contribution, job_id: str, sequence_number: str) -> Iterator[Write]:
    """A change's writes, in an order that does not depend on anything but the change."""
    for target in sorted(delta):
        counters = sorted(delta[target].counters.items())
        for chunk, start in enumerate(range(0, len(counters), MAX_ADDS_PER_WRITE)):
            yield Write(target, job_id, position(sequence_number, chunk),
                        dict(counters[start:start + MAX_ADDS_PER_WRITE]),
                        delta[target].name if chunk == 0 else None, expires_at(target))


# ---- reading: the answers of GET /stats and GET /endpoints ------------------------------

def days_of(since: datetime, until: datetime) -> list[str]:
    day = since.astimezone(UTC).date()
    last = until.astimezone(UTC).date()
    days = []
    while day <= last:
        days.append(day.isoformat())
        day += timedelta(days=1)
    return days


def whole_hours(since: datetime, until: datetime) -> tuple[datetime, datetime]:
    """The range widened to whole UTC hours: until is the end of its hour."""
    start = since.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    end = until.astimezone(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    return start, end


def hour_list(start: datetime, end: datetime) -> list[str]:
    hours = []
    while start < end:
        hours.append(start.strftime("%Y-%m-%dT%H"))
        start += timedelta(hours=1)
    return hours


def _number(value: Any) -> Number:
    return value if isinstance(value, int | float) else float(value)


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
    bins: dict[str, int] = field(default_factory=dict)

    def add_item(self, item: Mapping[str, Any]) -> None:
        for name, value in item.items():
            if name.startswith(BIN_PREFIX):
                _bump(self.bins, name[len(BIN_PREFIX):], int(value))
            elif name.startswith(CODE_PREFIX):
                _bump(self.status_codes, name[len(CODE_PREFIX):], int(value))
            elif name.startswith(LEVEL_PREFIX):
                _bump(self.levels, name[len(LEVEL_PREFIX):], int(value))
            elif name == "rt_sum":
                self.rt_sum += float(value)
            elif name in ("records", "malformed", "out_of_range"):
                setattr(self, name, getattr(self, name) + int(value))
            elif name.startswith("files_"):
                kind = name[len("files_"):]
                if kind in ("received", "completed", "failed"):
                    setattr(self, kind, getattr(self, kind) + int(value))

    def merge(self, other: HourFigures) -> None:
        for name in ("received", "completed", "failed", "malformed", "out_of_range",
                     "records"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.rt_sum += other.rt_sum
        for mine, theirs in ((self.levels, other.levels),
                             (self.status_codes, other.status_codes),
                             (self.bins, other.bins)):
            for key, value in theirs.items():
                _bump(mine, key, value)

    @property
    def error_rate(self) -> float | None:
        return round(self.levels["error"] / self.records, 6) if self.records > 0 else None

    def latency(self) -> dict[str, float] | None:
        values = quantiles(self.bins, (0.5, 0.95, 0.99, 1.0))
        if values is None or not self.records:
            return None
        p50, p95, p99, top = values
        return {"p50": p50, "p95": p95, "p99": p99, "max": top,
                "mean": round(self.rt_sum / self.records, 3)}


def _bump(counts: dict[str, int], key: str, value: int) -> None:
    counts[key] = counts.get(key, 0) + value


def wanted(item: Mapping[str, Any], hours: set[str], source: str | None) -> Target | None:
    """The item's key if it lies in the hours asked for and has the source asked for."""
    target = Target(str(item["series"]), str(item["hour"]))
    if target.hour_text not in hours or (source is not None and target.source != source):
        return None
    return target


def stats_by_hour(items: Iterable[Mapping[str, Any]], hours: list[str], source: str | None
                  ) -> dict[str, HourFigures]:
    """Every hour of the range (oldest first) with the figures of its hour items."""
    figures = {hour: HourFigures() for hour in hours}
    wanted_hours = set(hours)
    for item in items:
        target = wanted(item, wanted_hours, source)
        if target is not None:
            figures[target.hour_text].add_item(item)
    return figures


@dataclass
class EndpointFigures:
    requests: int = 0
    errors: int = 0
    bins: dict[str, int] = field(default_factory=dict)


def endpoints_in(items: Iterable[Mapping[str, Any]], hours: list[str], source: str | None
                 ) -> tuple[dict[str, EndpointFigures], EndpointFigures]:
    """Per endpoint name, and the `other` bucket, over the endpoint items of the range."""
    named: dict[str, EndpointFigures] = {}
    other = EndpointFigures()
    wanted_hours = set(hours)
    for item in items:
        target = wanted(item, wanted_hours, source)
        if target is None:
            continue
        name = str(item.get(NAME, OTHER))
        figures = other if name == OTHER else named.setdefault(name, EndpointFigures())
        figures.requests += int(item.get("requests", 0))
        figures.errors += int(item.get("errors", 0))
        for key, value in item.items():
            if key.startswith(BIN_PREFIX):
                _bump(figures.bins, key[len(BIN_PREFIX):], int(value))
    return named, other


def p95(bins: Mapping[str, int]) -> float | None:
    values = quantiles(bins, (0.95,))
    return values[0] if values else None


ACCURACY = {
    "counts": "exact",
    "percentiles_relative_error": RELATIVE_ACCURACY,
    "percentile_rank": "q*(n-1), 0-based, rounded down (DDSketch); a file's own "
                       "p50/p95/p99 use the nearest rank ceil(q*n), 1-based",
    "zero_bin_below_ms": FLOOR_MS,
    "max": "the highest sketch bin: within the same relative error",
    "endpoints_per_hour_per_file": ENDPOINTS_PER_HOUR,
}
SOURCES = tuple(s.value for s in Source)
ZERO_BIN = ZERO
