"""The results API's request and response models (pydantic). docs/api.md lists them."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationInfo, field_validator

from chalicelib.core.jobs import Source
from chalicelib.core.reference import parse_timestamp
from chalicelib.core.schema import Status

MAX_PAGE = 200
MAX_STATS_DAYS = 31
UPLOAD_PREFIX = "logs/"
MAX_KEY_BYTES = 1024  # S3's limit on a whole key, in UTF-8 bytes
MAX_NAME_BYTES = MAX_KEY_BYTES - len(UPLOAD_PREFIX.encode())
# The moments a range may name: hour and day arithmetic on them stays inside datetime's years.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9998, 12, 31, 23, 59, 59, tzinfo=UTC)
_EPOCH_SECONDS = re.compile(r"[0-9]{1,20}(?:\.[0-9]{1,9})?")
MOMENT_FORMS = ("an RFC 3339 date-time such as 2026-12-06T12:00:00Z (no offset means UTC) "
                "or epoch seconds such as 1765022400")
MAX_ENDPOINTS = 500


class Strict(BaseModel):
    """Unknown fields are errors: a misspelt filter must not silently list everything."""

    model_config = ConfigDict(extra="forbid")


def moment(value: object) -> datetime:
    """A `since`/`until` value: an RFC 3339 date-time or epoch seconds, 1970 to 9998, UTC."""
    text = value if isinstance(value, str) else None
    if isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
    if text is None:
        raise ValueError(f"expected {MOMENT_FORMS}")
    if _EPOCH_SECONDS.fullmatch(text):
        seconds = Decimal(text)
        if seconds > int(LATEST.timestamp()):
            hint = (" (this looks like milliseconds: divide by 1000)"
                    if seconds / 1000 <= int(LATEST.timestamp()) else "")
            raise ValueError(f"epoch seconds must be at most {int(LATEST.timestamp())}{hint}")
        return datetime.fromtimestamp(float(seconds), UTC)
    parsed = parse_timestamp(text)
    if parsed is None:
        raise ValueError(f"expected {MOMENT_FORMS}")
    parsed = parsed.astimezone(UTC)
    if not EARLIEST <= parsed <= LATEST:
        raise ValueError("must be from 1970-01-01T00:00:00Z to 9998-12-31T23:59:59Z")
    return parsed


class Range(Strict):
    """since / until: RFC 3339 date-times (no offset means UTC) or epoch seconds."""

    since: datetime | None = None
    until: datetime | None = None

    @field_validator("since", "until", mode="before")
    @classmethod
    def _moment(cls, value: object) -> datetime | None:
        return None if value is None else moment(value)

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
    prefix: str | None = Field(None, min_length=1, max_length=1024)
    source: Source | None = Field(None, description="upload, or stream (keys under "
                                  "logs/stream/)")
    limit: int = Field(50, ge=1, le=MAX_PAGE)
    cursor: str | None = Field(None, min_length=1, max_length=2048)


class StatsQuery(Range):
    """GET /stats query parameters (default: the last 24 hours)."""

    source: Literal["upload", "stream"] | None = None


class EndpointsQuery(StatsQuery):
    """GET /endpoints query parameters."""

    limit: int = Field(20, ge=1, le=MAX_ENDPOINTS)


class UploadRequest(Strict):
    """POST /uploads body: the file's name (it becomes logs/<name>) and size in bytes."""

    name: str = Field(min_length=1)
    size: StrictInt = Field(ge=0)

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        try:
            length = len(value.encode("utf-8"))
        except UnicodeEncodeError:
            raise ValueError("must be valid Unicode (it holds a lone surrogate)") from None
        if length > MAX_NAME_BYTES:
            raise ValueError(f"is {length} bytes in UTF-8; S3 allows {MAX_KEY_BYTES} for the "
                             f"whole key {UPLOAD_PREFIX}<name>, so at most {MAX_NAME_BYTES}")
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


class Latency(BaseModel):
    p50: float
    p95: float
    p99: float
    max: float
    mean: float


class StatsTotals(BaseModel):
    files: FileCounts
    records: int
    malformed: int
    levels: dict[str, int]
    status_codes: dict[str, int]
    error_rate: float | None = Field(description="ERROR records / valid records")
    out_of_range: int
    response_time_ms: Latency | None


class StatsHour(BaseModel):
    hour: str
    files: FileCounts
    malformed: int
    records: int
    errors: int
    error_rate: float | None
    p50: float | None
    p95: float | None
    p99: float | None
    max: float | None


class Stats(BaseModel):
    since: datetime
    until: datetime
    source: str | None
    totals: StatsTotals
    hours: list[StatsHour]
    accuracy: dict[str, Any]


class EndpointRow(BaseModel):
    endpoint: str
    requests: int
    errors: int
    error_rate: float | None
    p95_ms: float | None


class OtherEndpoints(BaseModel):
    requests: int
    errors: int


class Endpoints(BaseModel):
    since: datetime
    until: datetime
    source: str | None
    endpoints: list[EndpointRow]
    other: OtherEndpoints
    per_hour_bound: int = Field(description="named endpoints kept per hour; past it the least "
                                            "busy go to `other`")
    exact: bool = Field(description="false when some file kept only its busiest endpoints "
                                    "of an hour, or an hour kept only `per_hour_bound`: the "
                                    "rest are in `other`")


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


class DownloadTicket(BaseModel):
    url: str
    expires_in_seconds: int


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


def dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json")
