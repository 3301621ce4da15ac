"""The stage's Kinesis stream for streamed events (INGEST_STREAM), provisioned and hardened.

- provisioned capacity, INGEST_SHARDS shards (default 1: 1 MB/s or 1,000 records/s in,
  2 MB/s out); an existing stream keeps its shard count;
- server-side encryption with the AWS-managed key `alias/aws/kinesis` (no key policy or
  KMS permission to manage);
- records kept RETENTION_HOURS (24, Kinesis's minimum). The ingest handler writes each
  object at most once by asking S3 whether it exists, and S3 answers for live objects only:
  raw logs must outlive the stream's records, so provisioning refuses RAW_LOG_DAYS of 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from logctl.stage import Stage, StageError

RETENTION_HOURS = 24
ENCRYPTION_KEY = "alias/aws/kinesis"
DEFAULT_SHARDS = 1


@dataclass(frozen=True)
class StreamSettings:
    shards: int = DEFAULT_SHARDS

    def __post_init__(self) -> None:
        if self.shards < 1:
            raise ValueError(f"the ingest stream needs at least 1 shard, got {self.shards}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> StreamSettings:
        text = environ.get("INGEST_SHARDS") or str(DEFAULT_SHARDS)
        try:
            return cls(int(text))
        except ValueError as exc:
            raise StageError(f"INGEST_SHARDS={text!r}: {exc}") from None


def check_retention(raw_log_days: int) -> None:
    """Raw logs must be kept longer than the stream keeps records (see the module's text)."""
    if raw_log_days * 24 <= RETENTION_HOURS:
        raise StageError(
            f"raw logs kept {raw_log_days} day(s) would expire before the ingest stream's "
            f"records ({RETENTION_HOURS} h), and a replay could then write events twice: "
            f"keep them at least {RETENTION_HOURS // 24 + 1} days (RAW_LOG_DAYS)")


def describe(kinesis: Any, name: str) -> dict[str, Any] | None:
    try:
        return kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    except kinesis.exceptions.ResourceNotFoundException:
        return None


def ensure_stream(kinesis: Any, stage: Stage, settings: StreamSettings, actions: list[str],
                  poll_seconds: float = 5.0) -> str:
    """The stream, created if missing, encrypted and with its retention; returns its ARN."""
    name = stage.ingest_stream
    summary = describe(kinesis, name)
    if summary is None:
        kinesis.create_stream(StreamName=name, ShardCount=settings.shards,
                              StreamModeDetails={"StreamMode": "PROVISIONED"})
        actions.append(f"created Kinesis stream {name} ({settings.shards} shard(s))")
    kinesis.get_waiter("stream_exists").wait(
        StreamName=name, WaiterConfig={"Delay": poll_seconds, "MaxAttempts": 120})
    summary = describe(kinesis, name) or {}
    retention = summary.get("RetentionPeriodHours", RETENTION_HOURS)
    if retention > RETENTION_HOURS:
        kinesis.decrease_stream_retention_period(StreamName=name,
                                                 RetentionPeriodHours=RETENTION_HOURS)
        actions.append(f"stream {name}: records kept {RETENTION_HOURS} h")
    if summary.get("EncryptionType") != "KMS":
        kinesis.start_stream_encryption(StreamName=name, EncryptionType="KMS",
                                        KeyId=ENCRYPTION_KEY)
        actions.append(f"stream {name}: encrypted with {ENCRYPTION_KEY}")
    return str(summary["StreamARN"])
