"""Faults switched while the runtime runs, and the fault drill on it, as `make fault-drill
RUNNING=1` runs it: under a fault switched on at run time, jobs fail into the dead-letter
queue; with the fault switched off and the queue redriven, they complete. The runtime is
never restarted."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from chalicelib.core.schema import FINAL_STATUSES
from localruntime.drill import FAULT, main
from localruntime.faults import count_faults
from logctl import dlq
from logctl import faults as fault_control
from logctl.generate import generate_lines, write_log_file
from logctl.upload import upload_file
from tests.e2e.conftest import Runtime, get_record, running, wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    with running(tmp_path_factory.mktemp("runtime"), "--set", "RETRY_BASE_SECONDS=0.2") as rt:
        yield rt


@pytest.fixture
def cleared(runtime: Runtime) -> Iterator[None]:
    yield
    fault_control.clear(runtime.stage())


def fault_records(runtime: Runtime, kind: str) -> list[dict]:
    return [r for r in runtime.log_records("fault") if r["kind"] == kind]


def test_kills_and_notification_faults_follow_the_plan_switched_at_run_time(
        runtime: Runtime, cleared: None, tmp_path: Path) -> None:
    stage = runtime.stage()
    path = write_log_file(tmp_path / "rooms.ndjson", 20, seed=5)
    # A worker invocation of ~0.4 s: a kill (due after an exponential delay, mean 0.25 s)
    # lands before it ends 4 times in 5; one that ends first is not killed.
    long = tmp_path / "long.ndjson.gz"
    long.write_bytes(gzip.compress(b"".join(generate_lines(100, seed=5)) * 3_000,
                                   compresslevel=1))
    # WHEN kills are switched on, THEN an invocation that runs long enough is killed
    assert fault_control.set_rates(stage, ["kill=1"])["applied"] is True
    for attempt in range(5):
        job_id = upload_file(stage, long, key=f"logs/rooms/killed-{attempt}.ndjson.gz").job_id

        def ended(job_id: str = job_id) -> bool:
            record = get_record(runtime, job_id)
            return bool(fault_records(runtime, "kill")) or (
                record is not None and record["status"] in FINAL_STATUSES)

        wait_until(ended, 60, "a kill, or the long file's job to end without one")
        if fault_records(runtime, "kill"):
            break
    assert fault_records(runtime, "kill"), "no invocation was killed in 5 long uploads"
    # WHEN kills are off and delayed notifications on, THEN a notification is delayed, and no
    # invocation begun after the switch returned is killed (one begun before may be, later)
    assert fault_control.set_rates(stage, ["kill=0", "s3_delay=1"])["applied"] is True
    switched = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    upload_file(stage, path, key="logs/rooms/delayed.ndjson")
    delayed = wait_until(lambda: [r for r in fault_records(runtime, "s3_delay")
                                  if "logs/rooms/delayed.ndjson" in r["keys"]],
                         30, "a delayed notification")
    assert delayed and all(r["invoked_at"] <= switched for r in fault_records(runtime, "kill"))


def test_jobs_fail_into_the_dlq_then_complete_after_clear_and_redrive(
        runtime: Runtime, cleared: None, capsys: pytest.CaptureFixture[str]) -> None:
    # WHEN the drill runs on the runtime with two small files
    status = main(["--running", "--endpoint-url", runtime.endpoint, "--files", "2",
                   "--lines", "20", "--timeout", "300"])
    out = capsys.readouterr().out

    # THEN both went to the DLQ failing every attempt, and completed after the redrive
    assert status == 0, out
    assert "log-pipeline-local-jobs-dlq: 2 waiting" in out
    assert out.count("failed  retries_exhausted: 5 attempts failed") == 2
    assert "moved 2 messages" in out
    assert out.count("  completed  lines=20") == 2
    stage = runtime.stage()
    assert dlq.peek(stage)[0] == dlq.Depth(0, 0)
    assert fault_control.show(stage)["rates"] == {}
    # AND the runtime switched the fault on and off, injecting it into every attempt
    log = runtime.log()
    assert f"faults: {FAULT} (were none)" in log and f"faults: none (were {FAULT})" in log
    assert count_faults(log.splitlines()).get("s3_get_reset", 0) >= 2 * 5

    # WHEN faults are in force already, THEN the drill refuses to start
    fault_control.set_rates(stage, ["sqs_visibility_500=0.5"])
    assert main(["--running", "--endpoint-url", runtime.endpoint]) == 1
    assert "faults are in force (sqs_visibility_500=0.5)" in capsys.readouterr().err
