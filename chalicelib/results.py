"""The result record: one DynamoDB item per input file (see DESIGN.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from chalicelib.errors import JobRejected
from chalicelib.jobs import Job

TTL_SECONDS = 7 * 24 * 3600
QUEUED, PROCESSING, COMPLETED, FAILED = "queued", "processing", "completed", "failed"
EMPTY_STATISTICS: dict[str, Any] = {
    "line_count": 0, "malformed_count": 0, "malformed_samples": [],
    "info_count": 0, "warn_count": 0, "error_count": 0, "debug_count": 0,
    "avg_response_time_ms": None, "max_response_time_ms": None,
    "p50_response_time_ms": None, "p95_response_time_ms": None, "p99_response_time_ms": None,
    "unique_users": 0, "unique_endpoints": 0, "status_codes": {}, "top_endpoints": [],
    "first_timestamp": None, "last_timestamp": None,
}


def iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _base(job: Job, status: str) -> dict[str, Any]:
    return {
        "job_id": job.job_id,
        "bucket": job.bucket,
        "key": job.key,
        "status": status,
        "file_size_bytes": job.size,
        "etag": job.etag,
        "version_id": job.version_id,
        "uploaded_at": job.uploaded_at,
        "created_at": job.created_at,
        "expires_at": int(epoch(job.created_at)) + TTL_SECONDS,
    }


def queued_record(job: Job) -> dict[str, Any]:
    return _base(job, QUEUED)


def processing_record(job: Job, started: float, attempts: int) -> dict[str, Any]:
    return {**_base(job, PROCESSING), "started_at": iso(started), "attempts": attempts}


def rejected_record(job: Job, rejection: JobRejected, now: float) -> dict[str, Any]:
    """A file refused before processing (by the trigger)."""
    return {**_base(job, FAILED), **EMPTY_STATISTICS, "failure_reason": rejection.reason,
            "processing_time_ms": 0, "completed_at": iso(now)}


def completed_record(job: Job, statistics: dict[str, Any], started: float, finished: float,
                     attempts: int) -> dict[str, Any]:
    return {**_base(job, COMPLETED), **statistics, "failure_reason": None,
            "processing_time_ms": round((finished - started) * 1000, 3),
            "started_at": iso(started), "completed_at": iso(finished), "attempts": attempts}


def failed_record(job: Job, rejection: JobRejected, started: float, finished: float,
                  attempts: int) -> dict[str, Any]:
    return {**_base(job, FAILED), **EMPTY_STATISTICS, "failure_reason": rejection.reason,
            "processing_time_ms": round((finished - started) * 1000, 3),
            "started_at": iso(started), "completed_at": iso(finished), "attempts": attempts}
