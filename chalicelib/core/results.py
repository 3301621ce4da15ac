"""The result record: one DynamoDB item per input file (docs/spec.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from chalicelib.core.errors import JobRejected
from chalicelib.core.jobs import Job, source_of
from chalicelib.core.schema import Statistics, Status, empty_statistics

TTL_SECONDS = 7 * 24 * 3600
MAX_ITEM_BYTES = 350_000  # DynamoDB's item limit is 400 KB
RETRIES_EXHAUSTED = "retries_exhausted"  # the failure code of a job whose retries ran out
KEPT_FIELDS = ("created_at",)  # an update of a record never changes these
MAX_ERROR_CHARS = 1000


def iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _base(job: Job, status: str, written: float) -> dict[str, Any]:
    """Fields every record has; it expires TTL_SECONDS after it was written."""
    return {
        "job_id": job.job_id,
        "bucket": job.bucket,
        "key": job.key,
        "source": source_of(job.key),
        "status": status,
        "file_size_bytes": job.size,
        "etag": job.etag,
        "version_id": job.version_id,
        "uploaded_at": job.uploaded_at,
        "created_at": job.created_at,
        "expires_at": int(written) + TTL_SECONDS,
    }


def queued_record(job: Job) -> dict[str, Any]:
    return _base(job, Status.QUEUED, epoch(job.created_at))


def processing_record(job: Job, started: float, attempts: int) -> dict[str, Any]:
    return {**_base(job, Status.PROCESSING, started), "started_at": iso(started),
            "attempts": attempts}


def rejected_record(job: Job, rejection: JobRejected, now: float) -> dict[str, Any]:
    """A file refused before processing (by the trigger)."""
    return {**_base(job, Status.FAILED, now), **empty_statistics(),
            "failure_reason": rejection.reason, "processing_time_ms": 0, "completed_at": iso(now)}


def completed_record(job: Job, statistics: Statistics, started: float, finished: float,
                     attempts: int) -> dict[str, Any]:
    return bounded({**_final(job, Status.COMPLETED, started, finished, attempts), **statistics,
                    "failure_reason": None})


def failed_record(job: Job, rejection: JobRejected, started: float, finished: float,
                  attempts: int) -> dict[str, Any]:
    return {**_final(job, Status.FAILED, started, finished, attempts), **empty_statistics(),
            "failure_reason": rejection.reason}


def _final(job: Job, status: str, started: float, finished: float,
           attempts: int) -> dict[str, Any]:
    return {**_base(job, status, finished),
            "processing_time_ms": round((finished - started) * 1000, 3),
            "started_at": iso(started), "completed_at": iso(finished), "attempts": attempts}


def item_bytes(value: Any) -> int:
    """An upper bound of the bytes DynamoDB counts for a value (names and values, UTF-8)."""
    if isinstance(value, str):
        return len(value.encode("utf-8", "surrogatepass"))
    if isinstance(value, dict):
        return 3 + sum(item_bytes(k) + 1 + item_bytes(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return 3 + sum(1 + item_bytes(v) for v in value)
    return 40  # numbers take at most 21 bytes, booleans and null 1; text fallbacks are short


def bounded(record: dict[str, Any]) -> dict[str, Any]:
    """The record itself, or a `failed` one if it would not fit in MAX_ITEM_BYTES.

    The statistics are bounded by construction (docs/spec.md, "Size of the record"): this is
    the guard that keeps a final write from failing forever if that bound is ever broken.
    """
    size = item_bytes(record)
    if size <= MAX_ITEM_BYTES:
        return record
    return {**record, **empty_statistics(), "status": Status.FAILED,
            "failure_reason": f"too_large: the result record would take {size} bytes, over "
                              f"the {MAX_ITEM_BYTES}-byte limit for one item"}
