"""The soak's workload (repeatable, every action and hostile kind) and its reconciliation
rules (lost, duplicated, wrong, stuck, the dead-letter queue)."""

from __future__ import annotations

import dataclasses
import gzip

from soak.drive import Version
from soak.reconcile import final_writes, reconcile, table
from soak.workload import SMALL, FileSpec, Step, hostile_steps, plan

SPEC = FileSpec("regular", 1, 3000)
STATS = {"line_count": 20, "malformed_count": 0, "unique_users": 3}


def version(key: str = "logs/a.ndjson", etag: str = "e1", *, action: str = "upload",
            allowed: frozenset[str] = frozenset(), record: bool = True) -> Version:
    return Version(key, etag, SPEC, action, allowed, record)


def record(key: str = "logs/a.ndjson", etag: str = "e1", status: str = "completed",
           job_id: str = "j1", **fields) -> dict:
    return {"job_id": job_id, "key": key, "etag": etag, "status": status, **STATS, **fields}


def run(versions: list[Version], records: list[dict], dlq: list[str] | None = None,
        writes: dict | None = None, garbage: int = 0):
    return reconcile(versions, records, uploads=len(versions), garbage_sent=garbage,
                     dlq_bodies=dlq or [], final_writes=writes or {},
                     expected=lambda spec: STATS)


def test_the_same_seed_gives_the_same_plan_and_bytes() -> None:
    first, again = plan(300, 4, SMALL), plan(300, 4, SMALL)
    assert first.steps == again.steps
    assert [s.spec.content() for s in first.steps[:30] if s.spec] == \
        [s.spec.content() for s in again.steps[:30] if s.spec]
    assert plan(300, 5, SMALL).steps != first.steps


def test_a_plan_holds_every_action_and_the_messages_meant_for_the_dlq() -> None:
    steps = plan(600, 2, SMALL)
    for action in ("upload", "duplicate", "overwrite", "delete", "reupload", "garbage"):
        assert steps.count(action) > 0, action
    assert any(not s.record for s in steps.steps)
    assert any(s.key.endswith(".csv") for s in steps.steps)


def test_hostile_files_are_what_they_claim() -> None:
    specs = {step.key: step.spec for step in hostile_steps(SMALL, 1)}
    bomb = specs["logs/hostile/bomb.ndjson.gz"].content()
    assert len(gzip.decompress(bomb)) == SMALL.bomb and len(bomb) < SMALL.bomb // 100
    assert specs["logs/hostile/empty.ndjson"].content() == b""
    crlf = gzip.decompress(specs["logs/hostile/crlf-bom.ndjson.gz"].content())
    assert crlf.startswith(b"\xef\xbb\xbf") and b"\r\n" in crlf
    assert max(map(len, specs["logs/hostile/long-line.ndjson"].content().split(b"\n"))) \
        == SMALL.long_line
    assert b"\xed\xa0\x80" in specs["logs/hostile/invalid-utf8.ndjson"].content()


def test_a_clean_run_has_nothing_to_report() -> None:
    report = run([version(), version("logs/b.ndjson", "e2", allowed=frozenset({"not_found"})),
                  version("incoming/c.ndjson", "e3", record=False)],
                 [record(), record("logs/b.ndjson", "e2", "failed", "j2",
                                   failure_reason="not_found: gone")])
    assert report.ok and report.problems == [] and report.versions == 3
    assert (report.completed, report.failed) == (1, 1)


def test_each_kind_of_problem_is_counted() -> None:
    versions = [version("logs/lost.ndjson", "e0"), version("logs/wrong.ndjson", "e1"),
                version("logs/bad-failure.ndjson", "e2"), version("logs/stuck.ndjson", "e3"),
                version("incoming/x.ndjson", "e4", record=False),
                version("logs/twice.ndjson", "e5")]
    records = [record("logs/wrong.ndjson", "e1", job_id="j1", unique_users=4),
               record("logs/bad-failure.ndjson", "e2", "failed", "j2",
                      failure_reason="too_large: no"),
               record("logs/stuck.ndjson", "e3", "processing", "j3"),
               record("incoming/x.ndjson", "e4", job_id="j4"),
               record("logs/twice.ndjson", "e5", job_id="j5"),
               record("logs/nobody.ndjson", "e9", job_id="j9")]
    report = run(versions, records, writes={"j5": ["completed", "completed"]})
    assert (report.lost, report.duplicated, report.wrong, report.stuck) == (1, 1, 4, 1)
    assert not report.ok
    text = "\n".join(report.problems)
    assert "unique_users differ" in text and "too_large: no" in text
    assert "outside logs/" in text and "did not create" in text


def test_a_job_in_the_dlq_is_not_stuck_and_retries_exhausted_is_not_wrong() -> None:
    body = '{"job_id": "j1", "key": "logs/a.ndjson"}'
    report = run([version(), version("logs/b.ndjson", "e2")],
                 [record(status="queued"),
                  record("logs/b.ndjson", "e2", "failed", "j2",
                         failure_reason="retries_exhausted: 5 attempts failed")],
                 dlq=[body, '{"job_id": "j2"}', "not a job"], garbage=1)
    assert report.ok and report.exhausted == 1
    assert (report.dlq_expected, report.dlq_found, report.dlq_jobs) == (1, 3, 2)


def test_a_failed_record_may_be_replaced_a_completed_one_never() -> None:
    lines = ['{"event": "job_done", "job_id": "a", "status": "failed"}',
             'x {"event": "job_done", "job_id": "a", "status": "completed"}',
             '{"event": "job_done", "job_id": "b", "status": "completed"}',
             '{"event": "job_done", "job_id": "b", "status": "failed"}']
    writes = final_writes(lines)
    assert writes == {"a": ["failed", "completed"], "b": ["completed", "failed"]}
    assert run([version()], [record(job_id="a")], writes=writes).ok
    assert run([version()], [record(job_id="b")], writes=writes).duplicated == 1


def test_the_table_has_one_row_per_measure() -> None:
    report = run([version()], [record()])
    report.faults = {"kill": 3, "ddb_500": 7}
    text = table(report, title="soak")
    for row in ("| lost", "| duplicated", "| wrong", "| stuck", "| DLQ expected / found",
                "| faults injected: kill", "| peak worker RSS"):
        assert row in text
    assert text.count("\n|") == len(text.splitlines()) - 2


def test_a_step_names_the_spec_it_uploads() -> None:
    step = Step("upload", "logs/a.ndjson", FileSpec("regular", 3, 1500))
    assert step.spec is not None and step.spec.content().count(b"\n") == 10


def test_in_a_versioned_bucket_the_same_bytes_twice_are_two_versions_each_with_a_record() -> None:
    versions = [dataclasses.replace(version(action="duplicate"), version_id=v) for v in "ab"]
    report = run(versions, [record(job_id="j1", version_id="a"),
                            record(job_id="j2", version_id="b")])
    assert (report.versions, report.duplicated, report.lost, report.wrong) == (2, 0, 0, 0)
    lost = run(versions, [record(job_id="j1", version_id="a")])
    assert lost.lost == 1
