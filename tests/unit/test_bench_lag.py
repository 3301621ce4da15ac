"""make bench-lag: when GET /stats counts a file, and the lag's verdict."""

from __future__ import annotations

from bench.bench_lag import Counts, counted, summarize


def test_a_file_is_counted_once_its_completion_and_all_its_records_are() -> None:
    before = Counts(completed=4, records=4000)

    assert counted(before, Counts(completed=5, records=5000), lines=1000)
    assert not counted(before, Counts(completed=5, records=4000), lines=1000)
    assert not counted(before, Counts(completed=4, records=5000), lines=1000)
    assert not counted(before, before, lines=1000)


def test_counts_are_read_from_the_stats_answers_totals() -> None:
    answer = {"totals": {"files": {"received": 3, "completed": 2, "failed": 1},
                         "records": 2000, "malformed": 0}, "hours": []}

    assert Counts.of(answer) == Counts(completed=2, records=2000)


def test_the_target_is_on_the_p50_and_a_miss_says_fail() -> None:
    met = summarize([0.2, 0.4, 0.3, 2.0], target=1.5)
    assert met[0].startswith("final record -> counted by GET /stats, 4 files: P50 0.300 s")
    assert "max 2.000 s" in met[0]
    assert met[1] == "target: P50 0.300 s <= 1.5 s: PASS"

    assert summarize([1.6, 1.7, 0.1], target=1.5)[1] == "target: P50 1.600 s > 1.5 s: FAIL"
