"""Read a run: the raw files the load runners write, or the compact file kept in git.

Raw (in `results/raw/`, not in git): `<run>.csv` (one row per uploaded file), its
`<run>.host.json` sidecar and `<run>.runtime.log`. Compact (in `results/`, in git):
`<run>.json.gz`, one gzip JSON document holding only what the report reads: the host
sidecar, the samples by column, and the handler invocations from the runtime log.
"""

from __future__ import annotations

import csv
import gzip
import json
import re
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Any

RUN_FILE = re.compile(
    r"^(?P<kind>protocol|load|sweep)-(?P<env>[a-z0-9_]+)-(?P<stamp>\d{8}T\d{6}Z)$")
RAW_SUFFIX = ".csv"
COMPACT_SUFFIX = ".json.gz"
COMPACT_FORMAT = "log-pipeline-run/1"
# The report lists this many of the newest load runs of an environment; older ones go.
LOAD_HISTORY_RUNS = 8


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

    @property
    def name(self) -> str:
        """`<kind>-<env>-<stamp>`, the same for the raw and the compact file of a run."""
        return f"{self.kind}-{self.env}-{self.stamp}"


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


def run_name(path: Path) -> str | None:
    """The run a raw CSV or compact file belongs to, or None for any other file."""
    for suffix in (COMPACT_SUFFIX, RAW_SUFFIX):
        if path.name.endswith(suffix):
            name = path.name[:-len(suffix)]
            return name if RUN_FILE.match(name) else None
    return None


def _match(path: Path) -> re.Match[str]:
    name = run_name(path)
    match = RUN_FILE.match(name) if name else None
    if not match:
        raise DatasetError(f"{path.name}: expected <protocol|load|sweep>-<env>-<stamp>.csv "
                           f"or .json.gz")
    return match


def read_run(path: Path) -> Run:
    """A run from its raw CSV (with the sidecars beside it) or from its compact file."""
    if path.name.endswith(COMPACT_SUFFIX):
        return read_compact(path)
    match = _match(path)
    sidecar = host_path(path)
    host = json.loads(sidecar.read_text()) if sidecar.exists() else {}
    log = runtime_log_path(path)
    invocations = tuple(read_invocations(log)) if log.exists() else ()
    return Run(path=path, kind=match["kind"], env=match["env"], stamp=match["stamp"],
               samples=tuple(read_samples(path)), host=host, invocations=invocations)


# Sample fields a compact file stores; run_id, kind and env come from its name.
_COMPACT_SAMPLE_FIELDS = tuple(f.name for f in fields(Sample)
                               if f.name not in ("run_id", "kind", "env"))
_COMPACT_INVOCATION_FIELDS = tuple(f.name for f in fields(Invocation))
# Timestamps in the record have millisecond precision; rounding drops float noise only.
_EPOCH_FIELDS = ("uploaded_at", "created_at", "started_at", "completed_at")


def _columns(rows: list[dict[str, Any]], names: tuple[str, ...]) -> dict[str, list[Any]]:
    return {name: [row[name] for row in rows] for name in names}


def write_compact(run: Run, directory: Path) -> Path:
    """Write `run` as `<directory>/<run>.json.gz` and return that path."""
    samples = [asdict(s) for s in run.samples]
    for row in samples:
        for name in _EPOCH_FIELDS:
            if row[name] is not None:
                row[name] = round(row[name], 3)
    document = {
        "format": COMPACT_FORMAT, "run": run.name, "host": run.host,
        "samples": _columns(samples, _COMPACT_SAMPLE_FIELDS),
        "invocations": _columns([asdict(i) for i in run.invocations],
                                _COMPACT_INVOCATION_FIELDS),
    }
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{run.name}{COMPACT_SUFFIX}"
    data = json.dumps(document, separators=(",", ":"), sort_keys=True).encode()
    path.write_bytes(gzip.compress(data, compresslevel=9, mtime=0))
    return path


def _rows(columns: dict[str, list[Any]], names: tuple[str, ...]) -> list[dict[str, Any]]:
    missing = [name for name in names if name not in columns]
    if missing:
        raise DatasetError(f"missing columns {', '.join(missing)}")
    lengths = {len(columns[name]) for name in names}
    if len(lengths) > 1:
        raise DatasetError("columns of different lengths")
    count = lengths.pop() if lengths else 0
    return [{name: columns[name][i] for name in names} for i in range(count)]


def read_compact(path: Path) -> Run:
    match = _match(path)
    try:
        document = json.loads(gzip.decompress(path.read_bytes()))
        if not isinstance(document, dict) or document.get("format") != COMPACT_FORMAT:
            raise DatasetError(f"not a {COMPACT_FORMAT} document")
        base = {"run_id": match.string, "kind": match["kind"], "env": match["env"]}
        samples = tuple(Sample(**base, **row) for row in
                        _rows(document["samples"], _COMPACT_SAMPLE_FIELDS))
        invocations = tuple(Invocation(**row) for row in
                            _rows(document["invocations"], _COMPACT_INVOCATION_FIELDS))
        host = document["host"]
    except (OSError, EOFError, ValueError, TypeError, KeyError) as exc:
        raise DatasetError(f"{path}: {exc}") from exc
    return Run(path=path, kind=match["kind"], env=match["env"], stamp=match["stamp"],
               samples=samples, host=host, invocations=invocations)


def run_files(directory: Path) -> dict[str, Path]:
    """Every non-empty run in `directory` by name; a compact file wins over a raw CSV."""
    found: dict[str, Path] = {}
    for path in sorted(directory.glob(f"*{RAW_SUFFIX}")):
        name = run_name(path)
        if name and _has_rows(path):
            found[name] = path
    for path in sorted(directory.glob(f"*{COMPACT_SUFFIX}")):
        name = run_name(path)
        if name:
            found[name] = path
    return found


def all_runs(*directories: Path) -> list[Run]:
    """Every non-empty run in these directories, oldest first; a run found in more than one
    (kept in results/ and still raw in results/raw/) is read from the first."""
    found: dict[str, Path] = {}
    for directory in reversed(directories):
        if directory.is_dir():
            found.update(run_files(directory))
    return [read_run(found[name]) for name in sorted(found, key=_stamp)]


def _stamp(name: str) -> str:
    return name[-16:]


def latest_runs(directory: Path) -> dict[tuple[str, str], Run]:
    """The newest non-empty run of each (kind, env) in `directory`."""
    newest: dict[tuple[str, str], tuple[str, Path]] = {}
    for name, path in run_files(directory).items():
        match = _match(path)
        key = (match["kind"], match["env"])
        if key not in newest or _stamp(name) > _stamp(newest[key][0]):
            newest[key] = (name, path)
    return {key: read_run(path) for key, (_, path) in sorted(newest.items())}


def runs_of(directory: Path, kind: str, env: str) -> list[Run]:
    """Every non-empty run of one kind and environment in `directory`, oldest first."""
    chosen = [(name, path) for name, path in run_files(directory).items()
              if (match := _match(path)) and (match["kind"], match["env"]) == (kind, env)]
    return [read_run(path) for _, path in sorted(chosen, key=lambda item: _stamp(item[0]))]


def _has_rows(path: Path) -> bool:
    with path.open() as f:
        return sum(1 for _ in zip(f, range(2), strict=False)) > 1
