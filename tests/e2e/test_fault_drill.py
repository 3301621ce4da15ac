"""Faults switched while the runtime runs, and the fault drill on it, as `make fault-drill
RUNNING=1` runs it: under a fault switched on at run time, jobs fail into the dead-letter
queue; with the fault switched off and the queue redriven, they complete. The runtime is
never restarted."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from localruntime.drill import FAULT, main
from localruntime.faults import count_faults
from logctl import dlq
from logctl import faults as fault_control
from logctl.generate import write_log_file
from logctl.upload import upload_file
from tests.e2e.conftest import Runtime, running, wait_until

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
    # WHEN kills are switched on, THEN the next invocation's process is killed
    assert fault_control.set_rates(stage, ["kill=1"])["applied"] is True
    upload_file(stage, path, key="logs/rooms/killed.ndjson")
    wait_until(lambda: fault_records(runtime, "kill"), 30, "an injected kill")
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
