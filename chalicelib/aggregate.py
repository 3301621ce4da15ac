"""Exact statistics over valid records, accumulated block by block.

Everything is counted in hash tables keyed by distinct values (endpoint x response time,
status code, level, user), so memory grows with the number of distinct values, not lines.
Percentiles are exact nearest-rank over the response-time histogram.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from itertools import chain, compress, repeat
from operator import attrgetter
from typing import Any

from chalicelib.records import LogRecord, normalize_level
from chalicelib.reference import MAX_SAMPLES, TOP_ENDPOINTS, iso_utc

_level = attrgetter("level")
_endpoint = attrgetter("endpoint")
_time = attrgetter("response_time_ms")
_status = attrgetter("status_code")
_user = attrgetter("user_id")
_timestamp = attrgetter("timestamp")


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _extremes(stamps: Sequence[datetime]) -> tuple[datetime, datetime]:
    try:
        return min(stamps), max(stamps)
    except TypeError:  # naive (UTC) mixed with offset-aware values
        aware = [_as_utc(s) for s in stamps]
        return min(aware), max(aware)


class Aggregator:
    """Accumulates one file's statistics; `result()` returns the record's content fields."""

    def __init__(self) -> None:
        self.line_count = 0
        self.malformed_count = 0
        self.samples: list[dict[str, Any]] = []
        self._levels: Counter[str] = Counter()
        self._level_names: dict[str, str] = {}
        self._endpoint_times: Counter[tuple[str, Any]] = Counter()
        self._endpoint_errors: Counter[str] = Counter()
        self._status: Counter[int] = Counter()
        self._users: set[str] = set()
        self._first: datetime | None = None
        self._last: datetime | None = None

    def malformed(self, line: int, reason: str) -> None:
        self.malformed_count += 1
        if len(self.samples) < MAX_SAMPLES:
            self.samples.append({"line": line, "reason": reason})

    def level_of(self, raw: str) -> str | None:
        name = self._level_names.get(raw)
        if name is None:
            name = normalize_level(raw)
            if name is not None:
                self._level_names[raw] = name
        return name

    def add(self, records: list[LogRecord]) -> bool:
        """Add a batch of decoded records; False (and nothing added) if a level is invalid."""
        if not records:
            return True
        levels = list(map(_level, records))
        level_counts = Counter(levels)
        error_forms = set()
        for raw in level_counts:
            name = self.level_of(raw)
            if name is None:
                return False
            if name == "ERROR":
                error_forms.add(raw)
        self._levels.update(level_counts)
        endpoints = list(map(_endpoint, records))
        self._endpoint_times.update(zip(endpoints, map(_time, records), strict=True))
        if error_forms:
            self._endpoint_errors.update(
                compress(endpoints, map(error_forms.__contains__, levels)))
        self._status.update(map(_status, records))
        self._users.update(map(_user, records))
        first, last = _extremes(list(map(_timestamp, records)))
        self._merge_extremes(first, last)
        return True

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

    def result(self) -> dict[str, Any]:
        levels: Counter[str] = Counter()
        for raw, count in self._levels.items():
            levels[self._level_names[raw]] += count
        histogram: Counter[Any] = Counter()
        per_endpoint: dict[str, list[tuple[Any, int]]] = {}
        for (endpoint, value), count in self._endpoint_times.items():
            histogram[value] += count
            per_endpoint.setdefault(endpoint, []).append((value, count))
        n = sum(histogram.values())
        counts = {e: sum(c for _, c in pairs) for e, pairs in per_endpoint.items()}
        top = sorted(counts, key=lambda e: (-counts[e], e))[:TOP_ENDPOINTS]
        p50 = p95 = p99 = None
        if n:
            p50, p95, p99 = _percentiles(histogram, n, (50, 95, 99))
        return {
            "line_count": self.line_count,
            "malformed_count": self.malformed_count,
            "malformed_samples": list(self.samples),
            "info_count": levels["INFO"],
            "warn_count": levels["WARN"],
            "error_count": levels["ERROR"],
            "debug_count": levels["DEBUG"],
            "avg_response_time_ms": round(_total(histogram.items()) / n, 3) if n else None,
            "max_response_time_ms": max(histogram) if n else None,
            "p50_response_time_ms": p50,
            "p95_response_time_ms": p95,
            "p99_response_time_ms": p99,
            "unique_users": len(self._users),
            "unique_endpoints": len(per_endpoint),
            "status_codes": {str(code): c for code, c in sorted(self._status.items())},
            "top_endpoints": [
                {
                    "endpoint": e,
                    "count": counts[e],
                    "error_count": self._endpoint_errors[e],
                    "avg_response_time_ms": round(_total(per_endpoint[e]) / counts[e], 3),
                }
                for e in top
            ],
            "first_timestamp": iso_utc(self._first) if n and self._first else None,
            "last_timestamp": iso_utc(self._last) if n and self._last else None,
        }


def _total(pairs: Any) -> float:
    """Correctly rounded sum of every value counted (the same as math.fsum over all of them)."""
    pairs = list(pairs)
    if all(type(v) is int for v, _ in pairs):
        return float(sum(v * c for v, c in pairs)) if _exact_in_float(pairs) else math.fsum(
            chain.from_iterable(repeat(v, c) for v, c in pairs))
    return math.fsum(chain.from_iterable(repeat(v, c) for v, c in pairs))


def _exact_in_float(pairs: list[tuple[int, int]]) -> bool:
    return all(abs(v) < 2**53 for v, _ in pairs) and sum(v * c for v, c in pairs) < 2**53


def _percentiles(histogram: Counter[Any], n: int, ps: tuple[int, ...]) -> list[Any]:
    ranks = [(p * n + 99) // 100 for p in ps]
    out: list[Any] = []
    seen = 0
    want = iter(ranks)
    target = next(want)
    for value in sorted(histogram):
        seen += histogram[value]
        while target is not None and seen >= target:
            out.append(value)
            target = next(want, None)
        if target is None:
            break
    return out
