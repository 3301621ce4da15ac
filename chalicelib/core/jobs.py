"""Jobs: what the trigger creates for each uploaded object, and how it travels on the queue."""

from __future__ import annotations

import hashlib
import json
from dataclasses import MISSING, asdict, dataclass, fields, replace
from enum import StrEnum
from typing import Any
from urllib.parse import unquote_plus

from chalicelib.core.errors import BadMessage

SUPPORTED_SUFFIXES = (".ndjson", ".jsonl", ".log", ".json")
STREAM_PREFIX = "logs/stream/"


class Source(StrEnum):
    """How a file came in: uploaded as a file, or written from streamed events."""

    UPLOAD = "upload"
    STREAM = "stream"


def source_of(key: str) -> Source:
    return Source.STREAM if key.startswith(STREAM_PREFIX) else Source.UPLOAD


def job_id_for(bucket: str, key: str, *, etag: str | None = None,
               version_id: str | None = None) -> str:
    """Deterministic: the same object version always maps to the same job."""
    identity = version_id or (etag or "").strip('"')
    digest = hashlib.sha256("\x00".join((bucket, key, identity)).encode("utf-8"))
    return digest.hexdigest()[:32]


def unsupported_reason(key: str) -> str | None:
    name = key.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    if name.endswith(SUPPORTED_SUFFIXES) and not name.endswith("/"):
        return None
    allowed = ", ".join(SUPPORTED_SUFFIXES)
    return f"{key!r} is not a log file (supported: {allowed}, each optionally .gz)"


@dataclass(frozen=True)
class Job:
    job_id: str
    bucket: str
    key: str
    size: int
    etag: str | None
    version_id: str | None
    uploaded_at: str | None
    created_at: str
    deferrals: int = 0  # times the job was handed to a fresh invocation (see Worker)

    def to_message(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    def deferred(self) -> Job:
        return replace(self, deferrals=self.deferrals + 1)

    @classmethod
    def from_message(cls, body: str) -> Job:
        try:
            data = json.loads(body)
            return cls(**{f.name: data[f.name] for f in fields(cls)
                          if f.name in data or f.default is MISSING})
        except (ValueError, TypeError, KeyError) as exc:
            raise BadMessage(f"not a job message: {body[:200]!r}") from exc


def jobs_from_s3_event(event: dict[str, Any], created_at: str) -> list[Job]:
    """One Job per ObjectCreated record; S3 test events and other event types are skipped."""
    jobs: list[Job] = []
    for record in event.get("Records") or []:
        if not str(record.get("eventName", "")).startswith("ObjectCreated"):
            continue
        s3 = record["s3"]
        bucket = s3["bucket"]["name"]
        obj = s3["object"]
        key = unquote_plus(obj["key"])
        etag = obj.get("eTag") or obj.get("etag")
        version_id = obj.get("versionId")
        if version_id == "null":  # an object put while versioning was off or suspended
            version_id = None
        jobs.append(Job(
            job_id=job_id_for(bucket, key, etag=etag, version_id=version_id),
            bucket=bucket,
            key=key,
            size=int(obj.get("size", 0)),
            etag=etag.strip('"') if etag else None,
            version_id=version_id,
            uploaded_at=record.get("eventTime"),
            created_at=created_at,
        ))
    return jobs
