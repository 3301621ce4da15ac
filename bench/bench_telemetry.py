"""What AWS Lambda Powertools (Logger, EMF metrics) costs the handlers.

    python bench/bench_telemetry.py            (or: make bench-telemetry)

Cold start: the median time of a fresh interpreter importing what the app imports
(boto3, chalice, the summarizer) with and without Powertools' Logger and Metrics.
Throughput: the time per file of what the worker reports for it (one EMF line and one
log line) against the hand-built JSON line it replaced, with the output going to
/dev/null.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
APP_IMPORTS = ["boto3", "chalice", "chalicelib.summary", "chalicelib.adapters"]
POWERTOOLS_IMPORTS = ["aws_lambda_powertools.logging", "aws_lambda_powertools.metrics"]
RECORD: dict[str, Any] = {
    "job_id": "0" * 32, "status": "completed", "line_count": 1000, "malformed_count": 3,
    "processing_time_ms": 8.5, "uploaded_at": "2026-11-26T12:00:00Z",
    "completed_at": "2026-11-26T12:00:00.250Z", "failure_reason": None}


def import_ms(modules: list[str], runs: int) -> float:
    """Median ms for a fresh interpreter to start and import `modules`."""
    code = "; ".join(f"import {m}" for m in modules) or "pass"
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def per_file_us(report: Any, files: int) -> float:
    """Median over 5 rounds of µs per file spent in `report()`."""
    rounds = []
    with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
        for _ in range(5):
            started = time.perf_counter()
            for _ in range(files):
                report()
            rounds.append((time.perf_counter() - started) / files * 1e6)
    return statistics.median(rounds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15, help="interpreter starts per case")
    parser.add_argument("--files", type=int, default=5000, help="files per throughput round")
    args = parser.parse_args(argv)

    from aws_lambda_powertools import Logger

    from chalicelib.telemetry import Telemetry

    null = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the benchmark
    telemetry = Telemetry("bench", logger=Logger(service="bench", stream=null))

    def with_powertools() -> None:
        telemetry.event("job_done", job_id=RECORD["job_id"], status="completed",
                        lines=RECORD["line_count"], ms=RECORD["processing_time_ms"])
        telemetry.file_finished(RECORD)

    def hand_built() -> None:
        sys.stdout.write(json.dumps({"event": "job_done", "job_id": RECORD["job_id"],
                                     "status": "completed", "lines": RECORD["line_count"],
                                     "ms": RECORD["processing_time_ms"]}, default=str) + "\n")

    baseline = import_ms(APP_IMPORTS, args.runs)
    powertools = import_ms([*APP_IMPORTS, *POWERTOOLS_IMPORTS], args.runs)
    result = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python "
                   f"{platform.python_version()}",
        "import_ms_without": round(baseline, 1),
        "import_ms_with": round(powertools, 1),
        "cold_start_added_ms": round(powertools - baseline, 1),
        "per_file_us_hand_built": round(per_file_us(hand_built, args.files), 1),
        "per_file_us_powertools": round(per_file_us(with_powertools, args.files), 1),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
