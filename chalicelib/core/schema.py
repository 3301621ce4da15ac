"""The result record, defined once (docs/spec.md, "The result record").

The statistics are what `chalicelib.core.aggregate` and `chalicelib.core.reference` compute for a
file; the record adds the job's identity and life. Everything that reads or writes
records (results, adapters, logctl, loadtest, tests) takes its field names from here.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TypedDict


class Status(StrEnum):
    QUEUED = "queued"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"

    @property
    def final(self) -> bool:
        return self in (Status.COMPLETED, Status.FAILED)


FINAL_STATUSES = frozenset(s for s in Status if s.final)


class MalformedSample(TypedDict):
    line: int
    reason: str


class EndpointStatistics(TypedDict):
    endpoint: str
    count: int
    error_count: int
    avg_response_time_ms: float


Number = int | float


class Statistics(TypedDict):
    line_count: int
    malformed_count: int
    malformed_samples: list[MalformedSample]
    info_count: int
    warn_count: int
    error_count: int
    debug_count: int
    avg_response_time_ms: float | None
    max_response_time_ms: Number | None
    p50_response_time_ms: Number | None
    p95_response_time_ms: Number | None
    p99_response_time_ms: Number | None
    unique_users: int
    unique_endpoints: int
    status_codes: dict[str, int]
    top_endpoints: list[EndpointStatistics]
    first_timestamp: str | None
    last_timestamp: str | None


STATISTICS_FIELDS: tuple[str, ...] = tuple(Statistics.__annotations__)


def empty_statistics() -> Statistics:
    """The statistics of a file with no lines (and of a failed one)."""
    return Statistics(
        line_count=0, malformed_count=0, malformed_samples=[], info_count=0, warn_count=0,
        error_count=0, debug_count=0, avg_response_time_ms=None, max_response_time_ms=None,
        p50_response_time_ms=None, p95_response_time_ms=None, p99_response_time_ms=None,
        unique_users=0, unique_endpoints=0, status_codes={}, top_endpoints=[],
        first_timestamp=None, last_timestamp=None)


class ResultRecord(Statistics, total=False):
    """One item of the results table; a queued or processing record has no statistics yet."""

    job_id: str
    bucket: str
    key: str
    source: str  # Source: upload, or stream (chalicelib.core.jobs.source_of of the key)
    etag: str | None
    version_id: str | None
    status: Status
    failure_reason: str | None
    file_size_bytes: int
    uploaded_at: str | None
    created_at: str
    created_day: str  # UTC date of created_at: the jobs_by_day index key (chalicelib.jobindex)
    started_at: str
    completed_at: str
    processing_time_ms: float
    attempts: int
    last_error: str
    expires_at: int


RECORD_FIELDS: tuple[str, ...] = tuple(ResultRecord.__annotations__)

