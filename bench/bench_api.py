"""Results API latency on the local runtime, with a results table of --jobs jobs.

    python bench/bench_api.py [--jobs 2000] [--requests 30]     (or: make bench-api)

Starts `python -m localruntime --api-port ...` on free ports, stores --jobs job records
(spread over the last 3 days, a quarter of them failed; with their hourly rollups)
the way the handlers store them, then times each route --requests times through the
API port and, alternately, straight to the `chalice local` behind it, and prints P50 / P95
in milliseconds for each and what the API port's hop adds to the P50.
The runtime is stopped at the end.
"""

from __future__ import annotations

import argparse
import platform
import re
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from chalicelib.adapters import ResultsStore
from chalicelib.core.errors import JobRejected
from chalicelib.core.jobs import Job
from chalicelib.core.results import (
    completed_record,
    failed_record,
    iso,
    queued_record,
)
from chalicelib.core.schema import empty_statistics
from chalicelib.rollups import HourlyRollups, RollupRecorder
from localruntime.background import BackgroundRuntime, BackgroundRuntimeError, free_port
from localruntime.console.apiserver import BACKEND_LINE
from logctl.stage import client, load_stage
from measure.stats import percentile

ROUTES = ("/jobs?limit=50", "/jobs?status=failed&limit=50", "/jobs?prefix=logs/b/&limit=50",
          "/jobs/{job_id}", "/stats", "/health")


def seed(endpoint: str, jobs: int) -> str:
    """Store `jobs` final records with their rollups; returns one job id."""
    stage = load_stage("local", endpoint_url=endpoint)
    ddb = client(stage, "dynamodb")
    store = RollupRecorder(ResultsStore(ddb, stage.results_table),
                           HourlyRollups(ddb, stage.stats_table))
    now = time.time()
    statistics = {**empty_statistics(), "line_count": 1000, "malformed_count": 3,
                  "info_count": 900, "error_count": 97, "status_codes": {"200": 950, "500": 47}}
    job_id = ""
    for i in range(jobs):
        created = now - (i / jobs) * 3 * 24 * 3600
        job = Job(job_id=f"{i:032x}", bucket=stage.bucket, key=f"logs/{'ab'[i % 2]}/{i}.ndjson",
                  size=100_000, etag=str(i), version_id=None, uploaded_at=None,
                  created_at=iso(created))
        store.create(queued_record(job))
        if i % 4 == 3:
            store.finish(failed_record(job, JobRejected("unreadable", "bench"), created,
                                       created + 0.05, 1))
        else:
            store.finish(completed_record(job, statistics, created, created + 0.05, 1))
        job_id = job.job_id
    return job_id


def time_once(url: str) -> float:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as answer:
        answer.read()
    return (time.perf_counter() - started) * 1000


def time_route(urls: tuple[str, str], requests: int) -> tuple[list[float], list[float]]:
    """Each request through both URLs in turn, so both see the same machine."""
    first: list[float] = []
    second: list[float] = []
    for _ in range(requests):
        first.append(time_once(urls[0]))
        second.append(time_once(urls[1]))
    return first, second


def backend_url(log: str) -> str:
    """The `chalice local` the runtime put behind its API port (its log says)."""
    found = re.findall(re.escape(BACKEND_LINE) + r"(\S+)", log)
    if not found:
        raise BackgroundRuntimeError("the runtime's log names no chalice local")
    return found[-1].rstrip("/")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--requests", type=int, default=30)
    args = parser.parse_args(argv)
    api_port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        runtime = BackgroundRuntime(Path(tmp) / "runtime.log", "--no-reload", "--api-port",
                                    str(api_port))
        try:
            with runtime:
                started = time.perf_counter()
                job_id = seed(runtime.endpoint, args.jobs)
                print(f"stored {args.jobs} jobs in {time.perf_counter() - started:.1f} s "
                      f"({platform.python_version()}, {platform.machine()})")
                direct = backend_url(runtime.log())
                print("| route | P50 ms | P95 ms | direct P50 ms | direct P95 ms | hop P50 ms |"
                      "\n|---|---:|---:|---:|---:|---:|")
                for route in ROUTES:
                    path = route.format(job_id=job_id)
                    port, behind = time_route((f"http://127.0.0.1:{api_port}{path}",
                                               f"{direct}{path}"), args.requests)
                    print(f"| `GET {route}` | {percentile(port, 50):.1f} | "
                          f"{percentile(port, 95):.1f} | {percentile(behind, 50):.1f} | "
                          f"{percentile(behind, 95):.1f} | "
                          f"{percentile(port, 50) - percentile(behind, 50):+.1f} |")
        except BackgroundRuntimeError as exc:
            print(f"bench-api: {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
