"""The results API's request and response models (pydantic). docs/api.md lists them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from chalicelib.core.jobs import Source
from chalicelib.core.schema import Status

MAX_PAGE = 200
MAX_STATS_DAYS = 31
MAX_NAME_LENGTH = 512


class Strict(BaseModel):
    """Unknown fields are errors: a misspelt filter must not silently list everything."""

    model_config = ConfigDict(extra="forbid")


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Range(Strict):
    """since / until: RFC 3339 date-times (no offset means UTC) or epoch seconds."""

    since: datetime | None = None
    until: datetime | None = None

    @field_validator("since", "until")
    @classmethod
    def _as_utc(cls, value: datetime | None) -> datetime | None:
        return _utc(value)

    @field_validator("until")
    @classmethod
    def _after_since(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        since = info.data.get("since")
        if value is not None and since is not None and value < since:
            raise ValueError("must not be before since")
        return value


class JobsQuery(Range):
    """GET /jobs query parameters."""

    status: Status | None = None
    source: Source | None = None
    prefix: str | None = Field(None, min_length=1, max_length=1024)
    limit: int = Field(50, ge=1, le=MAX_PAGE)
    cursor: str | None = Field(None, min_length=1, max_length=2048)


class StatsQuery(Range):
    """GET /stats query parameters (default: the last 24 hours)."""


class UploadRequest(Strict):
    """POST /uploads body: the file's name (it becomes logs/<name>) and size in bytes."""

    name: str = Field(min_length=1, max_length=MAX_NAME_LENGTH)
    size: int = Field(ge=0)

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        if value.startswith("/") or "\\" in value or any(ord(c) < 32 for c in value):
            raise ValueError("must be a relative name without backslashes or control "
                             "characters")
        if any(part in ("", ".", "..") for part in value.split("/")):
            raise ValueError("must not contain empty, '.' or '..' path segments")
        return value


class JobSummary(BaseModel):
    """One row of GET /jobs."""

    job_id: str
    key: str
    source: Source
    status: Status
    created_at: str
    completed_at: str | None = None
    file_size_bytes: int | None = None
    line_count: int | None = None
    malformed_count: int | None = None
    error_count: int | None = None
    p50_response_time_ms: float | None = None
    p95_response_time_ms: float | None = None
    p99_response_time_ms: float | None = None
    processing_time_ms: float | None = None
    failure_reason: str | None = None


class JobsPage(BaseModel):
    jobs: list[JobSummary]
    next_cursor: str | None


class JobRecord(BaseModel):
    """GET /jobs/{job_id}: the whole result record (docs/spec.md); fields beyond these
    are passed through."""

    model_config = ConfigDict(extra="allow")

    job_id: str
    bucket: str
    key: str
    status: Status
    created_at: str
    expires_at: int
    file_size_bytes: int | None = None
    failure_reason: str | None = None


class FileCounts(BaseModel):
    received: int
    completed: int
    failed: int


class StatsTotals(BaseModel):
    files: FileCounts
    lines: int
    malformed: int
    levels: dict[str, int]
    status_codes: dict[str, int]
    error_rate: float | None = Field(description="ERROR records / valid records")


class StatsHour(BaseModel):
    hour: str
    files: int
    lines: int
    errors: int
    error_rate: float | None


class Stats(BaseModel):
    since: datetime
    until: datetime
    totals: StatsTotals
    hours: list[StatsHour]


class JobsQueueDepth(BaseModel):
    visible: int
    in_flight: int
    delayed: int


class DeadLetterDepth(BaseModel):
    visible: int


class Health(BaseModel):
    jobs_queue: JobsQueueDepth
    dead_letter_queue: DeadLetterDepth
    oldest_queued_job_age_seconds: float | None = Field(
        description="age of the oldest job still waiting for a worker; null when none waits")


class UploadTicket(BaseModel):
    key: str
    url: str
    method: Literal["PUT"] = "PUT"
    headers: dict[str, str]
    expires_in_seconds: int
    job_id: str | None = Field(
        None, description="null: the job id comes from the stored object's ETag or version")
    jobs_url: str


class IngestAccepted(BaseModel):
    """POST /ingest: the non-blank lines put on the stream, in how many Kinesis records."""

    accepted: int
    records: int


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


def dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json")
