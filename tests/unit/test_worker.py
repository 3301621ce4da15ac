"""Trigger and Worker against in-memory twins: every job ends `completed` or `failed`.

GIVEN a pipeline of twins, WHEN a fault or a hostile file meets it, THEN the job still ends
with one terminal record, and no message is lost or pushed toward the DLQ for nothing.
"""

from __future__ import annotations

import gzip
import json
from typing import Any

import pytest

from chalicelib.core.budget import Budget
from chalicelib.core.records import MAX_ENDPOINT_CHARS
from chalicelib.core.results import MAX_ITEM_BYTES, TTL_SECONDS, bounded, epoch, iso, item_bytes
from chalicelib.pipeline import BatchFailed, Settings, Trigger, Worker
from tests.twins import MemoryQueue, MemorySource, MemoryStore

BUCKET = "logs-bucket"
T0 = 1_714_521_600.0


def line(endpoint: str = "/a", user: str = "u", ts: str = "2024-05-01T00:00:00Z") -> bytes:
    return json.dumps({"timestamp": ts, "level": "INFO", "endpoint": endpoint,
                       "response_time_ms": 3, "status_code": 200, "user_id": user}).encode() + b"\n"


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Pipeline:
    """A trigger and a worker sharing twins, with S3 events made from the source's objects."""

    def __init__(self, **settings: Any) -> None:
        self.settings = Settings(bucket=BUCKET, jobs_queue="jobs", results_table="results",
                                 **settings)
        self.clock = Clock()
        self.store = MemoryStore()
        self.queue = MemoryQueue(max_receive_count=self.settings.max_receive_count)
        self.source = MemorySource()
        self.trigger = Trigger(self.settings, self.store, self.queue, self.clock)
        self.worker = Worker(self.settings, self.store, self.source, self.queue, self.clock)

    def upload(self, key: str, data: bytes, etag: str = "e1") -> str:
        self.source.objects[(BUCKET, key)] = data
        event = {"Records": [{"eventName": "ObjectCreated:Put", "eventTime": iso(self.clock.now),
                              "s3": {"bucket": {"name": BUCKET},
                                     "object": {"key": key, "size": len(data), "eTag": etag}}}]}
        self.trigger.handle(event)
        return next(iter(self.store.writes[-1:]))[1]["job_id"]

    def deliver(self, remaining_ms: Any = None) -> dict[str, Any] | BatchFailed:
        """One invocation on the visible messages; like Lambda, a normal return deletes them."""
        records = self.queue.receive()
        try:
            outcome = self.worker.handle({"Records": records}, remaining_ms=remaining_ms)
        except BatchFailed as failed:
            return failed
        self.queue.delete([r["receiptHandle"] for r in records])
        return outcome

    def drain(self, rounds: int = 20) -> None:
        """Deliver until the queue is empty, moving the clock past every back-off."""
        for _ in range(rounds):
            if not self.queue.messages:
                return
            self.deliver()
            self.clock.now += 1000
            self.queue.now = self.clock.now

    def record(self, job_id: str) -> dict[str, Any]:
        found = self.store.get(job_id)
        assert found is not None
        return found


class Countdown:
    """remaining_ms of an invocation that loses `step` ms at every look."""

    def __init__(self, total: int, step: int) -> None:
        self.left = total
        self.step = step

    def __call__(self) -> int:
        value = self.left
        self.left = max(0, self.left - self.step)
        return value


# 1. a failing final write -------------------------------------------------------------

def test_a_failed_final_write_releases_the_claim_so_the_retry_completes() -> None:
    p = Pipeline()
    job_id = p.upload("logs/a.ndjson", line() * 3)
    p.store.fail_next("finish", ConnectionError("ProvisionedThroughputExceeded"))

    outcome = p.deliver()

    assert isinstance(outcome, BatchFailed)
    assert p.record(job_id)["status"] == "queued"
    assert "ProvisionedThroughputExceeded" in p.record(job_id)["last_error"]
    p.clock.now += 5
    p.queue.now = p.clock.now
    assert p.deliver() == {"batchItemFailures": []}
    assert p.record(job_id)["status"] == "completed"


