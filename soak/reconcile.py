"""Compare what a soak uploaded with what the pipeline recorded.

Rules, per object version (key and ETag) the soak created:

- lost: no record, although the version is under `logs/`.
- duplicated: more than one record for the version, or a completed record written over
  (a `job_done` log line after one with status completed, for the same job).
- wrong: a `completed` record whose content differs from `chalicelib.core.reference` on the
  same bytes; a `failed` record whose code is not one the version may fail with (a
  deleted object: `not_found`; an overwritten one: `changed`; a hostile file: a resource
  code); any record for a key outside `logs/`; a record for no version at all.
- stuck: a record still `queued` or `processing` once the queues are empty, unless its
  message is in the dead-letter queue (then it is counted there).

A job whose every attempt failed ends `failed` with `retries_exhausted` and its message in
the dead-letter queue: that is the pipeline's promise kept, so it is counted (as
"retries exhausted") and not as wrong. The dead-letter queue is expected to hold exactly
the messages sent that are not jobs; any job found there is listed beside them.

Streamed events: the records of the objects under `logs/stream/` must count, in their
`line_count`, exactly the lines put into the ingest stream (every object completed): fewer
is lines lost, more is lines doubled.

Rollups: for every hour and source, the stats table's hour items must equal what the final
records add up to, by the rules of docs/spec.md "Rollups" applied here to the records
themselves: files received, completed, failed and malformed lines on the upload hour; valid
records, levels and status codes on each event hour of a completed record's `event_hours`;
out-of-range records on the upload hour.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from chalicelib.core.eventtime import decode, hour_of_iso, hour_text
from chalicelib.core.jobs import Source, source_of
from chalicelib.core.records import MAX_LINE_BYTES
from chalicelib.core.reference import summarize_bytes
from chalicelib.core.results import RETRIES_EXHAUSTED, upload_time
from chalicelib.core.rollup import DAY, HOURS, SOURCES, RollupItem, stats_by_hour
from chalicelib.core.schema import FINAL_STATUSES, STATISTICS_FIELDS
from soak.drive import Version
from soak.workload import FileSpec

TERMINAL = tuple(FINAL_STATUSES)
CONTENT_FIELDS = STATISTICS_FIELDS


@dataclass
class Report:
    files: int = 0
    versions: int = 0
    records: int = 0
    completed: int = 0
    failed: int = 0
    lost: int = 0
    duplicated: int = 0
    wrong: int = 0
    stuck: int = 0
    dlq_expected: int = 0
    dlq_found: int = 0
    dlq_jobs: int = 0
    exhausted: int = 0
    trigger_failed_events: int = 0
    peak_worker_rss_mb: int = 0
    stream_lines_put: int = 0
    stream_lines_unsent: int = 0
    stream_objects: int = 0
    stream_lines_recorded: int = 0
    stream_lost: int = 0
    stream_doubled: int = 0
    rollup_hours: int = 0
    rollup_differences: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.wrong or self.stuck
                    or self.stream_lost or self.stream_doubled or self.rollup_differences)

    def problem(self, kind: str, text: str) -> None:
        setattr(self, kind, getattr(self, kind) + 1)
        self.problems.append(f"{kind}: {text}")


def expected_statistics(spec: FileSpec) -> dict[str, Any]:
    """What chalicelib.core.reference computes for the spec's bytes. A gzip bomb (gigabytes of
    zeros, no newline) is one over-long line, the same as its first MiB and one byte."""
    if spec.kind == "gzip_bomb":
        return summarize_bytes(b"\0" * (MAX_LINE_BYTES + 1))
    return summarize_bytes(spec.content(), gzip_hint=spec.gzip)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None or isinstance(a, str) or isinstance(b, str):
            return a == b
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-3)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def differences(record: Mapping[str, Any], expected: Mapping[str, Any]) -> list[str]:
    return [name for name in CONTENT_FIELDS
            if name in expected and not _same(record.get(name), expected[name])]


def final_writes(log_lines: Iterable[str]) -> dict[str, list[str]]:
    """The statuses of every final record written, per job id, in log order (the worker
    logs `job_done` once its final write succeeded)."""
    writes: dict[str, list[str]] = {}
    for line in log_lines:
        if '"job_done"' not in line:
            continue
        try:
            event = json.loads(line[line.find("{"):])
        except ValueError:
            continue
        if event.get("event") == "job_done":
            writes.setdefault(str(event.get("job_id")), []).append(str(event.get("status")))
    return writes


def overwritten_after_completion(statuses: list[str]) -> bool:
    """A failed record may be replaced (the same bytes uploaded again, a redrive); a
    completed one never."""
    return "completed" in statuses[:-1]


def dlq_job_ids(bodies: Iterable[str]) -> tuple[set[str], int]:
    """Job ids of the job messages in the dead-letter queue, and how many are not jobs."""
    ids: set[str] = set()
    other = 0
    for body in bodies:
        try:
            job_id = json.loads(body).get("job_id")
        except (ValueError, AttributeError):
            job_id = None
        if isinstance(job_id, str):
            ids.add(job_id)
        else:
            other += 1
    return ids, other


def reconcile(versions: list[Version], records: list[dict[str, Any]], *,
              uploads: int, garbage_sent: int, dlq_bodies: list[str],
              final_writes: Mapping[str, list[str]],
              expected: Callable[[FileSpec], dict[str, Any]] = expected_statistics,
              ) -> Report:
    report = Report(files=uploads, versions=len({v.ident for v in versions}),
                    records=len(records), dlq_expected=garbage_sent, dlq_found=len(dlq_bodies))
    dlq_ids, _ = dlq_job_ids(dlq_bodies)
    report.dlq_jobs = len(dlq_ids)
    by_version: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for record in records:
        report.completed += record.get("status") == "completed"
        report.failed += record.get("status") == "failed"
        ident = (record.get("key", ""), record.get("version_id") or record.get("etag") or "")
        by_version.setdefault(ident, []).append(record)
    seen: set[tuple[str, str]] = set()
    for version in versions:
        ident = version.ident
        if ident in seen:
            continue
        seen.add(ident)
        found = by_version.pop(ident, [])
        label = f"{version.key!r} ({version.action}, etag {version.etag})"
        if not version.record:
            if found:
                report.problem("wrong", f"{label}: a record exists for a key outside logs/")
            continue
        if not found:
            report.problem("lost", f"{label}: no record")
            continue
        if len(found) > 1:
            report.problem("duplicated", f"{label}: {len(found)} records")
            continue
        _check(report, version, found[0], dlq_ids, final_writes, expected, label)
    for (key, version), extra in by_version.items():
        if is_streamed(key):
            continue  # the ingest handler's objects: reconcile_stream
        report.problem("wrong", f"{key!r} ({version}): {len(extra)} record(s) for an "
                       "object version the soak did not create")
    return report


def _check(report: Report, version: Version, record: dict[str, Any], dlq_ids: set[str],
           final_writes: Mapping[str, list[str]],
           expected: Callable[[FileSpec], dict[str, Any]],
           label: str) -> None:
    status = record.get("status")
    job_id = str(record.get("job_id"))
    if status not in TERMINAL:
        if job_id not in dlq_ids:
            report.problem("stuck", f"{label}: {status} (last_error "
                           f"{record.get('last_error')!r:.200})")
        return
    writes = final_writes.get(job_id, [])
    if overwritten_after_completion(writes):
        report.problem("duplicated", f"{label}: final records written: {', '.join(writes)}")
        return
    if status == "failed":
        reason = str(record.get("failure_reason") or "")
        code = reason.partition(":")[0]
        if code == RETRIES_EXHAUSTED and job_id in dlq_ids:
            report.exhausted += 1
            return
        if code not in version.allowed_failures:
            report.problem("wrong", f"{label}: failed with {reason[:200]!r}")
        return
    diff = differences(record, expected(version.spec))
    if diff:
        report.problem("wrong", f"{label}: completed, but {', '.join(diff)} differ from the "
                       "reference")


# ---- streamed events -------------------------------------------------------------------

def is_streamed(key: str) -> bool:
    return source_of(key) is Source.STREAM


def stream_lines_recorded(records: Iterable[Mapping[str, Any]]) -> tuple[int, int]:
    """Lines counted by the completed records of streamed objects, and how many records of
    streamed objects are not completed (yet)."""
    lines = pending = 0
    for record in records:
        if not is_streamed(str(record.get("key", ""))):
            continue
        if record.get("status") == "completed":
            lines += int(record.get("line_count") or 0)
        else:
            pending += 1
    return lines, pending


def reconcile_stream(report: Report, records: Iterable[Mapping[str, Any]], *,
                     lines_put: int, lines_unsent: int = 0) -> None:
    """The lines put into the ingest stream against the lines of the streamed objects'
    records: every object completed, the lines counted exactly once."""
    streamed = [r for r in records if is_streamed(str(r.get("key", "")))]
    report.stream_lines_put, report.stream_lines_unsent = lines_put, lines_unsent
    report.stream_objects = len({r.get("key") for r in streamed})
    recorded, _ = stream_lines_recorded(streamed)
    report.stream_lines_recorded = recorded
    for record in streamed:
        if record.get("status") != "completed":
            report.problems.append(
                f"stream_lost: {record.get('key')!r} is {record.get('status')}, its lines "
                f"are not counted ({str(record.get('failure_reason') or '')[:200]!r})")
    report.stream_lost = max(0, lines_put - recorded)
    report.stream_doubled = max(0, recorded - lines_put)
    if report.stream_lost or report.stream_doubled:
        report.problems.append(f"stream: {lines_put:,} lines put, {recorded:,} counted by "
                               f"the records of {report.stream_objects:,} objects")


# ---- rollups ----------------------------------------------------------------------------

HourKey = tuple[str, str]  # (YYYY-MM-DDTHH, source)
Figures = dict[HourKey, Counter[str]]


def expected_rollups(records: Iterable[Mapping[str, Any]]) -> Figures:
    """The hour figures the final records add up to (module docstring)."""
    figures: Figures = {}

    def at(hour: str, source: str) -> Counter[str]:
        return figures.setdefault((hour, source), Counter())

    for record in records:
        if not record.get("created_at"):
            continue
        source = str(record.get("source") or source_of(str(record.get("key", ""))).value)
        files = at(hour_text(hour_of_iso(upload_time(record))), source)  # type: ignore[arg-type]
        files["received"] += 1
        status = record.get("status")
        if status not in ("completed", "failed"):
            continue
        files[str(status)] += 1
        files["malformed"] += int(record.get("malformed_count") or 0)
        if status != "completed" or not record.get("event_hours"):
            continue
        event_hours = decode(bytes(record["event_hours"]))
        files["out_of_range"] += event_hours.out_of_range
        for hour in event_hours.hours:
            counts = at(hour.hour, source)
            counts["records"] += hour.records
            for level, n in hour.levels.items():
                counts[f"level {level}"] += n
            for code, n in hour.status_codes.items():
                counts[f"status {code}"] += n
    return {key: +counts for key, counts in figures.items()}


def rollup_figures(items: Iterable[RollupItem]) -> Figures:
    """The figures of the stats table's day items, read as GET /stats reads them."""
    items = [(target, document) for target, document in items if target.kind == HOURS]
    hours = sorted({f"{target.day}T{hh}" for target, document in items for hh in document
                    if hh != DAY})
    figures: Figures = {}
    for source in SOURCES:
        for hour, read in stats_by_hour(items, hours, source).items():
            counts: Counter[str] = Counter(
                received=read.received, completed=read.completed, failed=read.failed,
                malformed=read.malformed, out_of_range=read.out_of_range,
                records=read.records)
            counts.update({f"level {k}": v for k, v in read.levels.items()})
            counts.update({f"status {k}": v for k, v in read.status_codes.items()})
            if +counts:
                figures[(hour, source)] = +counts
    return figures


