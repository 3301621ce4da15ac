"""Upload one log file and wait for its result record: one end-to-end measurement.

The probe is plain boto3 (no Locust), so the Locust user, the sequential protocol
runner and the tests share it. Clocks and sleep are injected for tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.adapters import from_item
from chalicelib.jobs import job_id_for
from loadtest.payloads import Payload

TERMINAL_STATUSES = frozenset({"completed", "failed"})
RECORD_FIELDS = (
    "job_id", "status", "failure_reason", "last_error", "attempts", "line_count",
    "file_size_bytes", "uploaded_at", "created_at", "started_at", "completed_at",
    "processing_time_ms",
)
_PROJECTION = {
    "ProjectionExpression": ", ".join(f"#f{i}" for i in range(len(RECORD_FIELDS))),
    "ExpressionAttributeNames": {f"#f{i}": name for i, name in enumerate(RECORD_FIELDS)},
}


@dataclass(frozen=True)
class Backoff:
    """Poll delays: `initial`, then times `factor` per poll, never above `cap` (seconds)."""

    initial: float = 0.005
    factor: float = 1.5
    cap: float = 0.100

    def delays(self) -> Iterator[float]:
        delay = self.initial
        while True:
            yield min(delay, self.cap)
            delay *= self.factor


@dataclass(frozen=True)
class WaitOutcome:
    record: dict[str, Any] | None
    polls: int
    timed_out: bool


def wait_for_record(ddb: Any, table: str, job_id: str, *, timeout: float,
                    backoff: Backoff = Backoff(),
                    clock: Callable[[], float] = time.perf_counter,
                    sleep: Callable[[float], None] = time.sleep) -> WaitOutcome:
    """Poll the results table until the job is `completed` or `failed`, or `timeout` passes.

    Returns the last record seen (None if the job never appeared) and the number of polls.
    """
    deadline = clock() + timeout
    delays = backoff.delays()
    record: dict[str, Any] | None = None
    polls = 0
    while True:
        # The first read waits one delay too: a file is never done the moment it lands.
        sleep(max(0.0, min(next(delays), deadline - clock())))
        item = ddb.get_item(TableName=table, Key={"job_id": {"S": job_id}},
                            ConsistentRead=True, **_PROJECTION).get("Item")
        polls += 1
        if item:
            record = from_item(item)
            if record.get("status") in TERMINAL_STATUSES:
                return WaitOutcome(record, polls, timed_out=False)
        if clock() >= deadline:
            return WaitOutcome(record, polls, timed_out=True)


@dataclass(frozen=True)
class Measurement:
    """One file's trip through the pipeline, as seen by the client and the result record."""

    key: str
    lines: int
    bytes: int
    outcome: str  # completed | failed | timeout | upload_error | error
    reason: str
    start_epoch: float
    upload_ms: float
    e2e_ms: float
    polls: int
    job_id: str = ""
    record: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == "completed"


class PipelineProbe:
    """Uploads payloads with one S3 client and polls results with one DynamoDB client."""

    def __init__(self, s3: Any, ddb: Any, *, bucket: str, table: str, timeout: float = 30.0,
                 backoff: Backoff = Backoff(),
                 clock: Callable[[], float] = time.perf_counter,
                 wall_clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.s3 = s3
        self.ddb = ddb
        self.bucket = bucket
        self.table = table
        self.timeout = timeout
        self.backoff = backoff
        self.clock = clock
        self.wall_clock = wall_clock
        self.sleep = sleep

    def measure(self, payload: Payload, key: str) -> Measurement:
        start_epoch = self.wall_clock()
        t0 = self.clock()

        def elapsed_ms() -> float:
            return (self.clock() - t0) * 1000.0

        def result(outcome: str, reason: str, upload_ms: float, **extra: Any) -> Measurement:
            return Measurement(key=key, lines=payload.lines, bytes=len(payload.body),
                               outcome=outcome, reason=reason, start_epoch=start_epoch,
                               upload_ms=upload_ms, e2e_ms=elapsed_ms(), **extra)

        try:
            put = self.s3.put_object(Bucket=self.bucket, Key=key, Body=payload.body,
                                     ContentType="application/x-ndjson")
        except (BotoCoreError, ClientError) as exc:
            return result("upload_error", f"upload: {_describe(exc)}", elapsed_ms(), polls=0)
        upload_ms = elapsed_ms()
        job_id = job_id_for(self.bucket, key, etag=put.get("ETag"),
                            version_id=put.get("VersionId"))
        try:
            waited = wait_for_record(self.ddb, self.table, job_id, timeout=self.timeout,
                                     backoff=self.backoff, clock=self.clock, sleep=self.sleep)
        except (BotoCoreError, ClientError) as exc:
            return result("error", f"result lookup: {_describe(exc)}", upload_ms, polls=0,
                          job_id=job_id)
        record = waited.record
        if waited.timed_out:
            last = record.get("status") if record else "no result record"
            return result("timeout", f"no final result after {self.timeout:g}s (last: {last})",
                          upload_ms, polls=waited.polls, job_id=job_id, record=record)
        assert record is not None
        if record.get("status") == "failed":
            reason = record.get("failure_reason") or record.get("last_error") or "failed"
            return result("failed", f"pipeline: {reason}", upload_ms, polls=waited.polls,
                          job_id=job_id, record=record)
        return result("completed", "", upload_ms, polls=waited.polls, job_id=job_id,
                      record=record)


def _describe(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'error')}: {error.get('Message', str(exc))}"
    return f"{type(exc).__name__}: {exc}"