def test_a_450_kb_endpoint_name_is_cut_in_the_record_which_stays_under_the_item_limit() -> None:
    p = Pipeline()
    names = ["/" + chr(ord("a") + i) * 450_000 for i in range(21)]
    job_id = p.upload("logs/long.ndjson", b"".join(line(n) for n in names))

    p.drain()

    record = p.record(job_id)
    assert record["status"] == "completed" and record["unique_endpoints"] == 21
    shown = [e["endpoint"] for e in record["top_endpoints"]]
    assert len(shown) == 20 and all(len(s) == MAX_ENDPOINT_CHARS for s in shown)
    assert shown[0] == names[0][:MAX_ENDPOINT_CHARS - 1] + "…"
    assert item_bytes(record) < MAX_ITEM_BYTES


def test_a_record_over_the_item_limit_becomes_a_failed_one() -> None:
    record = {"job_id": "j", "status": "completed", "line_count": 3,
              "top_endpoints": [{"endpoint": "x" * 400_000}]}
    out = bounded(record)
    assert out["status"] == "failed" and out["failure_reason"].startswith("too_large:")
    assert out["top_endpoints"] == [] and item_bytes(out) < MAX_ITEM_BYTES


# 2. timestamps outside UTC's range -------------------------------------------------------

def test_a_timestamp_outside_utc_is_one_malformed_line_not_a_failed_file() -> None:
    p = Pipeline()
    data = line() + line(ts="9999-12-31T23:30:00-01:00") + line(ts="0001-01-01T00:00:00+01:00")
    job_id = p.upload("logs/edge.ndjson", data)

    p.drain()

    record = p.record(job_id)
    assert record["status"] == "completed"
    assert (record["line_count"], record["malformed_count"]) == (3, 2)
    assert record["last_timestamp"] == "2024-05-01T00:00:00Z"


# 3, 9. time: checked while reading, and judged on the rate so far ------------------------

def test_an_over_long_line_without_newline_cannot_outlive_the_deadline() -> None:
    p = Pipeline()
    bomb = gzip.compress(b"0" * (64 * 1024 * 1024), compresslevel=1)
    job_id = p.upload("logs/bomb.ndjson.gz", bomb)

    outcome = p.deliver(remaining_ms=Countdown(60_000, 1_000))

    assert outcome == {"batchItemFailures": []}
    record = p.record(job_id)
    assert record["status"] == "failed"
    assert record["failure_reason"].startswith("too_large:")
    assert "60 s time limit" in record["failure_reason"]


def test_a_file_read_too_slowly_to_finish_fails_early_in_its_first_invocation() -> None:
    p = Pipeline()
    job_id = p.upload("logs/slow.ndjson", line() * 20_000)
    p.source.chunk_size = 1024
    clock = Countdown(300_000, 2_000)  # 2 s per 1 KiB read: 2 MB would need an hour

    p.deliver(remaining_ms=clock)

    record = p.record(job_id)
    assert record["status"] == "failed" and "MB/s so far" in record["failure_reason"]
    assert clock.left > 200_000  # given up after about a quarter of the time, not at the end


# 4. memory -------------------------------------------------------------------------------

def test_a_file_that_needs_more_memory_than_the_function_has_fails_with_a_reason() -> None:
    p = Pipeline(memory_mb=1024)
    job_id = p.upload("logs/users.ndjson", line() * 10)
    readings = iter([100 * 2**20] + [900 * 2**20] * 100)  # 900 MB > 80 % of 1024 MB
    budget = Budget(None, 1024, resident=lambda: next(readings))

    record = p.queue.receive()[0]
    p.worker.process(record, budget)

    assert p.record(job_id)["status"] == "failed"
    assert "MB of memory" in p.record(job_id)["failure_reason"]


