"""Read the raw CSVs the load runners write (one row per uploaded file)."""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

RUN_FILE = re.compile(
    r"^(?P<kind>protocol|load|sweep)-(?P<env>[a-z0-9_]+)-(?P<stamp>\d{8}T\d{6}Z)$")


class DatasetError(ValueError):
    """A results file is missing columns or holds values that cannot be read."""


@dataclass(frozen=True)
class Sample:
    run_id: str
    kind: str
    env: str
    phase: str
    users: int
    seq: int
    size_label: str
    lines: int
    bytes: int
    outcome: str
    reason: str
    start_epoch: float
    upload_ms: float
    e2e_ms: float
    polls: int
    uploaded_at: float | None
    created_at: float | None
    started_at: float | None
    completed_at: float | None
    processing_time_ms: float | None
    attempts: int | None
    record_bytes: int | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == "completed"

    @property
    def end_epoch(self) -> float:
        return self.start_epoch + self.e2e_ms / 1000.0

    @property
    def measured(self) -> bool:
        return self.phase != "warmup"


@dataclass(frozen=True)
class Invocation:
    """One handler invocation, as the local runtime logged it."""

    function: str
    duration_ms: float
    batch_size: int
    cold_start: bool
    outcome: str


@dataclass(frozen=True)
class Run:
    """One results file: its samples and, when present, its host sidecar and runtime log."""

    path: Path
    kind: str
    env: str
    stamp: str
    samples: tuple[Sample, ...]
    host: dict[str, Any]
    invocations: tuple[Invocation, ...] = ()

    def invocations_of(self, function: str) -> list[Invocation]:
        return [i for i in self.invocations if i.function == function]

    @property
    def measured(self) -> list[Sample]:
        return [s for s in self.samples if s.measured]

    @property
    def users(self) -> int:
        return max((s.users for s in self.samples), default=1)

    @property
    def started(self) -> datetime:
        return datetime.strptime(self.stamp, "%Y%m%dT%H%M%SZ")


def parse_timestamp(value: str) -> float | None:
    """ISO-8601 (`Z` or offset) -> epoch seconds; empty -> None."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError as exc:
        raise DatasetError(f"not an ISO-8601 timestamp: {value!r}") from exc


def _optional_float(value: str) -> float | None:
    return float(value) if value not in ("", None) else None


def _optional_int(value: str) -> int | None:
    return int(float(value)) if value not in ("", None) else None


REQUIRED = ("run_id", "kind", "env", "phase", "users", "seq", "size_label", "lines", "bytes",
            "outcome", "reason", "start_epoch", "upload_ms", "e2e_ms", "polls", "uploaded_at",
            "created_at", "started_at", "completed_at", "processing_time_ms", "attempts")


def _sample(row: dict[str, str]) -> Sample:
    return Sample(
        run_id=row["run_id"], kind=row["kind"], env=row["env"], phase=row["phase"],
        users=int(row["users"]), seq=int(row["seq"]), size_label=row["size_label"],
        lines=int(row["lines"]), bytes=int(row["bytes"]), outcome=row["outcome"],
        reason=row["reason"], start_epoch=float(row["start_epoch"]),
        upload_ms=float(row["upload_ms"]), e2e_ms=float(row["e2e_ms"]),
        polls=int(row["polls"]), uploaded_at=parse_timestamp(row["uploaded_at"]),
        created_at=parse_timestamp(row["created_at"]),
        started_at=parse_timestamp(row["started_at"]),
        completed_at=parse_timestamp(row["completed_at"]),
        processing_time_ms=_optional_float(row["processing_time_ms"]),
        attempts=_optional_int(row["attempts"]),
        record_bytes=_optional_int(row.get("record_bytes") or ""),
    )


def read_samples(path: Path) -> list[Sample]:
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in REQUIRED if c not in (reader.fieldnames or ())]
        if missing:
            raise DatasetError(f"{path}: missing columns {', '.join(missing)}")
        samples = []
        for number, row in enumerate(reader, start=2):
            try:
                samples.append(_sample(row))
            except (TypeError, ValueError) as exc:
                raise DatasetError(f"{path}:{number}: {exc}") from exc
    return samples


def host_path(csv_path: Path) -> Path:
    return csv_path.with_suffix(".host.json")


def runtime_log_path(csv_path: Path) -> Path:
    return csv_path.with_suffix(".runtime.log")


def read_invocations(path: Path) -> list[Invocation]:
    """The invocation records in a local runtime log; every other line is skipped."""
    invocations = []
    with path.open(errors="replace") as f:
        for line in f:
            if '"type": "invocation"' not in line:
                continue
            try:
                data = json.loads(line[line.index("{"):])
                invocations.append(Invocation(
                    function=str(data["function"]), duration_ms=float(data["duration_ms"]),
                    batch_size=int(data.get("batch_size", 1)),
                    cold_start=bool(data.get("cold_start", False)),
                    outcome=str(data.get("outcome", ""))))
            except (ValueError, KeyError, TypeError):
                continue
    return invocations


def read_run(path: Path) -> Run:
    match = RUN_FILE.match(path.stem)
    if not match:
        raise DatasetError(f"{path.name}: expected <protocol|load|sweep>-<env>-<stamp>.csv")
    sidecar = host_path(path)
    host = json.loads(sidecar.read_text()) if sidecar.exists() else {}
    log = runtime_log_path(path)
    invocations = tuple(read_invocations(log)) if log.exists() else ()
    return Run(path=path, kind=match["kind"], env=match["env"], stamp=match["stamp"],
               samples=tuple(read_samples(path)), host=host, invocations=invocations)


def latest_runs(directory: Path) -> dict[tuple[str, str], Run]:
    """The newest non-empty run of each (kind, env) in `directory`."""
    newest: dict[tuple[str, str], Path] = {}
    for path in sorted(directory.glob("*.csv")):
        match = RUN_FILE.match(path.stem)
        if not match:
            continue
        key = (match["kind"], match["env"])
        if _has_rows(path) and (key not in newest or path.stem[-16:] > newest[key].stem[-16:]):
            newest[key] = path
    return {key: read_run(path) for key, path in sorted(newest.items())}


def runs_of(directory: Path, kind: str, env: str) -> list[Run]:
    """Every non-empty run of one kind and environment in `directory`, oldest first."""
    paths = [path for path in directory.glob("*.csv")
             if (match := RUN_FILE.match(path.stem))
             and (match["kind"], match["env"]) == (kind, env) and _has_rows(path)]
    return [read_run(path) for path in sorted(paths, key=lambda path: path.stem[-16:])]


def _has_rows(path: Path) -> bool:
    with path.open() as f:
        return sum(1 for _ in zip(f, range(2), strict=False)) > 1
