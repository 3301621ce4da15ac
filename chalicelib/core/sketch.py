"""Response-time sketches that add up: DDSketch bins at 1 % relative accuracy (docs/spec.md,
"Rollups").

A sketch is a map bin key -> count plus a count of values in the zero bin. Bins are kept as
plain counters, so sketches merge by adding counts (DynamoDB `ADD`, no read first), and the
`ddsketch` package maps values to keys and reads quantiles back.

Bounds, by construction: a value below `FLOOR_MS` goes to the zero bin (read back as 0); the
largest valid value is records.MAX_RESPONSE_TIME_MS, so keys lie in
[key(FLOOR_MS), key(MAX_RESPONSE_TIME_MS)]: at most `MAX_BINS` bins, whatever the values.
"""

from __future__ import annotations

import operator
from bisect import bisect_right
from collections.abc import Iterable, Mapping, MutableSequence
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

from ddsketch.mapping import LogarithmicMapping

from chalicelib.core.records import MAX_RESPONSE_TIME_MS

RELATIVE_ACCURACY = 0.01
FLOOR_MS = 0.001  # one microsecond: below it a value reads back as 0
MAPPING = LogarithmicMapping(RELATIVE_ACCURACY)
_key = MAPPING.key
MIN_KEY = _key(FLOOR_MS)
MAX_KEY = _key(MAX_RESPONSE_TIME_MS)
MAX_BINS = MAX_KEY - MIN_KEY + 2  # every key, and the zero bin
ZERO = "z"  # the zero bin's name among a sketch's bins


def bins_of(histogram: Mapping[Any, int]) -> dict[str, int]:
    """The sketch of values given as value -> count: bin name (key as text, or ZERO) -> count."""
    bins: dict[str, int] = {}
    get = bins.get
    for value, count in histogram.items():
        name = bin_name(value)
        bins[name] = get(name, 0) + count
    return bins


class _BinNames(dict[Any, str]):
    """value -> the name of its bin, worked out once per distinct value (the mapping's key
    is a Python call); it holds at most NAMES_KEPT values, then starts afresh."""

    def __missing__(self, value: Any) -> str:
        if len(self) >= NAMES_KEPT:
            self.clear()
        name = self[value] = str(_key(value)) if value >= FLOOR_MS else ZERO
        return name


NAMES_KEPT = 1 << 14
bin_name = _BinNames().__getitem__


def add_bins(total: dict[str, int], more: Mapping[str, int], sign: int = 1) -> None:
    for name, count in more.items():
        value = total.get(name, 0) + sign * count
        if value:
            total[name] = value
        else:
            total.pop(name, None)


def quantiles(bins: Mapping[str, int], qs: Iterable[float]) -> list[float] | None:
    """Quantiles of a sketch given as bin name -> count (None when empty)."""
    dense = DenseBins()
    dense.add_names(bins)
    return dense.quantiles(qs)


@dataclass
class DenseBins:
    """A sketch as stored and read back: the zero bin's count and the counts of the keys
    offset, offset + 1, ... (JSON: [zero, offset, [counts]]). Adding two is one C-level
    pass (map over the overlapping slice), which a dict of bins cannot do."""

    zero: int = 0
    offset: int = 0
    counts: MutableSequence[int] = field(default_factory=list)  # a list, or read: an array

    @classmethod
    def from_json(cls, value: Any) -> DenseBins:
        zero, offset, counts = value
        return cls(zero, offset, counts)

    def to_json(self) -> list[Any]:
        return [self.zero, self.offset, list(self.counts)]

    @property
    def count(self) -> int:
        return self.zero + sum(self.counts)

    def empty(self) -> bool:
        return not self.zero and not self.counts

    def _cover(self, low: int, high: int) -> None:
        """Make keys low..high-1 addressable."""
        if type(self.counts) is not list:
            self.counts = list(self.counts)
        if not self.counts:
            self.offset, self.counts = low, [0] * (high - low)
            return
        if low < self.offset:
            self.counts[0:0] = [0] * (self.offset - low)
            self.offset = low
        end = self.offset + len(self.counts)
        if high > end:
            self.counts.extend([0] * (high - end))

    def add(self, other: DenseBins, sign: int = 1) -> None:
        if sign == 1 and not self.counts:
            self.zero += other.zero
            self.offset, self.counts = other.offset, list(other.counts)
            return
        self.zero += sign * other.zero
        if other.counts:
            self._cover(other.offset, other.offset + len(other.counts))
            start = other.offset - self.offset
            stop = start + len(other.counts)
            more = other.counts if sign == 1 else [-c for c in other.counts]
            self.counts[start:stop] = map(operator.add, self.counts[start:stop], more)
        self._trim()

    def add_names(self, bins: Mapping[str, int], sign: int = 1) -> None:
        """Add a sketch given as bin name -> count (a record's form)."""
        keys = {int(name): n for name, n in bins.items() if name != ZERO}
        self.zero += sign * bins.get(ZERO, 0)
        if keys:
            self._cover(min(keys), max(keys) + 1)
            for key, n in keys.items():
                self.counts[key - self.offset] += sign * n
        self._trim()

    def _trim(self) -> None:
        counts = self.counts
        start, stop = 0, len(counts)
        while start < stop and not counts[start]:
            start += 1
        while stop > start and not counts[stop - 1]:
            stop -= 1
        if (start, stop) != (0, len(counts)):
            self.counts = counts[start:stop]
            self.offset = self.offset + start if self.counts else 0

    def quantiles(self, qs: Iterable[float]) -> list[float] | None:
        """Each within RELATIVE_ACCURACY of the value ranked q x (n - 1) among the n values
        (0-based, rounded down): ddsketch's convention, and its answers exactly."""
        n = self.count
        if n <= 0:
            return None
        cumulative = list(accumulate(self.counts))
        out = []
        for q in qs:
            rank = q * (n - 1)
            if rank < self.zero:
                out.append(0.0)
                continue
            index = min(bisect_right(cumulative, rank - self.zero), len(cumulative) - 1)
            out.append(_rounded(MAPPING.value(self.offset + index)))
        return out


def _rounded(value: float | None) -> float:
    """Six significant digits: the bound is 1 %, more digits only suggest precision."""
    return float(f"{value or 0.0:.6g}")
