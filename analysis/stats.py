"""Latency percentiles, throughput and the per-component breakdown of end-to-end time."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from analysis.dataset import Sample
from measure.stats import percentile

COMPONENTS = ("upload", "trigger", "queue", "worker", "observe")
COMPONENT_HELP = {
    "upload": "client PutObject call (start -> response, or -> created_at when the trigger "
              "created the job before the response reached the client)",
    "trigger": "S3 event delivery to the trigger (PutObject response -> trigger starts, "
               "created_at; 0 when the trigger was faster than the response)",
    "queue": "trigger stores the job and enqueues it, SQS delivers it to a worker "
             "(created_at -> started_at)",
    "worker": "worker claims the job, reads, parses, aggregates (started_at -> completed_at)",
    "observe": "result write, then the client's next poll (completed_at -> client saw it)",
}


@dataclass(frozen=True)
class LatencySummary:
    count: int
    mean: float
    stdev: float
    minimum: float
    p50: float
    p95: float
    p99: float
    maximum: float


def summarize(values: Sequence[float]) -> LatencySummary:
    if not values:
        raise ValueError("summary of no values")
    return LatencySummary(
        count=len(values), mean=statistics.fmean(values),
        stdev=statistics.stdev(values) if len(values) > 1 else 0.0,
        minimum=min(values), p50=percentile(values, 50), p95=percentile(values, 95),
        p99=percentile(values, 99), maximum=max(values),
    )


def e2e_values(samples: Iterable[Sample]) -> list[float]:
    return [s.e2e_ms for s in samples if s.ok]


def error_rate(samples: Sequence[Sample]) -> float:
    return sum(1 for s in samples if not s.ok) / len(samples) if samples else 0.0


def sequential_throughput(samples: Sequence[Sample]) -> float:
    """The seed's formula: successful files / sum of their end-to-end seconds."""
    ok = [s for s in samples if s.ok]
    total = sum(s.e2e_ms for s in ok) / 1000.0
    return len(ok) / total if total > 0 else 0.0


def wall_throughput(samples: Sequence[Sample]) -> float:
    """Successful files / wall-clock window from the first upload start to the last result."""
    ok = [s for s in samples if s.ok]
    if not ok:
        return 0.0
    window = max(s.end_epoch for s in samples) - min(s.start_epoch for s in samples)
    return len(ok) / window if window > 0 else 0.0


def components(sample: Sample) -> dict[str, float] | None:
    """Split one file's end-to-end time at the record's timestamps (ms); they sum to e2e.

    None when the record lacks a timestamp. Boundaries between the client's clock and
    the pipeline's (trigger, observe) absorb any clock offset; the sum stays exact.
    """
    stamps = (sample.created_at, sample.started_at, sample.completed_at)
    if not sample.ok or any(t is None for t in stamps):
        return None
    created, started, completed = (float(t) for t in stamps)  # type: ignore[arg-type]
    # S3 may notify the trigger before PutObject's response reaches the client: the
    # upload then ends, for this split, where the job was created (no negative trigger).
    uploaded = min(sample.start_epoch + sample.upload_ms / 1000.0, created)
    return {
        "upload": (uploaded - sample.start_epoch) * 1000.0,
        "trigger": (created - uploaded) * 1000.0,
        "queue": (started - created) * 1000.0,
        "worker": (completed - started) * 1000.0,
        "observe": (sample.end_epoch - completed) * 1000.0,
    }


@dataclass(frozen=True)
class Breakdown:
    count: int
    mean: dict[str, float]
    median: dict[str, float]
    processing_ms: float | None

    @property
    def total(self) -> float:
        return sum(self.mean.values())


def breakdown(samples: Iterable[Sample]) -> Breakdown | None:
    parts = [(s, c) for s in samples if (c := components(s)) is not None]
    if not parts:
        return None
    processing = [s.processing_time_ms for s, _ in parts if s.processing_time_ms is not None]
    return Breakdown(
        count=len(parts),
        mean={k: statistics.fmean(c[k] for _, c in parts) for k in COMPONENTS},
        median={k: statistics.median(c[k] for _, c in parts) for k in COMPONENTS},
        processing_ms=statistics.fmean(processing) if processing else None,
    )


def by_size(samples: Iterable[Sample]) -> dict[int, list[Sample]]:
    groups: dict[int, list[Sample]] = {}
    for s in samples:
        groups.setdefault(s.lines, []).append(s)
    return dict(sorted(groups.items()))


@dataclass(frozen=True)
class ConcurrencyPoint:
    users: int
    files: int
    failures: int
    throughput: float
    p50: float | None
    p99: float | None


def concurrency_curve(samples: Iterable[Sample]) -> list[ConcurrencyPoint]:
    """Group a sweep by the user count at upload time: throughput and latency per step."""
    groups: dict[int, list[Sample]] = {}
    for s in samples:
        groups.setdefault(s.users, []).append(s)
    points = []
    for users, group in sorted(groups.items()):
        ok = e2e_values(group)
        points.append(ConcurrencyPoint(
            users=users, files=len(group), failures=sum(1 for s in group if not s.ok),
            throughput=wall_throughput(group),
            p50=percentile(ok, 50) if ok else None, p99=percentile(ok, 99) if ok else None,
        ))
    return points
