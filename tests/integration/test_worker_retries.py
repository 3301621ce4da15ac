"""Retries, crashes and concurrent copies of a job, against moto."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from chalicelib.adapters import ResultsStore, S3Source, SqsJobQueue, from_item
from chalicelib.core.jobs import Job, jobs_from_s3_event
from chalicelib.core.results import iso, processing_record
from chalicelib.pipeline import BatchFailed, Settings, Trigger, Worker

LINE = json.dumps({"timestamp": "2024-05-01T00:00:00Z", "level": "INFO", "endpoint": "/a",
                   "response_time_ms": 3, "status_code": 200, "user_id": "u"}).encode() + b"\n"


class Clock:
    def __init__(self, now: float = 1_714_521_600.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FlakySource:
    """An S3 source whose first `failures` opens raise, like a throttled or unreachable S3."""

    def __init__(self, inner: S3Source, failures: int) -> None:
        self.inner = inner
        self.failures = failures

    def open(self, job: Job) -> Any:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("S3 unreachable")
        return self.inner.open(job)


@pytest.fixture
def parts(stage, s3, sqs, dynamodb):
    settings = Settings.from_env(stage.environment)
    store = ResultsStore(dynamodb, stage.results_table)
    queue = SqsJobQueue(sqs, stage.jobs_queue)
    return settings, store, queue, S3Source(s3)


def queued_job(stage, s3, parts, clock: Clock, key: str = "logs/r.ndjson") -> Job:
    settings, store, queue, _ = parts
    etag = s3.put_object(Bucket=stage.bucket, Key=key, Body=LINE * 3)["ETag"].strip('"')
    event = {"Records": [{"eventName": "ObjectCreated:Put", "eventTime": iso(clock.now),
                          "s3": {"bucket": {"name": stage.bucket},
                                 "object": {"key": key, "size": 3 * len(LINE), "eTag": etag}}}]}
    Trigger(settings, store, queue, clock).handle(event)
    return jobs_from_s3_event(event, iso(clock.now))[0]


def receive(sqs, queue: SqsJobQueue, visibility: int | None = None) -> list[dict[str, Any]]:
    kwargs = {"VisibilityTimeout": visibility} if visibility is not None else {}
    messages = sqs.receive_message(QueueUrl=queue.url, MaxNumberOfMessages=10,
                                   AttributeNames=["All"], **kwargs).get("Messages", [])
    return [{"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
             "attributes": m["Attributes"]} for m in messages]


def test_transient_failure_releases_the_claim_and_schedules_a_backoff_retry(
        stage, s3, sqs, dynamodb, parts) -> None:
    settings, store, queue, source = parts
    clock = Clock()
    job = queued_job(stage, s3, parts, clock)
    worker = Worker(settings, store, FlakySource(source, failures=1), queue, clock)

    first = receive(sqs, queue)
    with pytest.raises(BatchFailed, match="ConnectionError: S3 unreachable"):
        worker.handle({"Records": first})
    record = store.get(job.job_id)
    assert record["status"] == "queued"
    assert record["last_error"] == "ConnectionError: S3 unreachable"
    assert receive(sqs, queue) == []  # hidden for the back-off delay

    sqs.change_message_visibility(QueueUrl=queue.url, ReceiptHandle=first[0]["receiptHandle"],
                                  VisibilityTimeout=0)
    second = receive(sqs, queue)
    assert second[0]["attributes"]["ApproximateReceiveCount"] == "2"
    assert worker.handle({"Records": second}) == {"batchItemFailures": []}
    done = store.get(job.job_id)
    assert done["status"] == "completed" and done["line_count"] == 3 and done["attempts"] == 2


def running_elsewhere(stage, s3, parts, clock: Clock) -> tuple[Job, dict[str, Any]]:
    """A job claimed by another attempt just now, and a second copy of its message."""
    _, store, _, _ = parts
    job = queued_job(stage, s3, parts, clock)
    assert store.claim(processing_record(job, clock.now, 1), stale_before=iso(clock.now - 60))
    copy = {"messageId": "copy", "receiptHandle": "", "body": job.to_message(),
            "attributes": {"ApproximateReceiveCount": "1"}}
    return job, copy


def test_a_copy_arriving_while_the_job_runs_is_skipped_but_a_dead_claim_is_taken_over(
        stage, s3, sqs, dynamodb, parts) -> None:
    settings, store, queue, source = parts
    clock = Clock()
    job, copy = running_elsewhere(stage, s3, parts, clock)

    worker = Worker(settings, store, source, queue, clock)
    assert worker.handle({"Records": [copy]}) == {"batchItemFailures": []}
    assert store.get(job.job_id)["status"] == "processing"

    clock.now += settings.worker_timeout_seconds + 1  # the first attempt died without a word
    assert worker.handle({"Records": [copy]}) == {"batchItemFailures": []}
    assert store.get(job.job_id)["status"] == "completed"


class WatchedStream:
    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.read = self.closed = False

    def __iter__(self) -> Any:
        self.read = True
        yield from self.stream

    def close(self) -> None:
        self.closed = True
        self.stream.close()


class RecordingSource:
    """Keeps every stream it opened, to see which were read and which were closed unread."""

    def __init__(self, inner: S3Source) -> None:
        self.inner = inner
        self.opened: list[WatchedStream] = []

    def open(self, job: Job) -> WatchedStream:
        stream = WatchedStream(self.inner.open(job))
        self.opened.append(stream)
        return stream


def test_the_object_fetched_for_a_job_that_is_not_ours_is_closed_unread(
        stage, s3, sqs, dynamodb, parts) -> None:
    settings, store, queue, source = parts
    clock = Clock()
    job, copy = running_elsewhere(stage, s3, parts, clock)
    recording = RecordingSource(source)
    worker = Worker(settings, store, recording, queue, clock)

    assert worker.handle({"Records": [copy]}) == {"batchItemFailures": []}

    [stream] = recording.opened
    assert stream.closed and not stream.read
    assert store.get(job.job_id)["status"] == "processing"

    clock.now += settings.worker_timeout_seconds + 1
    assert worker.handle({"Records": [copy]}) == {"batchItemFailures": []}
    assert recording.opened[1].read
    assert store.get(job.job_id)["status"] == "completed"


def test_retry_delays_grow_exponentially(stage, parts) -> None:
    settings, store, _, source = parts
    delays: list[int] = []

    class RecordingQueue:
        def retry_later(self, receipt_handle: str, delay_seconds: int) -> None:
            delays.append(delay_seconds)

    worker = Worker(settings, store, source, RecordingQueue(), Clock())
    for count in (1, 2, 3, 4, 20):
        with pytest.raises(BatchFailed):
            worker.handle({"Records": [{"messageId": "m", "receiptHandle": "r", "body": "junk",
                                        "attributes": {"ApproximateReceiveCount": str(count)}}]})
    base = settings.retry_base_seconds
    assert delays == [int(base), int(base * 2), int(base * 4), int(base * 8), 900]


def test_a_job_that_runs_out_of_time_late_in_a_batch_is_handed_to_a_fresh_invocation(
        stage, s3, sqs, dynamodb, parts) -> None:
    settings, store, queue, source = parts
    clock = Clock()
    job = queued_job(stage, s3, parts, clock)
    remaining = iter([10_000, 8_000, 100, 100, 100, 100])  # budget, job start, then too little
    worker = Worker(settings, store, source, queue, clock)
    message = receive(sqs, queue)
    result = worker.handle({"Records": message}, remaining_ms=lambda: next(remaining))
    assert result == {"batchItemFailures": []}  # Lambda deletes the original
    assert store.get(job.job_id)["status"] == "queued"
    [copy] = receive(sqs, queue)
    assert copy["attributes"]["ApproximateReceiveCount"] == "1"
    assert Job.from_message(copy["body"]) == dataclasses.replace(job, deferrals=1)


def test_a_job_that_had_the_whole_invocation_and_ran_out_is_too_large(
        stage, s3, sqs, dynamodb, parts) -> None:
    settings, store, queue, source = parts
    clock = Clock()
    job = queued_job(stage, s3, parts, clock)
    remaining = iter([10_000, 10_000, 100, 100, 100])
    worker = Worker(settings, store, source, queue, clock)
    result = worker.handle({"Records": receive(sqs, queue)},
                           remaining_ms=lambda: next(remaining))
    assert result == {"batchItemFailures": []}
    record = from_item(dynamodb.get_item(TableName=stage.results_table,
                                         Key={"job_id": {"S": job.job_id}})["Item"])
    assert record["status"] == "failed"
    assert record["failure_reason"].startswith("too_large: processing did not finish")