def rollup_differences(expected: Figures, found: Figures) -> list[str]:
    """Every figure that differs, as `hour source: name: rollups N, records M`."""
    out = []
    for key in sorted(expected.keys() | found.keys()):
        want, have = expected.get(key, Counter()), found.get(key, Counter())
        for name in sorted(want.keys() | have.keys()):
            if want[name] != have[name]:
                out.append(f"{key[0]} {key[1]}: {name}: rollups {have[name]}, "
                           f"records {want[name]}")
    return out


def gap(expected: Figures, found: Figures) -> int:
    """The sum of every figure's absolute difference: 0 when the rollups equal `expected`."""
    return sum(abs(expected.get(key, Counter())[name] - found.get(key, Counter())[name])
               for key in expected.keys() | found.keys()
               for name in expected.get(key, Counter()).keys() | found.get(key, Counter()).keys())


def settle_rollups(expected: Figures, read: Callable[[], Figures], *, stall: float,
                   timeout: float, pause: float = 3.0,
                   sleep: Callable[[float], None] = time.sleep,
                   clock: Callable[[], float] = time.monotonic) -> list[str]:
    """Read the rollups until they equal `expected` (the rollups handler runs after the
    records are final, and under faults it catches up slowly), until they came no closer
    for `stall` seconds, or until `timeout` seconds passed; the differences of the last
    read."""
    started = clock()
    closest, closer_at = None, started
    while True:
        found = read()
        now = clock()
        distance = gap(expected, found)
        if closest is None or distance < closest:
            closest, closer_at = distance, now
        if not distance or now - closer_at >= stall or now - started >= timeout:
            return rollup_differences(expected, found)
        sleep(pause)


