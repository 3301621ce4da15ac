"""`make soak` in small: a few ordinary and every kind of hostile file (small sizes), with
faults injected, reconciled. What a user runs as `make soak`, shortened."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from localruntime.background import PROJECT_ROOT, clean_environment

pytestmark = pytest.mark.e2e

# Every endpoint fault often enough to meet the pipeline; no kills (a killed batch waits
# out a 120 s visibility timeout, too long for a smoke test: the full soak has them).
FAULTS = ("s3_get_500=0.2,s3_get_slowdown=0.2,s3_get_reset=0.2,ddb_throughput=0.2,"
          "ddb_500=0.2,sqs_send_500=0.2,sqs_visibility_500=0.3,s3_duplicate=0.2,s3_delay=0.1,"
          "stream_read_500=0.2,stream_read_throttle=0.2,stream_iterator_expired=0.1")


def test_a_small_soak_loses_duplicates_and_strands_nothing(tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"
    result = subprocess.run(
        [sys.executable, "-m", "soak", "--files", "20", "--seed", "5", "--scale", "small",
         "--fault", FAULTS, "--out", str(tmp_path / "run"), "--json", str(report_path)],
        cwd=PROJECT_ROOT, env=clean_environment(), capture_output=True, text=True,
        timeout=1200)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr[-3000:]}"
    report = json.loads(report_path.read_text())
    assert report["lost"] == report["duplicated"] == report["wrong"] == report["stuck"] == 0
    assert report["versions"] >= 20 + 18 and report["completed"] > 20
    assert report["dlq_found"] == report["dlq_expected"] == 4
    assert sum(report["faults"].values()) > 10
    assert report["stream_lines_put"] == report["stream_lines_recorded"] > 0
    assert report["stream_lost"] == report["stream_doubled"] == 0
    assert report["rollup_hours"] >= 1 and report["rollup_differences"] == 0
    for row in ("lost", "duplicated", "wrong", "stuck", "DLQ expected / found",
                "peak worker RSS", "faults injected: ", "stream: lines lost",
                "stream: lines doubled", "rollups: figures differing from the records"):
        assert f"| {row}" in result.stdout
