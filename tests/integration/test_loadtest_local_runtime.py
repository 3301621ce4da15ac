"""The load-test commands against a real local runtime, started and stopped by the wrapper.

Bounded runs (a few files, a few seconds of Locust) that prove the whole chain: runtime
start and canary, Locust's gevent-patched boto3, raw CSV rows, host sidecar, shutdown.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
HANG_GUARD_SECONDS = 600


def run(args: list[str], results: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loadtest.runtime", "--results-dir", str(results), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=HANG_GUARD_SECONDS, check=False,
        env={**_env(), "PYTHONPATH": str(ROOT)},
    )


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("AWS_ENDPOINT_URL", "LOG_STAGE")}


def rows(results: Path, kind: str) -> tuple[Path, list[dict[str, str]]]:
    [path] = sorted(results.glob(f"{kind}-local-*Z.csv"))
    with path.open(newline="") as f:
        return path, list(csv.DictReader(f))


def test_locust_run_measures_files_through_the_local_runtime(tmp_path: Path) -> None:
    locust = str(Path(sys.executable).with_name("locust"))

    done = run(["--kind", "load", "--", locust, "-f", "loadtest/upload.py", "--headless",
                "-u", "2", "-r", "2", "-t", "4s", "--sizes", "100,1000", "--stop-timeout", "30",
                "--only-summary"], tmp_path)

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    path, measured = rows(tmp_path, "load")
    assert measured, "no file was measured"
    assert {r["outcome"] for r in measured} == {"completed"}
    assert {r["users"] for r in measured} == {"2"}
    assert {r["lines"] for r in measured} <= {"100", "1000"}
    assert all(r["started_at"] and r["completed_at"] for r in measured)
    host = json.loads(path.with_suffix(".host.json").read_text())
    assert host["runtime_cpu_seconds"] > 0 and host["loadgen_cpu_seconds"] > 0
    assert "E2E" in done.stdout + done.stderr


def test_protocol_run_on_the_local_runtime(tmp_path: Path) -> None:
    done = run(["--kind", "protocol", "--", sys.executable, "-m", "loadtest.protocol",
                "--iterations", "1", "--warmup", "1"], tmp_path)

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    _, measured = rows(tmp_path, "protocol")
    assert [r["phase"] for r in measured] == ["warmup", "measure", "measure", "measure"]
    assert [r["lines"] for r in measured] == ["100", "100", "500", "1000"]
    assert {r["outcome"] for r in measured} == {"completed"}
    assert all(int(r["record_bytes"]) > 500 for r in measured)
    assert "[  4/4]" in done.stdout
