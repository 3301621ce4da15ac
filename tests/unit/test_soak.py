"""The soak's workload (repeatable, every action and hostile kind) and its reconciliation
rules (lost, duplicated, wrong, stuck, the dead-letter queue)."""

from __future__ import annotations

import copy
import dataclasses
import gzip

from chalicelib.core.eventtime import EventHours, HourPartial, encode
from chalicelib.core.rollup import Target
from soak.drive import Version
from soak.reconcile import (
    expected_rollups,
    final_writes,
    gap,
    reconcile,
    reconcile_rollups,
    reconcile_stream,
    rollup_differences,
    rollup_figures,
    settle_rollups,
    stream_lines_recorded,
    table,
)
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


# ---- streamed events and rollups -----------------------------------------------------------

def streamed(name: str, status: str = "completed", lines: int = 10, **fields) -> dict:
    return record(f"logs/stream/2026/12/06/09/shard-{name}.ndjson.gz", name, status,
                  f"s-{name}", line_count=lines, **fields)


def test_a_plan_spreads_batches_of_streamed_events_over_the_run() -> None:
    steps = plan(300, 3, SMALL).steps
    batches = [i for i, s in enumerate(steps) if s.action == "stream"]
    assert len(batches) == 6 and batches[-1] - batches[0] > len(steps) // 3
    assert all(steps[i].spec.content().count(b"\n") > 100 for i in batches)


def test_streamed_objects_are_not_versions_the_soak_created_but_their_lines_are_counted() -> None:
    records = [record(), streamed("a", lines=40), streamed("b", lines=60)]
    report = run([version()], records)
    reconcile_stream(report, records, lines_put=100)
    assert report.ok and report.problems == []
    assert (report.stream_objects, report.stream_lines_recorded) == (2, 100)


def test_streamed_lines_lost_doubled_or_in_a_failed_object_fail_the_run() -> None:
    lost = run([], [])
    reconcile_stream(lost, [streamed("a", lines=40)], lines_put=100)
    assert (lost.stream_lost, lost.stream_doubled, lost.ok) == (60, 0, False)
    doubled = run([], [])
    reconcile_stream(doubled, [streamed("a", lines=60), streamed("b", lines=60)], lines_put=60)
    assert (doubled.stream_lost, doubled.stream_doubled, doubled.ok) == (0, 60, False)
    failed = run([], [])
    reconcile_stream(failed, [streamed("a", lines=60), streamed("b", "failed", lines=0,
                                                                failure_reason="x: y")],
                     lines_put=60)
    assert failed.ok is True and any("is failed" in p for p in failed.problems)
    pending = stream_lines_recorded([streamed("a", lines=5), streamed("b", "processing")])
    assert pending == (5, 1)


def hours_blob(*hours: tuple[str, int, dict, dict], out_of_range: int = 0) -> bytes:
    return encode(EventHours(hours=[
        HourPartial(hour=h, records=n, levels=levels, status_codes=codes, rt_sum=0.0, bins={},
                    endpoints=[]) for h, n, levels, codes in hours], out_of_range=out_of_range))


FINAL = [
    record(created_at="2026-12-06T09:10:00Z", uploaded_at="2026-12-06T09:05:00Z",
           malformed_count=2, source="upload",
           event_hours=hours_blob(("2026-12-06T08", 3, {"info": 2, "error": 1},
                                   {"200": 2, "500": 1}),
                                  ("2026-12-06T09", 1, {"warn": 1}, {"404": 1}),
                                  out_of_range=4)),
    record("logs/b.ndjson", "e2", "failed", "j2", created_at="2026-12-06T10:00:00Z",
           malformed_count=1),
    record("logs/c.ndjson", "e3", "queued", "j3", created_at="2026-12-06T10:30:00Z"),
    streamed("s", created_at="2026-12-06T09:59:00Z", malformed_count=0,
             event_hours=hours_blob(("2026-12-06T09", 5, {"info": 5}, {"200": 5}))),
]


def day_item(source: str, **hours: dict) -> tuple[Target, dict]:
    return Target("hours#2026-12", f"06#{source}"), hours


ROLLUPS = [
    day_item("upload",
             **{"08": {"records": 3, "levels": {"info": 2, "error": 1},
                       "codes": {"200": 2, "500": 1}, "rt_sum": 30, "bins": [0, 100, [3]]},
                "09": {"files_received": 1, "files_completed": 1, "malformed": 2,
                       "out_of_range": 4, "records": 1, "levels": {"warn": 1},
                       "codes": {"404": 1}},
                "10": {"files_received": 2, "files_failed": 1, "malformed": 1}}),
    day_item("stream", **{"09": {"files_received": 1, "files_completed": 1, "records": 5,
                                 "levels": {"info": 5}, "codes": {"200": 5}}}),
]


def test_the_rollups_of_the_final_records_match_figure_by_figure() -> None:
    expected = expected_rollups(FINAL)
    assert expected[("2026-12-06T10", "upload")] == {"received": 2, "failed": 1, "malformed": 1}
    assert expected[("2026-12-06T08", "upload")]["status 500"] == 1
    assert rollup_differences(expected, rollup_figures(ROLLUPS)) == []
    report = run([], [])
    reconcile_rollups(report, expected, [])
    assert report.ok and report.rollup_hours == 3


def test_every_differing_figure_is_named_and_fails_the_run() -> None:
    off = copy.deepcopy(ROLLUPS)
    off[0][1]["08"]["levels"]["error"] = 2  # a record counted twice
    del off[1][1]["09"]["files_received"]  # a file missed
    off[0][1]["11"] = {"files_received": 1}  # a phantom
    found = rollup_differences(expected_rollups(FINAL), rollup_figures(off))
    assert found == ["2026-12-06T08 upload: level error: rollups 2, records 1",
                     "2026-12-06T09 stream: received: rollups 0, records 1",
                     "2026-12-06T11 upload: received: rollups 1, records 0"]
    report = run([], [])
    reconcile_rollups(report, expected_rollups(FINAL), found)
    assert report.rollup_differences == 3 and not report.ok


def test_the_rollups_are_read_again_while_they_come_closer_within_the_time_given() -> None:
    expected = expected_rollups(FINAL)
    partial = rollup_figures(ROLLUPS[:1])
    reads = iter([{}, partial, partial, partial, rollup_figures(ROLLUPS)])
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    def settle(read, stall: float = 10, timeout: float = 60) -> list[str]:
        return settle_rollups(expected, read, stall=stall, timeout=timeout, sleep=sleep,
                              clock=lambda: now[0])

    assert settle(lambda: next(reads)) == [] and now[0] == 12.0
    now[0] = 0.0
    stalled = settle(lambda: partial)
    assert stalled == rollup_differences(expected, partial) and now[0] == 12.0
    now[0] = 0.0
    upload = ROLLUPS[0][0]
    steps = ([], [(upload, {"08": ROLLUPS[0][1]["08"]})],
             [(upload, {h: ROLLUPS[0][1][h] for h in ("08", "09")})], ROLLUPS[:1])
    closer = iter(rollup_figures(step) for step in steps for _ in range(3))
    assert len(settle(lambda: next(closer), stall=10, timeout=20)) > 0 and now[0] == 21.0
    assert gap(expected, rollup_figures(ROLLUPS)) == 0 < gap(expected, partial)
