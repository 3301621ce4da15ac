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

from collections.abc import Iterable, Mapping
from typing import Any

from ddsketch import DDSketch
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
    """Quantiles of a sketch (None when empty), each within RELATIVE_ACCURACY of the value
    ranked q x (n - 1) among the n values (0-based, rounded down): ddsketch's convention."""
    sketch = DDSketch(RELATIVE_ACCURACY)
    for name, n in bins.items():
        if n > 0:
            sketch.add(0.0 if name == ZERO else MAPPING.value(int(name)), n)
    if not sketch.count:
        return None
    return [_rounded(sketch.get_quantile_value(q)) for q in qs]


def _rounded(value: float | None) -> float:
    """Six significant digits: the bound is 1 %, more digits only suggest precision."""
    return float(f"{value or 0.0:.6g}")
