"""The fault drill on a running runtime, as `make fault-drill RUNNING=1` runs it: under a fault
switched on at run time, jobs fail into the dead-letter queue; with the fault switched off
and the queue redriven, they complete. The runtime is never restarted."""

from __future__ import annotations

from pathlib import Path

import pytest

from localruntime.drill import FAULT, main
from localruntime.faults import count_faults
from logctl import dlq
from logctl import faults as fault_control
from tests.e2e.conftest import running

pytestmark = pytest.mark.e2e


def test_jobs_fail_into_the_dlq_then_complete_after_clear_and_redrive(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with running(tmp_path, "--set", "RETRY_BASE_SECONDS=0.2") as runtime:
        # WHEN the drill runs on it with two small files
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
        fault_control.set_rates(stage, ["kill=0.5"])
        assert main(["--running", "--endpoint-url", runtime.endpoint]) == 1
        assert "faults are in force (kill=0.5)" in capsys.readouterr().err
