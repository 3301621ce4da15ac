"""Cost of processing one million files on AWS, from measured durations and configured memory."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from analysis.dataset import Sample
from analysis.stats import components

MILLION = 1_000_000
GB = 1024 ** 3


@dataclass(frozen=True)
class Prices:
    """On-demand list prices in USD (no free tier, first volume tier)."""

    region: str
    taken: str
    source: str
    lambda_request: float
    lambda_gb_second: float
    sqs_request: float
    s3_put: float
    s3_get: float
    ddb_write_unit: float
    ddb_read_unit: float
    s3_gb_month: float
    ddb_gb_month: float


PRICES = Prices(
    region="us-east-1 (US East, N. Virginia)",
    taken="2026-11-23",
    source="aws.amazon.com/lambda/pricing, /sqs/pricing, /s3/pricing, /dynamodb/pricing",
    lambda_request=0.20 / MILLION,
    lambda_gb_second=0.0000166667,  # x86_64, first 6 billion GB-s a month
    sqs_request=0.40 / MILLION,  # standard queue, per 64 KB chunk
    s3_put=0.005 / 1000,
    s3_get=0.0004 / 1000,
    ddb_write_unit=0.625 / MILLION,  # on-demand write request unit (1 KB)
    ddb_read_unit=0.125 / MILLION,  # on-demand read request unit (4 KB strongly consistent)
    s3_gb_month=0.023,
    ddb_gb_month=0.25,
)


@dataclass(frozen=True)
class FileUsage:
    """What one file costs in requests and compute; durations in ms per invocation."""

    trigger_ms: float
    worker_ms: float
    trigger_memory_mb: int
    worker_memory_mb: int
    file_bytes: int
    record_bytes: int
    lambda_invocations: int = 2
    sqs_requests: int = 3
    s3_puts: int = 1
    s3_gets: int = 1
    ddb_small_writes: int = 2
    ddb_record_writes: int = 1
    ddb_reads: int = 0
    s3_retention_days: float = 30.0
    ddb_retention_days: float = 7.0


@dataclass(frozen=True)
class CostLine:
    item: str
    quantity: float
    unit: str
    unit_price: float

    @property
    def cost(self) -> float:
        return self.quantity * self.unit_price


@dataclass(frozen=True)
class CostEstimate:
    lines: tuple[CostLine, ...]
    storage: tuple[CostLine, ...]

    @property
    def per_million(self) -> float:
        return sum(line.cost for line in self.lines)

    @property
    def storage_per_million(self) -> float:
        return sum(line.cost for line in self.storage)

    @property
    def per_file(self) -> float:
        return self.per_million / MILLION


def billed_ms(durations: Iterable[float]) -> float:
    """Mean Lambda-billed duration: each invocation rounds up to a whole millisecond.

    Durations computed from epoch timestamps carry float noise far below 1 µs; it is
    ignored so that an exact 6 ms is billed as 6, not 7.
    """
    values = [max(1, math.ceil(d - 1e-3)) for d in durations]
    if not values:
        raise ValueError("no durations to bill")
    return sum(values) / len(values)


def write_units(item_bytes: int) -> int:
    return max(1, math.ceil(item_bytes / 1024))


def estimate(usage: FileUsage, prices: Prices = PRICES) -> CostEstimate:
    """Cost of one million files like `usage`."""
    n = MILLION
    gb_seconds = (usage.trigger_memory_mb / 1024 * usage.trigger_ms / 1000
                  + usage.worker_memory_mb / 1024 * usage.worker_ms / 1000)
    wru = usage.ddb_small_writes + usage.ddb_record_writes * write_units(usage.record_bytes)
    lines = (
        CostLine("Lambda requests", usage.lambda_invocations * n, "requests",
                 prices.lambda_request),
        CostLine("Lambda compute", gb_seconds * n, "GB-s", prices.lambda_gb_second),
        CostLine("SQS requests", usage.sqs_requests * n, "requests", prices.sqs_request),
        CostLine("S3 PUT", usage.s3_puts * n, "requests", prices.s3_put),
        CostLine("S3 GET", usage.s3_gets * n, "requests", prices.s3_get),
        CostLine("DynamoDB writes", wru * n, "WRU", prices.ddb_write_unit),
        CostLine("DynamoDB reads", usage.ddb_reads * n, "RRU", prices.ddb_read_unit),
    )
    storage = (
        CostLine(f"S3 storage ({usage.s3_retention_days:g} days)",
                 usage.file_bytes * n / GB * usage.s3_retention_days / 30, "GB-month",
                 prices.s3_gb_month),
        CostLine(f"DynamoDB storage ({usage.ddb_retention_days:g} days TTL)",
                 usage.record_bytes * n / GB * usage.ddb_retention_days / 30, "GB-month",
                 prices.ddb_gb_month),
    )
    return CostEstimate(lines=tuple(line for line in lines if line.quantity), storage=storage)


DEFAULT_RECORD_BYTES = 2048


def usage_from_samples(samples: Sequence[Sample], *, trigger_memory_mb: int,
                       worker_memory_mb: int,
                       trigger_durations: Sequence[float] = ()) -> FileUsage | None:
    """Per-file usage from measured runs of one file size; None without completed files.

    Worker duration: the record's processing_time_ms. Trigger duration: the trigger's
    logged invocation durations when given, else the upload-to-job-created gap, an
    upper bound (it includes S3's event delivery).
    """
    ok = [s for s in samples if s.ok and s.processing_time_ms is not None]
    parts = [c for s in ok if (c := components(s)) is not None]
    if not ok or not parts:
        return None
    sizes = [s.record_bytes for s in ok if s.record_bytes]
    return FileUsage(
        trigger_ms=billed_ms(trigger_durations or [max(0.0, c["trigger"]) for c in parts]),
        worker_ms=billed_ms(s.processing_time_ms or 0.0 for s in ok),
        trigger_memory_mb=trigger_memory_mb,
        worker_memory_mb=worker_memory_mb,
        file_bytes=round(statistics.fmean(s.bytes for s in ok)),
        record_bytes=round(statistics.median(sizes)) if sizes else DEFAULT_RECORD_BYTES,
    )
