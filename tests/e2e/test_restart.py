"""Stop a runtime mid-run with Ctrl-C, start it again on its state: nothing is lost.

RESTART_FILES (default 100) sets how many small files are uploaded; `make test-restart
FILES=1000` runs it with 1,000.
"""

from __future__ import annotations

import gzip
import os
import re
import signal
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from chalicelib.core.jobs import job_id_for
from chalicelib.core.schema import FINAL_STATUSES
from localruntime.background import free_port
from localruntime.endpoint.state import SNAPSHOT_NAME
from logctl.generate import generate_lines
from tests.e2e.conftest import Runtime, get_record, running, wait_until
from tests.e2e.test_lifecycle import run_cli

pytestmark = pytest.mark.e2e

SMALL_FILES = int(os.environ.get("RESTART_FILES", "100"))
SLOW_FILES = 4
SLOW_LINES = 3_000_000
STOP_GRACE_SECONDS = 1


def upload(runtime: Runtime, key: str, body: bytes) -> str:
    stage = runtime.stage()
    response = runtime.client("s3").put_object(Bucket=stage.bucket, Key=key, Body=body)
    return job_id_for(stage.bucket, key, etag=response["ETag"],
                      version_id=response.get("VersionId"))


def final_records(runtime: Runtime, job_ids: list[str]) -> list[dict[str, Any]]:
    records = [get_record(runtime, job_id) for job_id in job_ids]
    return [r for r in records if r and r["status"] in FINAL_STATUSES]


def results_for(runtime: Runtime, prefix: str) -> list[dict[str, Any]]:
    stage = runtime.stage()
    pages = runtime.client("dynamodb").get_paginator("scan").paginate(
        TableName=stage.results_table, ConsistentRead=True)
    return [item for page in pages for item in page["Items"]
            if item.get("key", {}).get("S", "").startswith(prefix)]


def test_ctrl_c_mid_run_then_a_start_on_the_same_state_finishes_every_job(
        tmp_path: Path) -> None:
    state = tmp_path / "state"
    args = ("--no-reload", "--state", str(state), "--stop-grace", str(STOP_GRACE_SECONDS))
    small = b"".join(generate_lines(20, seed=1))
    slow = gzip.compress(b"".join(generate_lines(100, seed=3)) * (SLOW_LINES // 100))
    # GIVEN a runtime keeping its state, its one worker going through small files with a
    # slow one every SMALL_FILES / SLOW_FILES (so one is in flight at the stop)
    with running(tmp_path / "first", *args, "--concurrency", "worker=1") as first:
        slow_ids, job_ids = [], []
        for n in range(SMALL_FILES):
            if n % (SMALL_FILES // SLOW_FILES) == 0:
                slow_ids.append(upload(first, f"logs/restart/slow-{n}.ndjson.gz", slow))
            job_ids.append(upload(first, f"logs/restart/small-{n:04}.ndjson", small))
        # a second version of one key is a job of its own
        job_ids.append(upload(first, "logs/restart/small-0000.ndjson", small + small))
        job_ids += slow_ids

        def slow_file_in_progress() -> bool:
            statuses = [(get_record(first, job_id) or {}).get("status") for job_id in slow_ids]
            if all(status in FINAL_STATUSES for status in statuses):
                pytest.fail("every slow file finished before the stop: nothing to interrupt")
            return "processing" in statuses
        wait_until(slow_file_in_progress, 120 + SMALL_FILES, "the worker to start on a slow file",
                   interval=0.05)
        # WHEN it gets Ctrl-C mid-run
        first.process.send_signal(signal.SIGINT)
        assert first.process.wait(120) == 0
        log = first.log()
    # THEN the stop said how long it waited, that it stopped the invocations still running,
    # and what it left to the next start
    assert re.search(rf"waiting up to {STOP_GRACE_SECONDS} s for \d+ running invocation", log)
    assert re.search(rf"still running after {STOP_GRACE_SECONDS} s; stopping them", log)
    left = re.search(r"localruntime: ([\d,]+) jobs? unfinished \(.*\): saved in "
                     rf"{re.escape(str(state))}; they resume on the next start", log)
    assert left, log[-3000:]
    assert int(left.group(1).replace(",", "")) >= SLOW_FILES
    # WHEN a runtime starts again on the same state
    with running(tmp_path / "second", *args) as second:
        restored = re.search(r"localruntime: state: restored from .* in [\d.]+ s: "
                             r"([\d,]+) object versions.*\((\d+) that were in flight visible "
                             r"again\)", second.log())
        assert restored, second.log()[:3000]
        assert int(restored.group(1).replace(",", "")) == len(job_ids)
        assert int(restored.group(2)) >= 1
        # THEN every object version ends with exactly one final record, none lost
        stage = second.stage()
        pages = second.client("s3").get_paginator("list_object_versions").paginate(
            Bucket=stage.bucket, Prefix="logs/restart/")
        versions = [job_id_for(stage.bucket, v["Key"], etag=v["ETag"], version_id=v["VersionId"])
                    for page in pages for v in page.get("Versions", [])]
        assert sorted(versions) == sorted(job_ids)
        wait_until(lambda: len(final_records(second, job_ids)) == len(job_ids),
                   300 + SMALL_FILES, "every job to finish after the restart", interval=1)
        records = final_records(second, job_ids)
        assert sorted(r["job_id"] for r in records) == sorted(job_ids)
        assert [r for r in records if r["status"] != "completed"] == []
        assert len(results_for(second, "logs/restart/")) == len(job_ids)
        slow = [r for r in records if "slow" in r["key"]]
        assert {r["line_count"] for r in slow} == {SLOW_LINES}


def test_a_second_runtime_on_the_folder_is_refused_and_kill_9_keeps_the_last_save(
        tmp_path: Path) -> None:
    state = tmp_path / "state"
    # GIVEN a runtime keeping its state, with one finished job saved
    with running(tmp_path / "first", "--no-reload", "--state", str(state)) as first:
        job_id = upload(first, "logs/restart/one.ndjson", b"".join(generate_lines(20, seed=2)))
        wait_until(lambda: final_records(first, [job_id]), 60, "the job to finish")
        finished = time.time()
        wait_until(lambda: (state / SNAPSHOT_NAME).stat().st_mtime > finished, 60,
                   "a save after the job finished", interval=0.2)
        # WHEN a second runtime starts on the same folder, THEN it is refused, naming the first
        second = run_cli("--port", str(free_port()), "--no-status", "--state", str(state))
        assert second.returncode == 1
        assert (f"the state folder {state} is in use by the runtime with pid "
                f"{first.process.pid}") in second.stderr
        assert "Traceback" not in second.stderr
        # WHEN the first is killed with SIGKILL (no save at a stop)
        endpoint_pids = [p.pid for p in first.descendants()
                         if "localruntime.endpoint.server" in " ".join(p.cmdline())]
        first.process.kill()
        first.process.wait(30)
        psutil.wait_procs([psutil.Process(p) for p in endpoint_pids if psutil.pid_exists(p)],
                          timeout=30)
    # THEN a new runtime takes the folder and has the job the last save held
    with running(tmp_path / "third", "--no-reload", "--state", str(state)) as third:
        assert "state: restored from" in third.log()
        assert [r["status"] for r in final_records(third, [job_id])] == ["completed"]