def test_memory_held_before_the_job_started_hands_the_job_on_instead_of_failing_it() -> None:
    p = Pipeline(memory_mb=1024)
    job_id = p.upload("logs/users.ndjson", line() * 10)
    budget = Budget(None, 1024, resident=lambda: 900 * 2**20)

    record = p.queue.receive()[0]
    p.worker.process(record, budget)

    assert p.record(job_id)["status"] == "queued"
    assert [json.loads(m.body)["deferrals"] for m in p.queue.messages.values()] == [0, 1]


# 5. errors that never go away ------------------------------------------------------------

def test_a_job_that_fails_on_every_attempt_ends_failed_with_the_last_error() -> None:
    p = Pipeline()
    job_id = p.upload("logs/denied.ndjson", line())
    for _ in range(5):
        p.source.fail_next("open", PermissionError("AccessDenied"))

    p.drain()

    record = p.record(job_id)
    assert record["status"] == "failed"
    assert record["failure_reason"].startswith("retries_exhausted: 5 attempts failed")
    assert "AccessDenied" in record["failure_reason"]
    assert [m.message_id for m in p.queue.dead] == ["m0"]


def test_a_redriven_job_whose_retries_ran_out_is_processed_again() -> None:
    p = Pipeline()
    job_id = p.upload("logs/denied.ndjson", line())
    for _ in range(5):
        p.source.fail_next("open", PermissionError("AccessDenied"))
    p.drain()

    p.queue.send_body(p.queue.dead.pop().body)  # what `logctl dlq redrive` does
    p.drain()

    assert p.record(job_id)["status"] == "completed"


# 6. expiry -------------------------------------------------------------------------------

def test_a_result_written_long_after_upload_expires_seven_days_after_it_was_written() -> None:
    p = Pipeline()
    job_id = p.upload("logs/late.ndjson", line())
    p.clock.now += 10 * 24 * 3600  # a redrive ten days later

    p.queue.now = p.clock.now
    p.deliver()

    record = p.record(job_id)
    assert record["status"] == "completed"
    assert record["expires_at"] == int(epoch(record["completed_at"])) + TTL_SECONDS
    assert record["expires_at"] > p.clock.now


# 7. the same bytes uploaded again --------------------------------------------------------

def test_uploading_the_same_bytes_again_after_a_failure_runs_the_job_again() -> None:
    p = Pipeline()
    key = "logs/again.ndjson"
    job_id = p.upload(key, line())
    del p.source.objects[(BUCKET, key)]  # deleted before the worker read it
    p.drain()
    assert p.record(job_id)["failure_reason"].startswith("not_found:")

    p.clock.now += 60
    assert p.upload(key, line()) == job_id

    p.drain()
    assert p.record(job_id)["status"] == "completed"


def test_a_late_copy_of_the_first_notification_does_not_rerun_a_failed_job() -> None:
    p = Pipeline()
    key = "logs/gone.ndjson"
    data = line()
    event = {"Records": [{"eventName": "ObjectCreated:Put", "eventTime": iso(p.clock.now),
                          "s3": {"bucket": {"name": BUCKET},
                                 "object": {"key": key, "size": len(data), "eTag": "e1"}}}]}
    p.trigger.handle(event)
    p.drain()  # the object was never there: not_found
    p.clock.now += 60

    assert p.trigger.handle(event) == {"queued": 0, "rejected": 0, "duplicate": 1}
    assert not p.queue.messages


# 8. siblings in a batch ------------------------------------------------------------------

def test_jobs_started_late_in_a_batch_are_handed_on_with_a_fresh_receive_count() -> None:
    p = Pipeline()
    ids = [p.upload(f"logs/{i}.ndjson", line() * 2000, etag=str(i)) for i in range(3)]
    clock = Countdown(60_000, 0)
    first = p.queue.receive()

    def spend() -> int:  # the first job uses up most of the invocation
        if p.store.get(ids[0])["status"] == "completed":
            clock.left = 1_000
        return clock()

    outcome = p.worker.handle({"Records": first}, remaining_ms=spend)

    assert outcome == {"batchItemFailures": []}
    assert p.record(ids[0])["status"] == "completed"
    assert [p.record(i)["status"] for i in ids[1:]] == ["queued", "queued"]
    waiting = list(p.queue.messages.values())
    assert len(waiting) == 5  # the three originals (deleted by Lambda on success) + 2 copies
    copies = [m for m in waiting if json.loads(m.body)["deferrals"] == 1]
    assert sorted(json.loads(m.body)["job_id"] for m in copies) == sorted(ids[1:])
    assert all(m.receive_count == 0 for m in copies)