def reconcile_rollups(report: Report, expected: Figures, differences_found: list[str]) -> None:
    report.rollup_hours = len({hour for hour, _ in expected})
    report.rollup_differences = len(differences_found)
    report.problems += [f"rollups: {text}" for text in differences_found]


def table(report: Report, *, title: str) -> str:
    rows: list[tuple[str, str]] = [
        ("files uploaded (PUTs)", f"{report.files:,}"),
        ("object versions", f"{report.versions:,}"),
        ("records (completed / failed)",
         f"{report.records:,} ({report.completed:,} / {report.failed:,})"),
    ]
    rows += [(f"faults injected: {kind}", f"{count:,}")
             for kind, count in sorted(report.faults.items())]
    rows += [
        ("lost", str(report.lost)),
        ("duplicated", str(report.duplicated)),
        ("wrong", str(report.wrong)),
        ("stuck", str(report.stuck)),
        ("DLQ expected / found", f"{report.dlq_expected} / {report.dlq_found}"
         + (f" ({report.dlq_jobs} job(s))" if report.dlq_jobs else "")),
        ("jobs failed with retries_exhausted (in the DLQ)", str(report.exhausted)),
        ("stream: lines put (refused by Kinesis)",
         f"{report.stream_lines_put:,} ({report.stream_lines_unsent:,})"),
        ("stream: lines in records (objects)",
         f"{report.stream_lines_recorded:,} ({report.stream_objects:,})"),
        ("stream: lines lost", str(report.stream_lost)),
        ("stream: lines doubled", str(report.stream_doubled)),
        ("rollups: hours with figures", str(report.rollup_hours)),
        ("rollups: figures differing from the records", str(report.rollup_differences)),
        ("S3 events that failed every trigger attempt", str(report.trigger_failed_events)),
        ("peak worker RSS", f"{report.peak_worker_rss_mb} MB"),
    ]
    width = max(len(name) for name, _ in rows)
    value_width = max(len(value) for _, value in rows)
    lines = [title, "", f"| {'measure':<{width}} | {'value':>{value_width}} |",
             f"|{'-' * (width + 2)}|{'-' * (value_width + 1)}:|"]
    lines += [f"| {name:<{width}} | {value:>{value_width}} |" for name, value in rows]
    return "\n".join(lines)
