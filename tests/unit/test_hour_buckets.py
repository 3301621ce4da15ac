"""The aggregator's hour buckets (chalicelib.core.eventtime, filled by core.aggregate) against
the same figures counted plainly, record by record: equal counts, in the same order, with the
same value types (5 is not 5.0 in a record), so the same `event_hours` bytes and percentiles,
however the records come in batches and whatever the buckets folded and packed meanwhile."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from unittest.mock import patch

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.core import aggregate
from chalicelib.core.aggregate import Aggregator, _percentiles
from chalicelib.core.eventtime import Packed, hour_number, hour_numbers, partials
from chalicelib.core.records import LogRecord, normalize_level

START = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


class PlainEndpoint:
    def __init__(self) -> None:
        self.requests = 0
        self.times: Counter[Any] = Counter()

    def all_times(self) -> Counter[Any]:
        return self.times


class PlainHour:
    """An hour's figures as the partials read them, counted one record at a time."""

    def __init__(self) -> None:
        self.records = 0
        self.levels: Counter[str] = Counter()
        self.codes: Counter[int] = Counter()
        self.times: Counter[Any] = Counter()
        self.errors: Counter[str] = Counter()
        self.endpoints: dict[str, PlainEndpoint] = {}

    def all_times(self) -> Counter[Any]:
        return self.times

    def add(self, record: LogRecord) -> None:
        self.records += 1
        self.levels[record.level] += 1
        self.codes[record.status_code] += 1
        self.times[record.response_time_ms] += 1
        endpoint = self.endpoints.setdefault(record.endpoint, PlainEndpoint())
        endpoint.requests += 1
        endpoint.times[record.response_time_ms] += 1
        if normalize_level(record.level) == "ERROR":
            self.errors[record.endpoint] += 1


def plain_hours(batches: list[list[LogRecord]]) -> dict[int, PlainHour]:
    hours: dict[int, PlainHour] = {}
    for record in (r for batch in batches for r in batch):
        hours.setdefault(hour_number(record.timestamp), PlainHour()).add(record)
    return hours


def typed(counts: Counter[Any]) -> list[tuple[Any, str, int]]:
    """A Counter's items in order, each value with its type."""
    return [(value, type(value).__name__, n) for value, n in counts.items()]


def figures(hours: dict[int, Any]) -> list[Any]:
    return [(h, b.records, dict(b.levels), dict(b.codes), typed(b.all_times()),
             {e: n for e, n in b.errors.items() if n},
             [(e, ep.requests, typed(ep.all_times())) for e, ep in sorted(b.endpoints.items())])
            for h, b in hours.items()]


moments = st.one_of(
    st.integers(0, 6 * 3600 - 1).map(lambda s: START + timedelta(seconds=s)),
    st.integers(0, 6 * 3600 - 1).map(lambda s: (START + timedelta(seconds=s)).replace(tzinfo=None)),
    st.integers(0, 6 * 3600 - 1).map(
        lambda s: (START + timedelta(seconds=s)).astimezone(timezone(timedelta(hours=-3)))),
)
response_times = st.one_of(
    st.sampled_from([0, 0.0, -0.0, 5, 5.0, 65535, 65536, 10**15, 0.0005]),
    st.integers(0, 70_000),
    st.floats(0, 1e6, allow_nan=False),
)
records = st.builds(
    LogRecord, timestamp=moments, level=st.sampled_from(["INFO", "ERROR", "error", "WARN"]),
    endpoint=st.sampled_from(["/a", "/b", "/c"]), response_time_ms=response_times,
    status_code=st.sampled_from([200, 201, 404, 500, 503]), user_id=st.sampled_from(["u", "v"]))
# Mostly in time order, as files are, with a batch now and then that goes back.
batch_lists = st.lists(st.lists(records, min_size=1, max_size=12), min_size=1, max_size=40).map(
    lambda batches: [sorted(b, key=lambda r: hour_number(r.timestamp)) if i % 3 else b
                     for i, b in enumerate(batches)])


# The defaults, and thresholds that fold and pack after nearly every batch.
THRESHOLDS = [{"FOLD_AT": aggregate.FOLD_AT},
              {"FOLD_AT": 5, "PACK_EVERY": 1, "IDLE_BATCHES": 1}]


@pytest.mark.parametrize("thresholds", THRESHOLDS)
@settings(max_examples=150, deadline=None)
@given(batches=batch_lists)
def test_hour_buckets_hold_what_a_plain_count_holds(thresholds: dict[str, int],
                                                    batches: list[list[LogRecord]]) -> None:
    with patch.multiple(aggregate, **thresholds):
        agg = Aggregator()
        for batch in batches:
            assert agg.add(batch)
        statistics = agg.result()
    plain = plain_hours(batches)
    assert figures(agg.hours) == figures(plain)
    level_names = {raw: normalize_level(raw) or "" for raw in ("INFO", "ERROR", "error", "WARN")}
    upload = max(plain) - 2  # the last hour lies ahead of the upload: still in range
    assert agg.event_hours(upload) == partials(plain, level_names, upload)  # type: ignore[arg-type]
    histogram: Counter[Any] = Counter()
    for hour in plain.values():
        histogram.update(hour.times)
    n = sum(histogram.values())
    expected = [*_percentiles(histogram, n, (50, 95, 99)), max(histogram)]
    got = [statistics[f"{name}_response_time_ms"] for name in ("p50", "p95", "p99", "max")]
    assert [(v, type(v)) for v in got] == [(v + 0, type(v + 0)) for v in expected]


@given(st.lists(st.one_of(st.integers(0, 70_000), st.floats(0, 1e6, allow_nan=False)), min_size=1),
       st.lists(st.integers(1, 100_000), min_size=1))
def test_packed_counts_come_back_in_order_with_their_types(values: list[Any],
                                                           counts: list[int]) -> None:
    counter = Counter(dict(zip(values, counts * len(values), strict=False)))
    more = Counter(values[::-1])
    merged = counter.copy()
    merged.update(more)
    back = Packed.of(counter).with_(more)
    assert typed(back) == typed(merged)


def test_hours_of_naive_and_offset_aware_moments_mixed() -> None:
    mixed = [START, START.replace(tzinfo=None) + timedelta(hours=2),
             START.astimezone(timezone(timedelta(hours=5))) + timedelta(minutes=61)]
    assert hour_numbers(mixed) == [hour_number(m) for m in mixed]
    aware = mixed[::2]
    assert hour_numbers(aware) == [hour_number(m) for m in aware]