def test_one_failing_job_does_not_send_its_neighbours_round_again() -> None:
    p = Pipeline()
    good = [p.upload(f"logs/{i}.ndjson", line(), etag=str(i)) for i in range(2)]
    bad = p.upload("logs/bad.ndjson", line(), etag="bad")
    p.source.fail_next("open")  # the first job opened fails
    records = p.queue.receive()
    records.sort(key=lambda r: json.loads(r["body"])["job_id"] != bad)  # the bad one first

    with pytest.raises(BatchFailed, match="ConnectionError"):
        p.worker.handle({"Records": records})

    assert [p.record(j)["status"] for j in good] == ["completed", "completed"]
    assert list(p.queue.messages) == [records[0]["messageId"]]  # only the failed one is left
    assert p.record(bad)["status"] == "queued"


# 10. fields kept across writes -----------------------------------------------------------

def test_the_final_record_keeps_created_at_and_the_last_error_of_earlier_attempts() -> None:
    p = Pipeline()
    job_id = p.upload("logs/kept.ndjson", line())
    created = p.record(job_id)["created_at"]
    p.source.fail_next("open", ConnectionError("reset by peer"))
    p.deliver()
    p.clock.now += 30
    p.trigger.handle({"Records": [{"eventName": "ObjectCreated:Put",
                                   "eventTime": iso(T0),
                                   "s3": {"bucket": {"name": BUCKET},
                                          "object": {"key": "logs/kept.ndjson", "size": 1,
                                                     "eTag": "e1"}}}]})  # a duplicate
    p.drain()

    record = p.record(job_id)
    assert record["status"] == "completed"
    assert record["created_at"] == created
    assert record["last_error"] == "ConnectionError: reset by peer"


def test_a_slow_first_byte_does_not_make_an_ordinary_file_too_large() -> None:
    p = Pipeline()
    job_id = p.upload("logs/throttled.ndjson", line() * 2000)
    p.source.chunk_size = 8 * 1024
    clock = Countdown(20_000, 0)
    opened = p.source.open

    def throttled_open(job: Any) -> Any:  # S3 retried a SlowDown: the first byte is 6 s late
        clock.left -= 6_000
        chunks = opened(job)

        def read() -> Any:
            for chunk in chunks:
                clock.left -= 50  # then 160 KiB/s: the file needs well under its time
                yield chunk
        return read()

    p.source.open = throttled_open  # type: ignore[method-assign]
    p.deliver(remaining_ms=clock)

    assert p.record(job_id)["status"] == "completed"


def test_a_copy_skipped_while_another_attempt_held_the_job_comes_back_if_that_one_dies() -> None:
    p = Pipeline()
    job_id = p.upload("logs/dup.ndjson", line())
    p.queue.send_body(next(iter(p.queue.messages.values())).body)  # SQS delivered it twice
    first, copy = p.queue.receive(limit=2)
    p.store.fail_next("finish", SystemExit("the process died"))  # attempt A claims, then dies
    with pytest.raises(SystemExit):
        p.worker.process(first)

    p.worker.process(copy)  # B: the claim is fresh, so B is not to run it ...
    p.queue.delete([copy["receiptHandle"]])  # ... and Lambda deletes B's message

    assert p.record(job_id)["status"] == "processing"
    p.clock.now += p.settings.worker_timeout_seconds + 2
    p.queue.now = p.clock.now
    p.queue.delete([first["receiptHandle"]])  # even with A's own message gone for good
    p.drain()
    assert p.record(job_id)["status"] == "completed"
