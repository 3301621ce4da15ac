"""The runtime's life: hot reload, bad input, and a stop that leaves nothing behind."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from chalicelib.core.jobs import job_id_for
from tests.e2e.conftest import (
    ROOT,
    Runtime,
    running,
    runtime_environment,
    wait_for_final,
    wait_until,
)

pytestmark = pytest.mark.e2e

JOB_DONE = 'self.telemetry.event("job_done", '


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the app that the tests may edit."""
    copy = tmp_path_factory.mktemp("project")
    shutil.copy(ROOT / "app.py", copy / "app.py")
    shutil.copytree(ROOT / "chalicelib", copy / "chalicelib",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (copy / ".chalice").mkdir()
    shutil.copy(ROOT / ".chalice" / "config.json", copy / ".chalice" / "config.json")
    return copy


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory, project: Path) -> Iterator[Runtime]:
    with running(tmp_path_factory.mktemp("runtime"), project=project) as rt:
        yield rt


def upload(runtime: Runtime, key: str, lines: int = 20) -> str:
    stage = runtime.stage()
    body = b"".join(
        b'{"timestamp":"2024-05-01T12:00:0%dZ","level":"INFO","endpoint":"/a",'
        b'"response_time_ms":%d,"status_code":200,"user_id":"u%d"}\n' % (i % 10, i, i)
        for i in range(lines))
    response = runtime.client("s3").put_object(Bucket=stage.bucket, Key=key, Body=body)
    return job_id_for(stage.bucket, key, etag=response["ETag"],
                      version_id=response.get("VersionId"))


def reloads(runtime: Runtime) -> int:
    return runtime.log().count("localruntime: reloaded")


def test_edit_reloads_handlers_without_losing_queued_jobs(runtime: Runtime,
                                                          project: Path) -> None:
    # GIVEN warm handler processes that completed a job
    before = set(runtime.handler_pids("worker"))
    done = reloads(runtime)
    wait_for_final(runtime, upload(runtime, "logs/reload/before.ndjson"))
    # WHEN chalicelib changes while jobs are arriving
    pipeline = project / "chalicelib" / "pipeline.py"
    source = pipeline.read_text()
    assert JOB_DONE in source
    pipeline.write_text(source.replace(JOB_DONE, JOB_DONE + 'edited=True, '))
    during = [upload(runtime, f"logs/reload/during-{i}.ndjson") for i in range(5)]
    wait_until(lambda: reloads(runtime) == done + 1, 60, "the reload")
    after = upload(runtime, "logs/reload/after.ndjson")
    # THEN every job completes, new processes run the edited code, the old ones are gone
    for job_id in [*during, after]:
        assert wait_for_final(runtime, job_id)["status"] == "completed"
    def done_lines() -> list[str]:  # the handler logs after the write: the line may trail it
        return [line for line in runtime.log().splitlines()
                if '"job_done"' in line and after in line]

    done_after = wait_until(done_lines, 30, "the worker's log line for the last job")
    assert len(done_after) == 1 and json.loads(done_after[0])["edited"] is True
    wait_until(lambda: not set(runtime.handler_pids("worker")) & before, 30,
               "the previous processes to finish their invocations and exit")
    assert len(runtime.handler_pids("worker")) == len(before) == 4  # reserved concurrency


def test_broken_edit_keeps_the_previous_code_running(runtime: Runtime, project: Path) -> None:
    # GIVEN an edit that does not import
    done = reloads(runtime)
    app = project / "app.py"
    source = app.read_text()
    app.write_text(source + "\nthis is not python\n")
    try:
        failures = runtime.log().count("reload failed")
        wait_until(lambda: runtime.log().count("reload failed") > failures, 60,
                   "the failed reload")
        # THEN uploads are still processed by the previous code
        job_id = upload(runtime, "logs/reload/while-broken.ndjson")
        assert wait_for_final(runtime, job_id)["status"] == "completed"
    finally:
        app.write_text(source)
    # AND fixing the file reloads again
    wait_until(lambda: reloads(runtime) == done + 1, 60, "the reload after the fix")


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "localruntime", *args], cwd=ROOT,
                          env=runtime_environment(), capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize(("args", "message"), [
    (["--set", "NO_EQUALS_SIGN"], "--set must look like NAME=VALUE"),
    (["--port", "http"], "--port: not a number"),
    (["--timeout", "worker=0"], "must be a positive number"),
    (["--stage", "nope"], "stage 'nope' is not in"),
])
def test_bad_arguments_are_reported_plainly(args: list[str], message: str) -> None:
    done = run_cli("--port", "1", *args) if "--port" not in args else run_cli(*args)
    assert done.returncode != 0
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_a_port_in_use_is_reported(runtime: Runtime) -> None:
    done = run_cli("--port", str(runtime.port), "--no-status")
    assert done.returncode == 1
    assert f"127.0.0.1:{runtime.port} is already in use" in done.stderr
    assert "Traceback" not in done.stderr


def test_stop_leaves_no_process_behind(tmp_path: Path) -> None:
    # GIVEN a runtime's processes: endpoint and warm handlers
    with running(tmp_path, "--no-reload") as runtime:
        pids = [p.pid for p in runtime.descendants()]
        assert len(pids) >= 5
        # WHEN it gets SIGTERM (what Ctrl-C or a supervisor sends)
        assert runtime.stop_all() == []
    # THEN it exited cleanly, every process it started is gone, and the port is free
    assert runtime.process.returncode == 0
    assert not [p for p in pids if psutil.pid_exists(p)
                and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", runtime.port)) != 0
    assert "localruntime: stopped" in runtime.log()
