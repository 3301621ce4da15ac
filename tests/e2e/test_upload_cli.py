"""`python -m logctl upload --wait` against a running local runtime, as a user runs it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from logctl.generate import write_log_file
from tests.e2e.conftest import ROOT, Runtime, running, runtime_environment

HANG_GUARD_SECONDS = 300


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    with running(tmp_path_factory.mktemp("runtime"), "--no-reload") as rt:
        yield rt


def upload(runtime: Runtime, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "logctl", "upload", *args], cwd=ROOT,
                          env={**runtime_environment(), "AWS_ENDPOINT_URL": runtime.endpoint},
                          capture_output=True, text=True, timeout=HANG_GUARD_SECONDS,
                          check=False)


def test_a_multipart_upload_is_followed_to_its_result(runtime: Runtime, tmp_path: Path) -> None:
    # GIVEN a file over boto3's 8 MiB multipart threshold
    big = write_log_file(tmp_path / "big.ndjson", 60_000, seed=5)
    assert big.stat().st_size > 9 * 1024 * 1024
    # WHEN it is uploaded and waited for
    done = upload(runtime, "--wait", "--timeout", "120", str(big))
    # THEN the job id printed is the trigger's, so the wait ends with the completed record
    assert done.returncode == 0, done.stdout + done.stderr
    assert "logs/big.ndjson  completed  lines=60000" in done.stdout
    assert "Traceback" not in done.stderr
