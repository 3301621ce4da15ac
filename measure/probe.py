"""Upload one log file and wait for its result record: one end-to-end measurement.

The probe is plain boto3 (no Locust), so the Locust user, the sequential protocol
runner and the tests share it. Clocks and sleep are injected for tests.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.adapters import from_item
from chalicelib.core.jobs import job_id_for
from chalicelib.core.results import epoch
from chalicelib.core.schema import FINAL_STATUSES
from measure.payloads import Payload

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
    """When to poll for a result (seconds between polls).

    Without an expected wait: `initial`, then times `factor` per poll, never above `cap`.
    With one (a short wait among those of recent files of the same size): the first poll
    comes at `lead` of it, then polls come every `step` of it (at least `initial`) until
    `span` of it has passed, then back off as above. A result is then seen within a small
    fraction of the wait, with a few polls, whether files take 50 ms or 5 s.
    """

    initial: float = 0.005
    factor: float = 1.5
    cap: float = 0.100
    lead: float = 1.0
    step: float = 0.1
    span: float = 2.0

    def delays(self, expected: float = 0.0) -> Iterator[float]:
        delay = self.initial
        if expected > 0:
            waited = self.lead * expected
            yield waited
            delay = min(self.cap, max(self.initial, self.step * expected))
            while waited < self.span * expected:
                yield delay
                waited += delay
        while True:
            yield min(delay, self.cap)
            delay *= self.factor


class WaitEstimate:
    """The lower quartile of how long the last `window` files of each line count took
    from the end of their upload to their result (the record's `completed_at`): a wait
    most files need at least. The record's time is used, not the time a poll saw the
    result, which is only known to lie between two polls. Until `least` files have been
    seen there is no estimate (a cold start would otherwise set it)."""

    def __init__(self, window: int = 20, least: int = 5) -> None:
        self.window = window
        self.least = least
        self._waits: dict[int, deque[float]] = {}

    def add(self, lines: int, seconds: float) -> None:
        self._waits.setdefault(lines, deque(maxlen=self.window)).append(seconds)

    def expected(self, lines: int) -> float:
        waits = self._waits.get(lines)
        if not waits or len(waits) < self.least:
            return 0.0
        ordered = sorted(waits)
        return ordered[(len(ordered) - 1) // 4]


@dataclass(frozen=True)
class WaitOutcome:
    record: dict[str, Any] | None
    polls: int
    timed_out: bool


def wait_for_record(ddb: Any, table: str, job_id: str, *, timeout: float,
                    backoff: Backoff = Backoff(), expected: float = 0.0,
                    clock: Callable[[], float] = time.perf_counter,
                    sleep: Callable[[float], None] = time.sleep) -> WaitOutcome:
    """Poll the results table until the job is `completed` or `failed`, or `timeout` passes.

    `expected` is how long the wait will likely take (0: unknown). Returns the last record
    seen (None if the job never appeared) and the number of polls.
    """
    deadline = clock() + timeout
    delays = backoff.delays(expected)
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
            if record.get("status") in FINAL_STATUSES:
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
        self.waits = WaitEstimate()

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
                                     backoff=self.backoff,
                                     expected=self.waits.expected(payload.lines),
                                     clock=self.clock, sleep=self.sleep)
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
        done = result("completed", "", upload_ms, polls=waited.polls, job_id=job_id,
                      record=record)
        self._learn(payload.lines, start_epoch + upload_ms / 1000.0, record,
                    seen_after=(done.e2e_ms - upload_ms) / 1000.0)
        return done

    def _learn(self, lines: int, uploaded: float, record: dict[str, Any],
               seen_after: float) -> None:
        try:
            took = epoch(record["completed_at"]) - uploaded
        except (KeyError, TypeError, ValueError):
            took = seen_after
        if not 0.0 <= took <= seen_after:
            # Clocks disagree (the record's and ours): the poll's view is all there is.
            took = seen_after
        self.waits.add(lines, took)


def _describe(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'error')}: {error.get('Message', str(exc))}"
    return f"{type(exc).__name__}: {exc}"
