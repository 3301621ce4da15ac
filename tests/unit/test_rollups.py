"""Hourly rollups (chalicelib.rollups): what a record adds, how hours sum, and the recorder
that keeps them next to the results store (on the store's in-memory twin)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from chalicelib.core.errors import JobRejected
from chalicelib.core.jobs import Job
from chalicelib.core.results import completed_record, failed_record, queued_record
from chalicelib.core.schema import empty_statistics
from chalicelib.rollups import (
    RollupRecorder,
    hours_between,
    result_counts,
    summarize,
    update_request,
)
from tests.twins import MemoryStore

T0 = datetime(2026, 11, 26, 12, 15, tzinfo=UTC).timestamp()


class MemoryRollups:
    def __init__(self, fail: bool = False) -> None:
        self.added: list[tuple[str, dict[str, int]]] = []
        self.fail = fail

    def add(self, created_at: str, counts: dict[str, int]) -> None:
        if self.fail:
            raise ConnectionError("stats table unreachable")
        self.added.append((created_at[:13], counts))


def job(name: str = "a") -> Job:
    return Job(job_id=name * 32, bucket="b", key=f"logs/{name}.ndjson", size=10, etag=name,
               version_id=None, uploaded_at=None, created_at="2026-11-26T12:15:00.000Z")


def completed(j: Job) -> dict[str, Any]:
    statistics = {**empty_statistics(), "line_count": 10, "malformed_count": 2, "info_count": 5,
                  "error_count": 3, "status_codes": {"200": 6, "503": 2}}
    return completed_record(j, statistics, T0, T0 + 1, 1)


def test_a_completed_record_adds_its_counts_and_nothing_that_is_zero() -> None:
    assert result_counts(completed(job())) == {
        "files_completed": 1, "lines": 10, "malformed": 2, "level_info": 5, "level_error": 3,
        "sc_200": 6, "sc_503": 2}


def test_one_update_adds_every_count_and_sets_the_expiry_once() -> None:
    request = update_request("stats", "2026-11-26T12", {"lines": 10, "sc_200": 6}, 99)

    assert request["UpdateExpression"] == (
        "SET expires_at = if_not_exists(expires_at, :exp) ADD #a0 :a0, #a1 :a1")
    assert request["ExpressionAttributeNames"] == {"#a0": "lines", "#a1": "sc_200"}
    assert request["Key"] == {"series": {"S": "hourly"}, "hour": {"S": "2026-11-26T12"}}


def test_hours_sum_into_totals_and_an_hourly_series() -> None:
    items = [
        {"hour": "2026-11-26T13", "files_received": 1, "files_failed": 1},
        {"hour": "2026-11-26T12", "files_received": 2, "files_completed": 2, "lines": 30,
         "malformed": 10, "level_error": 5, "level_info": 15, "sc_500": 5, "sc_200": 15},
    ]
    totals, hours = summarize(items)

    assert (totals.received, totals.completed, totals.failed) == (3, 2, 1)
    assert totals.status_codes == {"500": 5, "200": 15}
    assert totals.error_rate == 0.25
    assert [(hour, t.lines, t.error_rate) for hour, t in hours] == [
        ("2026-11-26T12", 30, 0.25), ("2026-11-26T13", 0, None)]


def test_a_range_covers_every_hour_it_touches() -> None:
    since = datetime(2026, 11, 26, 10, 59, tzinfo=UTC)
    until = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)

    assert hours_between(since, until) == ["2026-11-26T10", "2026-11-26T11", "2026-11-26T12"]


def test_the_recorder_indexes_every_write_and_counts_new_and_final_records_once() -> None:
    store, rollups = MemoryStore(), MemoryRollups()
    recorder = RollupRecorder(store, rollups)
    j = job()

    recorder.create(queued_record(j))
    recorder.create(queued_record(j))
    recorder.finish(completed(j))
    recorder.finish(completed(j))

    assert all(record["created_day"] == "2026-11-26" for _, record in store.writes)
    assert [counts.get("files_received", 0) for _, counts in rollups.added] == [1, 0]
    assert [hour for hour, _ in rollups.added] == ["2026-11-26T12", "2026-11-26T12"]
    assert rollups.added[1][1]["files_completed"] == 1


def test_a_rejected_file_is_received_and_failed_in_one_update() -> None:
    rollups = MemoryRollups()
    recorder = RollupRecorder(MemoryStore(), rollups)
    record = failed_record(job(), JobRejected("too_large", "big"), T0, T0, 1)

    assert recorder.reject(record)
    assert rollups.added == [("2026-11-26T12", {"files_received": 1, "files_failed": 1})]


def test_a_failed_rollup_write_does_not_fail_the_job() -> None:
    store = MemoryStore()
    recorder = RollupRecorder(store, MemoryRollups(fail=True))
    j = job()

    assert recorder.create(queued_record(j)) is None
    assert recorder.finish(completed(j)) is True
    assert store.get(j.job_id)["status"] == "completed"
