"""Raw results: one CSV row per uploaded file.

File names are `<kind>-<env>-<UTC stamp>.csv` (kind: protocol, load or sweep), so the
analysis can pick the newest run of each kind per environment. Raw files go to
RAW_RESULTS_DIR, which git ignores; `python -m analysis.compact` keeps what the report
needs in `results/`.
"""

from __future__ import annotations

import csv
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from measure.probe import Measurement

KINDS = ("protocol", "load", "sweep")
RAW_RESULTS_DIR = Path("results/raw")
FIELDS = (
    "run_id", "kind", "env", "phase", "users", "seq", "size_label", "lines", "bytes", "key",
    "job_id", "outcome", "reason", "start_epoch", "upload_ms", "e2e_ms", "polls", "status",
    "uploaded_at", "created_at", "started_at", "completed_at", "processing_time_ms",
    "attempts", "line_count", "record_bytes",
)
_RECORD_COLUMNS = ("status", "uploaded_at", "created_at", "started_at", "completed_at",
                   "processing_time_ms", "attempts", "line_count")


def utc_stamp(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")


def results_path(directory: Path, kind: str, env: str, stamp: str | None = None) -> Path:
    if kind not in KINDS:
        raise ValueError(f"unknown run kind {kind!r} (expected one of {', '.join(KINDS)})")
    return directory / f"{kind}-{env}-{stamp or utc_stamp()}.csv"


@dataclass(frozen=True)
class RunContext:
    run_id: str
    kind: str
    env: str


def sample_row(ctx: RunContext, m: Measurement, *, label: str, phase: str = "measure",
               users: int = 1, seq: int = 0, record_bytes: int | None = None) -> dict[str, Any]:
    record = m.record or {}
    row: dict[str, Any] = {
        "run_id": ctx.run_id, "kind": ctx.kind, "env": ctx.env, "phase": phase,
        "users": users, "seq": seq, "size_label": label, "lines": m.lines, "bytes": m.bytes,
        "key": m.key, "job_id": m.job_id, "outcome": m.outcome, "reason": m.reason,
        "start_epoch": f"{m.start_epoch:.6f}", "upload_ms": f"{m.upload_ms:.3f}",
        "e2e_ms": f"{m.e2e_ms:.3f}", "polls": m.polls,
        "record_bytes": "" if record_bytes is None else record_bytes,
    }
    for column in _RECORD_COLUMNS:
        value = record.get(column)
        row[column] = "" if value is None else value
    return row


class SampleWriter:
    """Appends rows to a CSV file, flushing each so a crashed run keeps its data.

    The file is created with its header on the first row, so a run that never measures
    anything leaves no file behind.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: TextIO | None = None
        self._writer: csv.DictWriter[str] | None = None
        self._lock = threading.Lock()

    def _open(self) -> csv.DictWriter[str]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.exists() or self.path.stat().st_size == 0
        self._file = self.path.open("a", newline="")
        writer = csv.DictWriter(self._file, fieldnames=FIELDS)
        if new:
            writer.writeheader()
        return writer

    def write(self, row: dict[str, Any]) -> None:
        with self._lock:
            if self._writer is None:
                self._writer = self._open()
            self._writer.writerow(row)
            assert self._file is not None
            self._file.flush()

    @property
    def rows_written(self) -> bool:
        return self._writer is not None

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
            self._file = None
            self._writer = None

    def __enter__(self) -> SampleWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
