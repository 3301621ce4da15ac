"""What the two handlers do: the trigger creates jobs, the worker turns them into results."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from chalicelib.core.budget import Budget, JobBudget
from chalicelib.core.errors import ConfigurationError, Deferred, JobRejected
from chalicelib.core.eventtime import hour_of_iso
from chalicelib.core.jobs import Job, jobs_from_s3_event, unsupported_reason
from chalicelib.core.results import (
    MAX_ERROR_CHARS,
    RETRIES_EXHAUSTED,
    completed_record,
    epoch,
    failed_record,
    iso,
    processing_record,
    queued_record,
    rejected_record,
    upload_time,
)
from chalicelib.core.schema import ResultRecord, Status
from chalicelib.core.summary import aggregate_chunks, is_gzip_name
from chalicelib.telemetry import Telemetry

log = logging.getLogger("chalicelib.pipeline")
ASSUMED_GZIP_RATIO = 8
TIME_SAFETY = 0.8
MAX_DELAY = 900  # seconds: SQS's longest DelaySeconds, and the longest retry back-off
MAX_RECEIVE_COUNT = 5  # receives before SQS moves a message to the dead-letter queue
MAX_DEFERRALS = 10


@dataclass(frozen=True)
class Settings:
    bucket: str
    jobs_queue: str
    results_table: str
    max_file_bytes: int = 1024**3
    worker_timeout_seconds: int = 300
    worker_min_bytes_per_second: int = 20_000_000
    retry_base_seconds: float = 1.0
    max_receive_count: int = MAX_RECEIVE_COUNT
    memory_mb: int | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        missing = [k for k in ("LOG_BUCKET", "JOBS_QUEUE", "RESULTS_TABLE") if not env.get(k)]
        if missing:
            raise ConfigurationError(
                f"missing environment variables {', '.join(missing)}: run with a stage from "
                ".chalice/config.json (chalice deploy --stage ..., or python -m localruntime)")
        try:
            return cls(
                bucket=env["LOG_BUCKET"],
                jobs_queue=env["JOBS_QUEUE"],
                results_table=env["RESULTS_TABLE"],
                max_file_bytes=int(env.get("MAX_FILE_BYTES", cls.max_file_bytes)),
                worker_timeout_seconds=int(env.get("WORKER_TIMEOUT_SECONDS",
                                                   cls.worker_timeout_seconds)),
                worker_min_bytes_per_second=int(env.get("WORKER_MIN_BYTES_PER_SECOND",
                                                        cls.worker_min_bytes_per_second)),
                retry_base_seconds=float(env.get("RETRY_BASE_SECONDS", cls.retry_base_seconds)),
                max_receive_count=int(env.get("MAX_RECEIVE_COUNT", cls.max_receive_count)),
                memory_mb=int(env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"])
                if env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE") else None,
            )
        except ValueError as exc:
            raise ConfigurationError(f"invalid numeric setting: {exc}") from exc

    def time_limited_bytes(self) -> int:
        """Content the worker can surely get through within its time limit."""
        return int(self.worker_timeout_seconds * self.worker_min_bytes_per_second * TIME_SAFETY)

    def check_object(self, key: str, size: int) -> JobRejected | None:
        reason = unsupported_reason(key)
        if reason:
            return JobRejected("unsupported_type", reason)
        if size > self.max_file_bytes:
            return JobRejected("too_large", f"{size} bytes exceeds the {self.max_file_bytes}-byte "
                               "limit (MAX_FILE_BYTES)")
        content = size * ASSUMED_GZIP_RATIO if is_gzip_name(key) else size
        budget = self.time_limited_bytes()
        if content > budget:
            gz = f" (gzip, counted as {ASSUMED_GZIP_RATIO}x)" if is_gzip_name(key) else ""
            return JobRejected(
                "too_large",
                f"{size} bytes{gz} exceeds the {budget}-byte limit the worker can process within "
                f"its {self.worker_timeout_seconds} s time limit at "
                f"{self.worker_min_bytes_per_second} bytes/s")
        return None


class JobStore(Protocol):
    def create(self, record: ResultRecord) -> dict[str, Any] | None: ...
    def requeue(self, record: ResultRecord, failed_at: str) -> bool: ...
    def reject(self, record: ResultRecord) -> bool: ...
    def claim(self, record: ResultRecord, stale_before: str) -> bool: ...
    def finish(self, record: ResultRecord) -> bool: ...
    def release(self, job_id: str, error: str) -> None: ...
    def get(self, job_id: str) -> dict[str, Any] | None: ...


class JobQueue(Protocol):
    def send(self, job: Job, delay_seconds: int = 0) -> None: ...
    def retry_later(self, receipt_handle: str, delay_seconds: int) -> None: ...
    def delete(self, receipt_handles: list[str]) -> None: ...


class ObjectSource(Protocol):
    def open(self, job: Job) -> Iterable[bytes]: ...


class Trigger:
    """S3 ObjectCreated -> a job record (queued, or failed with a reason) and a queue message."""

    def __init__(self, settings: Settings, store: JobStore, queue: JobQueue,
                 clock: Callable[[], float] = time.time,
                 telemetry: Telemetry | None = None) -> None:
        self.settings = settings
        self.store = store
        self.queue = queue
        self.clock = clock
        self.telemetry = telemetry or Telemetry()

    def handle(self, event: dict[str, Any]) -> dict[str, int]:
        counts = {"queued": 0, "rejected": 0, "duplicate": 0}
        now = self.clock()
        for job in jobs_from_s3_event(event, iso(now)):
            rejection = self.settings.check_object(job.key, job.size)
            if rejection is not None:
                self.store.reject(rejected_record(job, rejection, now))
                counts["rejected"] += 1
                self.telemetry.event("job_rejected", job_id=job.job_id, key=job.key,
                                     reason=rejection.reason)
                continue
            record = queued_record(job)
            existing = self.store.create(record)
            if (existing is not None and _uploaded_again(job, existing)
                    and self.store.requeue(record, existing["completed_at"])):
                existing = None
            if existing is None or existing["status"] == Status.QUEUED:
                # A queued job may have lost its message to a crash: sending again is safe.
                self.queue.send(job)
            if existing is None:
                counts["queued"] += 1
                self.telemetry.event("job_queued", job_id=job.job_id, key=job.key,
                                     size=job.size)
            else:
                counts["duplicate"] += 1
                self.telemetry.event("job_duplicate", job_id=job.job_id, key=job.key,
                                     status=existing["status"])
        self.telemetry.jobs_created(counts)
        return counts


def _uploaded_again(job: Job, existing: dict[str, Any]) -> bool:
    """True when the same bytes were uploaded again after the job failed.

    A late copy of the first notification carries the first upload's time, which is
    before the failure; an upload after the failure may succeed where it did not.
    """
    if existing.get("status") != Status.FAILED or not existing.get("completed_at"):
        return False
    try:
        return epoch(job.uploaded_at or "") > epoch(existing["completed_at"])
    except ValueError:
        return False


def _discard(fetch: Future[Any]) -> None:
    try:
        chunks = fetch.result()
    except Exception:  # noqa: BLE001 - the job is not ours; its object does not matter
        return
    close = getattr(chunks, "close", None)
    if close is not None:
        close()


class BatchFailed(Exception):
    """Some jobs of a batch failed: raised so that SQS keeps exactly their messages.

    The worker deletes the messages it handled itself before raising, so a failed
    neighbour never sends them round again, whether or not the event-source mapping
    reports batch item failures.
    """

    def __init__(self, failures: list[str]) -> None:
        super().__init__(f"{len(failures)} job(s) failed and will be retried: "
                         + "; ".join(failures))


class Worker:
    """SQS batch -> one result record per job; failed messages are retried, then dead-lettered."""

    def __init__(self, settings: Settings, store: JobStore, source: ObjectSource,
                 queue: JobQueue, clock: Callable[[], float] = time.time,
                 telemetry: Telemetry | None = None) -> None:
        self.settings = settings
        self.store = store
        self.source = source
        self.queue = queue
        self.clock = clock
        self.telemetry = telemetry or Telemetry()
        self._fetcher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fetch")

    def handle(self, event: dict[str, Any],
               remaining_ms: Callable[[], int] | None = None) -> dict[str, list[Any]]:
        budget = Budget(remaining_ms, self.settings.memory_mb)
        handled: list[str] = []
        failures: list[str] = []
        for record in event.get("Records") or []:
            try:
                self.process(record, budget)
            except Exception as exc:  # noqa: BLE001 - every failure is retried by SQS
                error = f"{type(exc).__name__}: {exc}"
                failures.append(f"{record.get('messageId', '')}: {error}"[:MAX_ERROR_CHARS])
                self.telemetry.event("job_error", level="warning",
                                     message_id=record.get("messageId"), error=error)
                self._retry_later(record)
            else:
                if record.get("receiptHandle"):
                    handled.append(record["receiptHandle"])
        if failures:
            if handled:
                self.queue.delete(list(dict.fromkeys(handled)))
            raise BatchFailed(failures)
        return {"batchItemFailures": []}

    def process(self, record: dict[str, Any], budget: Budget | None = None) -> None:
        job = Job.from_message(record.get("body", ""))
        attempts = int(record.get("attributes", {}).get("ApproximateReceiveCount", 1))
        limits = (budget or Budget(None, None)).job(job.size)
        try:
            limits.start()
        except Deferred as deferred:
            self._defer(job, deferred)
            return
        started = self.clock()
        stale_before = iso(started - self.settings.worker_timeout_seconds)
        # The object is requested while the claim is written; it is read only once claimed.
        fetch = self._fetcher.submit(self.source.open, job)
        try:
            claimed = self.store.claim(processing_record(job, started, attempts), stale_before)
        except Exception:
            _discard(fetch)
            raise
        if not claimed:
            _discard(fetch)
            self._skip(job, started)
            return
        try:
            result = self._result(job, fetch, limits, started, attempts)
            if not self.store.finish(result):
                self.telemetry.event("job_skipped", job_id=job.job_id, why="completed elsewhere")
                return
        except Deferred as deferred:
            self.store.release(job.job_id, f"Deferred: {deferred}")
            self._defer(job, deferred)
            return
        except Exception as exc:
            self._give_back(job, exc, started, attempts)
            raise
        self.telemetry.event("job_done", job_id=job.job_id, status=result["status"],
                             lines=result["line_count"], ms=result["processing_time_ms"],
                             reason=result.get("failure_reason"))
        self.telemetry.file_finished(result)

    def _result(self, job: Job, fetch: Future[Any], limits: JobBudget, started: float,
                attempts: int) -> ResultRecord:
        try:
            chunks = limits.counted(fetch.result())
            aggregator = aggregate_chunks(chunks, gzip_hint=is_gzip_name(job.key),
                                          check=limits.check)
            statistics = aggregator.result()
            event_hours = aggregator.event_hours(hour_of_iso(upload_time(job)))
        except JobRejected as rejection:
            return failed_record(job, rejection, started, self.clock(), attempts)
        return completed_record(job, statistics, started, self.clock(), attempts, event_hours)

    def _give_back(self, job: Job, exc: Exception, started: float, attempts: int) -> None:
        """Release the claim for the retry, or end the job if this was its last attempt."""
        error = f"{type(exc).__name__}: {exc}"
        if attempts < self.settings.max_receive_count:
            self.store.release(job.job_id, error)
            return
        exhausted = JobRejected(RETRIES_EXHAUSTED, f"{attempts} attempts failed; the message "
                                f"goes to the dead-letter queue. Last error: {error}"
                                [:MAX_ERROR_CHARS])
        try:
            ended = failed_record(job, exhausted, started, self.clock(), attempts)
            if self.store.finish(ended):
                self.telemetry.file_finished(ended)
        except Exception:  # noqa: BLE001 - the claim goes stale; a redrive takes it over
            log.warning("could not record that job %s ran out of retries", job.job_id)

    def _skip(self, job: Job, now: float) -> None:
        """A job that ended, or that another attempt holds, is not ours to run.

        The other attempt may die before it writes a result: this message then comes
        back, as a new one, when that claim goes stale, to see the result or take over.
        """
        holder = self.store.get(job.job_id)
        if holder is None or holder["status"] != Status.PROCESSING:
            self.telemetry.event("job_skipped", job_id=job.job_id, why="ended")
            return
        stale_at = epoch(holder["started_at"]) + self.settings.worker_timeout_seconds
        delay = min(MAX_DELAY, max(1, math.ceil(stale_at - now) + 1))
        self._defer(job, Deferred("another attempt holds the job; back when its claim goes "
                                  "stale"), delay)

    def _defer(self, job: Job, deferred: Deferred, delay_seconds: int = 0) -> None:
        """Hand the job to a fresh invocation as a new message, with its own receive count."""
        if job.deferrals >= MAX_DEFERRALS:
            raise RuntimeError(f"deferred {job.deferrals} times already: {deferred}")
        self.queue.send(job.deferred(), delay_seconds)
        self.telemetry.event("job_deferred", job_id=job.job_id, why=str(deferred),
                             delay=delay_seconds)

    def _retry_later(self, record: dict[str, Any]) -> None:
        receipt = record.get("receiptHandle")
        if not receipt:
            return
        count = int(record.get("attributes", {}).get("ApproximateReceiveCount", 1))
        delay = min(MAX_DELAY, int(self.settings.retry_base_seconds * 2 ** (count - 1)))
        try:
            self.queue.retry_later(receipt, delay)
        except Exception:  # noqa: BLE001 - the visibility timeout still brings it back
            log.warning("could not schedule the retry of %s", record.get("messageId"))
