"""Percentiles, throughput and the component breakdown, on hand-made samples."""

from __future__ import annotations

import dataclasses

import pytest

from analysis import stats
from analysis.dataset import Sample, parse_timestamp
from measure.stats import percentile

T0 = 1_800_000_000.0


def sample(e2e_ms: float, *, start: float = T0, outcome: str = "completed", lines: int = 1000,
           users: int = 1, upload_ms: float = 10.0,
           stamps: tuple[float, float, float] | None = None) -> Sample:
    """A file uploaded at `start`; `stamps` are created/started/completed offsets in ms."""
    created = started = completed = None
    if stamps is not None:
        created, started, completed = (start + ms / 1000 for ms in stamps)
    return Sample(
        run_id="r", kind="load", env="local", phase="measure", users=users, seq=0,
        size_label=f"{lines} lines", lines=lines, bytes=lines * 150, outcome=outcome, reason="",
        start_epoch=start, upload_ms=upload_ms, e2e_ms=e2e_ms, polls=3, uploaded_at=None,
        created_at=created, started_at=started, completed_at=completed,
        processing_time_ms=None if stamps is None else stamps[2] - stamps[1], attempts=1,
    )


@pytest.mark.parametrize(("p", "expected"), [(0, 1), (1, 1), (50, 50), (95, 95), (99, 99),
                                             (99.5, 100), (100, 100)])
def test_nearest_rank_percentile_on_1_to_100(p: float, expected: int) -> None:
    values = list(range(100, 0, -1))
    assert percentile(values, p) == expected


def test_nearest_rank_is_a_value_of_the_data_never_interpolated() -> None:
    values = [10.0, 20.0, 30.0, 40.0]
    assert percentile(values, 50) == 20.0
    assert percentile(values, 51) == 30.0
    assert percentile(values, 75) == 30.0
    assert percentile(values, 76) == 40.0
    assert percentile([7.0], 99) == 7.0


def test_percentile_rejects_empty_input_and_bad_ranks() -> None:
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_summary_of_known_values() -> None:
    summary = stats.summarize([5.0, 1.0, 3.0, 2.0, 4.0])
    assert (summary.count, summary.minimum, summary.maximum) == (5, 1.0, 5.0)
    assert summary.mean == 3.0
    assert (summary.p50, summary.p95, summary.p99) == (3.0, 5.0, 5.0)


def test_sequential_throughput_is_the_seeds_formula() -> None:
    samples = [sample(500), sample(1500), sample(2000), sample(9999, outcome="failed")]
    # 3 successful files over 0.5 + 1.5 + 2.0 s
    assert stats.sequential_throughput(samples) == pytest.approx(3 / 4.0)


def test_wall_throughput_counts_files_over_the_whole_window() -> None:
    samples = [sample(100, start=T0), sample(200, start=T0 + 0.5), sample(300, start=T0 + 1.7),
               sample(50, start=T0 + 1.0, outcome="timeout")]
    # first start T0, last end T0 + 1.7 + 0.3 = 2.0 s; 3 completed files
    assert stats.wall_throughput(samples) == pytest.approx(1.5)
    assert stats.wall_throughput([]) == 0.0


def test_error_rate() -> None:
    samples = [sample(1), sample(1, outcome="failed"), sample(1, outcome="timeout"), sample(1)]
    assert stats.error_rate(samples) == 0.5
    assert stats.error_rate([]) == 0.0


def test_components_split_the_end_to_end_time_exactly() -> None:
    s = sample(100.0, upload_ms=12.0, stamps=(20.0, 45.0, 80.0))

    parts = stats.components(s)

    assert parts == pytest.approx({"upload": 12.0, "trigger": 8.0, "queue": 25.0,
                                   "worker": 35.0, "observe": 20.0}, abs=1e-3)
    assert sum(parts.values()) == pytest.approx(s.e2e_ms, abs=1e-3)


def test_a_trigger_faster_than_the_upload_response_is_zero_not_negative() -> None:
    s = sample(100.0, upload_ms=12.0, stamps=(11.7, 45.0, 80.0))  # job created at 11.7 ms

    parts = stats.components(s)

    assert parts is not None and min(parts.values()) >= 0
    assert parts["trigger"] == 0 and parts["upload"] == pytest.approx(11.7, abs=1e-3)
    assert sum(parts.values()) == pytest.approx(s.e2e_ms, abs=1e-3)


def test_components_need_every_timestamp_and_a_completed_file() -> None:
    assert stats.components(sample(100.0)) is None
    assert stats.components(sample(100.0, outcome="failed", stamps=(1, 2, 3))) is None
    partial = dataclasses.replace(sample(100.0, stamps=(1, 2, 3)), started_at=None)
    assert stats.components(partial) is None


def test_breakdown_means_and_medians() -> None:
    samples = [sample(100.0, upload_ms=10.0, stamps=(20.0, 30.0, 90.0)),
               sample(200.0, upload_ms=30.0, stamps=(40.0, 60.0, 150.0)),
               sample(300.0)]

    b = stats.breakdown(samples)

    assert b is not None and b.count == 2
    assert b.mean["upload"] == pytest.approx(20.0, abs=1e-3)
    assert b.mean["worker"] == pytest.approx((60 + 90) / 2, abs=1e-3)
    assert b.total == pytest.approx(150.0, abs=1e-3)
    assert b.processing_ms == pytest.approx(75.0, abs=1e-3)
    assert stats.breakdown([sample(1.0)]) is None


def test_concurrency_curve_groups_by_user_count() -> None:
    one = [sample(100, start=T0 + i * 0.1, users=1) for i in range(5)]
    eight = [sample(200, start=T0 + 10 + i * 0.025, users=8) for i in range(40)]
    eight.append(sample(5000, start=T0 + 10, users=8, outcome="timeout"))

    points = stats.concurrency_curve(one + eight)

    assert [p.users for p in points] == [1, 8]
    assert points[0].throughput == pytest.approx(5 / 0.5)
    assert points[1].files == 41 and points[1].failures == 1
    assert points[1].p99 == 200


def test_timestamps_parse_with_z_and_offsets() -> None:
    assert parse_timestamp("2026-01-01T00:00:00.250Z") == pytest.approx(1767225600.25)
    assert parse_timestamp("2026-01-01T01:00:00+01:00") == pytest.approx(1767225600.0)
    assert parse_timestamp("") is None
