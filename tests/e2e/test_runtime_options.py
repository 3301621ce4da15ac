"""`python -m localruntime` options as a user types them: echoed when applied, refused on typos."""

from __future__ import annotations

from pathlib import Path

import pytest

from logctl.stage import read_runtime_record
from tests.e2e.conftest import Runtime, running

HANG_GUARD_SECONDS = 300


def test_overrides_are_echoed_and_a_timeout_mismatch_is_warned(tmp_path: Path) -> None:
    with running(tmp_path, "--no-reload", "--set", "RETRY_BASE_SECONDS=0.5",
                 "--timeout", "worker=30", "--concurrency", "worker=1") as runtime:
        log = runtime.log()

    assert "override: --set RETRY_BASE_SECONDS=0.5 (stage value '1')" in log
    assert "override: --timeout worker=30 s (stage value 60 s)" in log
    assert "override: --concurrency worker=1 (stage value: reserved_concurrency 4)" in log
    assert "warning: worker times out after 30 s but WORKER_TIMEOUT_SECONDS is '60'" in log
    assert log.index("override: --set") < log.index("ready on")


@pytest.mark.parametrize(("args", "status", "message"), [
    (["--timeout", "wokrer=5"], 1,
     "--timeout wokrer: the app has no function 'wokrer' (did you mean worker?)"),
    (["--set", "RETRY_BASE_SECOND=1"], 2,
     "--set RETRY_BASE_SECOND: stage 'local' declares no such variable "
     "(did you mean RETRY_BASE_SECONDS?)"),
])
def test_a_misspelt_name_stops_the_runtime_with_a_clear_message(
        tmp_path: Path, args: list[str], status: int, message: str) -> None:
    runtime = Runtime(tmp_path / "runtime.log", "--no-reload", *args)
    try:
        exited = runtime.process.wait(HANG_GUARD_SECONDS)
    finally:
        runtime.stop_all()

    assert exited == status
    assert message in runtime.log()
    assert "Traceback" not in runtime.log()


def test_the_endpoint_file_names_the_running_runtime_and_goes_with_it(tmp_path: Path) -> None:
    endpoint_file = tmp_path / "endpoint"
    with running(tmp_path, "--no-reload", "--endpoint-file", str(endpoint_file)) as runtime:
        written = endpoint_file.read_text()
        record = read_runtime_record(endpoint_file)
        endpoint, pid = runtime.endpoint, runtime.process.pid

    assert written.splitlines()[0] == endpoint  # the first line is all most readers need
    assert record is not None and record.endpoint_url == endpoint and record.pid == pid
    assert not endpoint_file.exists()
