"""make bench-e2e-compare: the order of the runs, and the verdict on the P50 difference."""

from __future__ import annotations

import pytest

from bench.bench_e2e_compare import BASE, THIS, order, verdict


def test_the_side_that_runs_first_alternates_every_round() -> None:
    assert [order(n) for n in (1, 2, 3, 4)] == [(BASE, THIS), (THIS, BASE)] * 2


def test_the_verdict_is_the_median_of_the_rounds_differences_against_the_band() -> None:
    same = verdict([45.0, 50.0, 47.0], [48.0, 49.0, 60.0])
    assert same.differences == [3.0, -1.0, 13.0]
    assert same.median_ms == 3.0 and not same.worse
    assert same.word == "the same within the noise" and same.lines()[-1].endswith("PASS")

    worse = verdict([45.0, 46.0], [51.0, 52.0])
    assert worse.median_ms == 6.0 and worse.worse and worse.lines()[-1].endswith("FAIL")

    better = verdict([60.0], [50.0])
    assert better.word == "better" and not better.worse


def test_a_difference_on_the_band_is_not_worse() -> None:
    assert not verdict([40.0], [45.0], noise_ms=5.0).worse


def test_each_round_needs_both_sides() -> None:
    with pytest.raises(ValueError):
        verdict([40.0, 41.0], [45.0])
    with pytest.raises(ValueError):
        verdict([], [])
