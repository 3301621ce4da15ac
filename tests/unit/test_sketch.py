"""Latency sketches (chalicelib.core.sketch): within 1 % of the ranked value, across merged
files, and bounded whatever the values."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.core import sketch
from chalicelib.core.records import MAX_RESPONSE_TIME_MS
from chalicelib.core.sketch import (
    FLOOR_MS,
    MAPPING,
    MAX_BINS,
    ZERO,
    add_bins,
    bin_name,
    bins_of,
    quantiles,
)
from tests.rollup_reference import rank_value, within

values = st.one_of(st.integers(0, 10**6), st.floats(0, MAX_RESPONSE_TIME_MS, allow_nan=False),
                   st.floats(0, 10, allow_nan=False))
files = st.lists(st.lists(values, min_size=1, max_size=200), min_size=1, max_size=8)


@settings(max_examples=200, deadline=None)
@given(files=files, q=st.sampled_from([0.0, 0.5, 0.95, 0.99, 1.0]))
def test_merged_sketches_answer_within_one_percent_of_the_ranked_value(files, q) -> None:
    # GIVEN one sketch per file, merged by adding bins
    merged: dict[str, int] = {}
    for file in files:
        add_bins(merged, bins_of(Counter(file)))
    # THEN its quantile is within 1 % of the value ranked q x (n - 1) among all the values
    everything = [v for file in files for v in file]
    [estimate] = quantiles(merged, [q]) or [None]
    assert estimate is not None
    assert within(estimate, rank_value(everything, q)), (estimate, rank_value(everything, q))


def test_hostile_values_stay_within_the_bin_bound() -> None:
    bins = bins_of(Counter([1e-300, 5e-324, 0, FLOOR_MS / 2, 1e15, *range(1, 5000)]))
    assert len(bins) <= MAX_BINS
    assert bins[ZERO] == 4
    assert quantiles(bins, [0.0]) == [0.0]


def test_merging_is_exact_and_an_empty_sketch_has_no_quantiles() -> None:
    a, b = Counter([1, 2, 3]), Counter([3, 4])
    merged: dict[str, int] = {}
    add_bins(merged, bins_of(a))
    add_bins(merged, bins_of(b))
    assert merged == bins_of(a + b)
    add_bins(merged, bins_of(a + b), sign=-1)
    assert merged == {} and quantiles(merged, [0.5]) is None


@settings(max_examples=200, deadline=None)
@given(files=files)
def test_dense_bins_added_in_any_order_answer_exactly_what_ddsketch_answers(files) -> None:
    # GIVEN each file's sketch added densely, in order and in reverse
    from ddsketch import DDSketch

    from chalicelib.core.sketch import MAPPING, RELATIVE_ACCURACY, DenseBins
    forward, backward = DenseBins(), DenseBins()
    for file in files:
        part = DenseBins()
        part.add_names(bins_of(Counter(file)))
        forward.add(part)
    for file in reversed(files):
        backward.add_names(bins_of(Counter(file)))
    reference = DDSketch(RELATIVE_ACCURACY)
    for name, n in bins_of(Counter(v for file in files for v in file)).items():
        reference.add(0.0 if name == ZERO else MAPPING.value(int(name)), n)
    qs = [0.0, 0.25, 0.5, 0.95, 0.99, 1.0]
    # THEN both are the same bins, and their quantiles are ddsketch's, rounded to 6 digits
    assert forward == backward
    assert forward.quantiles(qs) == [float(f"{reference.get_quantile_value(q):.6g}")
                                     for q in qs]
    # AND taking every file away again leaves nothing
    for file in files:
        forward.add_names(bins_of(Counter(file)), sign=-1)
    assert forward.empty() and forward.quantiles([0.5]) is None


@given(st.lists(st.one_of(st.integers(0, 10**15), st.floats(0, 1e15, allow_nan=False)),
                max_size=50))
def test_a_values_bin_is_named_by_the_sketch_mapping(values: list[Any]) -> None:
    for value in values:
        assert bin_name(value) == (str(MAPPING.key(value)) if value >= FLOOR_MS else ZERO)
    assert bins_of(Counter(values)) == Counter(bin_name(v) for v in values)


def test_bin_names_stay_right_once_the_names_kept_start_afresh(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sketch, "NAMES_KEPT", 3)
    values = [*range(1, 20), 0.5, 2.5, 1e15]
    assert [bin_name(v) for v in values] == [str(MAPPING.key(v)) for v in values]
