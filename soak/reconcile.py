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
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from chalicelib.core.records import MAX_LINE_BYTES
from chalicelib.core.reference import summarize_bytes
from chalicelib.core.results import RETRIES_EXHAUSTED
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
    faults: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.wrong or self.stuck)

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
        ("S3 events that failed every trigger attempt", str(report.trigger_failed_events)),
        ("peak worker RSS", f"{report.peak_worker_rss_mb} MB"),
    ]
    width = max(len(name) for name, _ in rows)
    value_width = max(len(value) for _, value in rows)
    lines = [title, "", f"| {'measure':<{width}} | {'value':>{value_width}} |",
             f"|{'-' * (width + 2)}|{'-' * (value_width + 1)}:|"]
    lines += [f"| {name:<{width}} | {value:>{value_width}} |" for name, value in rows]
    return "\n".join(lines)
