"""What the two handlers do: the trigger creates jobs, the worker turns them into results."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from chalicelib.errors import ConfigurationError, JobRejected
from chalicelib.jobs import Job, jobs_from_s3_event, unsupported_reason
from chalicelib.results import (
    QUEUED,
    completed_record,
    failed_record,
    iso,
    processing_record,
    queued_record,
    rejected_record,
)
from chalicelib.summary import is_gzip_name, summarize_chunks

log = logging.getLogger("chalicelib.pipeline")
ASSUMED_GZIP_RATIO = 8
TIME_SAFETY = 0.8
MAX_RETRY_DELAY = 900


@dataclass(frozen=True)
class Settings:
    bucket: str
    jobs_queue: str
    results_table: str
    max_file_bytes: int = 1024**3
    worker_timeout_seconds: int = 300
    worker_min_bytes_per_second: int = 20_000_000
    retry_base_seconds: float = 1.0

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
    def create(self, record: dict[str, Any]) -> str | None: ...
    def reject(self, record: dict[str, Any]) -> bool: ...
    def claim(self, record: dict[str, Any], stale_before: str) -> bool: ...
    def finish(self, record: dict[str, Any]) -> bool: ...
    def release(self, job_id: str, error: str) -> None: ...


class JobQueue(Protocol):
    def send(self, job: Job) -> None: ...
    def retry_later(self, receipt_handle: str, delay_seconds: int) -> None: ...


class ObjectSource(Protocol):
    def open(self, job: Job) -> Iterable[bytes]: ...


def _event(name: str, **fields: Any) -> None:
    """One structured line on stdout (CloudWatch Logs in Lambda)."""
    sys.stdout.write(json.dumps({"event": name, **fields}, default=str) + "\n")


class Trigger:
    """S3 ObjectCreated -> a job record (queued, or failed with a reason) and a queue message."""

    def __init__(self, settings: Settings, store: JobStore, queue: JobQueue,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.store = store
        self.queue = queue
        self.clock = clock

    def handle(self, event: dict[str, Any]) -> dict[str, int]:
        counts = {"queued": 0, "rejected": 0, "duplicate": 0}
        now = self.clock()
        for job in jobs_from_s3_event(event, iso(now)):
            rejection = self.settings.check_object(job.key, job.size)
            if rejection is not None:
                self.store.reject(rejected_record(job, rejection, now))
                counts["rejected"] += 1
                _event("job_rejected", job_id=job.job_id, key=job.key, reason=rejection.reason)
                continue
            existing = self.store.create(queued_record(job))
            if existing is None or existing == QUEUED:
                # A queued job may have lost its message to a crash: sending again is safe.
                self.queue.send(job)
            if existing is None:
                counts["queued"] += 1
                _event("job_queued", job_id=job.job_id, key=job.key, size=job.size)
            else:
                counts["duplicate"] += 1
                _event("job_duplicate", job_id=job.job_id, key=job.key, status=existing)
        return counts


def _discard(fetch: Future[Any]) -> None:
    try:
        chunks = fetch.result()
    except Exception:  # noqa: BLE001 - the job is not ours; its object does not matter
        return
    close = getattr(chunks, "close", None)
    if close is not None:
        close()


class Worker:
    """SQS batch -> one result record per job; failed messages are reported and retried."""

    def __init__(self, settings: Settings, store: JobStore, source: ObjectSource,
                 queue: JobQueue, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.store = store
        self.source = source
        self.queue = queue
        self.clock = clock
        self._fetcher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fetch")

    def handle(self, event: dict[str, Any],
               remaining_ms: Callable[[], int] | None = None) -> dict[str, list[dict[str, str]]]:
        failures: list[dict[str, str]] = []
        budget_ms = remaining_ms() if remaining_ms is not None else None
        for record in event.get("Records") or []:
            try:
                self.process(record, self._deadline(remaining_ms, budget_ms))
            except Exception as exc:  # noqa: BLE001 - every failure is retried by SQS
                failures.append({"itemIdentifier": record.get("messageId", "")})
                _event("job_error", message_id=record.get("messageId"),
                       error=f"{type(exc).__name__}: {exc}")
                self._retry_later(record)
        return {"batchItemFailures": failures}

    def process(self, record: dict[str, Any], check: Callable[[], None] | None = None) -> None:
        job = Job.from_message(record.get("body", ""))
        attempts = int(record.get("attributes", {}).get("ApproximateReceiveCount", 1))
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
            _event("job_skipped", job_id=job.job_id, why="ended or running elsewhere")
            return
        try:
            chunks = fetch.result()
            statistics = summarize_chunks(chunks, gzip_hint=is_gzip_name(job.key), check=check)
            result = completed_record(job, statistics, started, self.clock(), attempts)
        except JobRejected as rejection:
            result = failed_record(job, rejection, started, self.clock(), attempts)
        except Exception as exc:
            self.store.release(job.job_id, f"{type(exc).__name__}: {exc}")
            raise
        self.store.finish(result)
        _event("job_done", job_id=job.job_id, status=result["status"],
               lines=result["line_count"], ms=result["processing_time_ms"],
               reason=result.get("failure_reason"))

    def _deadline(self, remaining_ms: Callable[[], int] | None,
                  budget_ms: float | None) -> Callable[[], None] | None:
        """A check that stops a job before the invocation runs out of time.

        A job that had (nearly) the whole invocation to itself and still ran out is too
        large; one that started late in a batch is retried in a fresh invocation.
        """
        if remaining_ms is None or budget_ms is None:
            return None
        margin = max(500.0, budget_ms * 0.05)
        had_whole_budget = remaining_ms() >= budget_ms * 0.9

        def check() -> None:
            if remaining_ms() >= margin:
                return
            if had_whole_budget:
                raise JobRejected(
                    "too_large", f"processing did not finish within the worker's "
                    f"{round(budget_ms / 1000)} s time limit")
            raise TimeoutError("the invocation ran out of time; retrying in a fresh one")
        return check

    def _retry_later(self, record: dict[str, Any]) -> None:
        receipt = record.get("receiptHandle")
        if not receipt:
            return
        count = int(record.get("attributes", {}).get("ApproximateReceiveCount", 1))
        delay = min(MAX_RETRY_DELAY, int(self.settings.retry_base_seconds * 2 ** (count - 1)))
        try:
            self.queue.retry_later(receipt, delay)
        except Exception:  # noqa: BLE001 - the visibility timeout still brings it back
            log.warning("could not schedule the retry of %s", record.get("messageId"))
