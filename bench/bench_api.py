"""Results API latency on the local runtime, with a results table of --jobs jobs.

    python bench/bench_api.py [--jobs 2000] [--requests 30]     (or: make bench-api)

Starts `python -m localruntime --api-port ...` on free ports, stores --jobs job records
(spread over the last 3 days, a quarter of them failed) the way the handlers store them,
and 30 days of rollups (--days) as the rollups handler stores them: per hour files, records,
levels, 5 status codes and a 300-bin latency sketch (one item a day), and 10 endpoints with
150 bins each (one item an hour); then times each route --requests times through
`chalice local` and prints P50 / P95 in milliseconds.
The runtime is stopped at the end.
"""

from __future__ import annotations

import argparse
import platform
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
from chalicelib.core.rollup import (
    Change,
    Write,
    day_target,
    endpoints_target,
    expires_at,
    position,
)
from chalicelib.core.schema import empty_statistics
from chalicelib.rollups import DynamoRollupItems
from localruntime.background import BackgroundRuntime, BackgroundRuntimeError, free_port
from logctl.stage import client, load_stage
from measure.stats import percentile

ROUTES = ("/jobs?limit=50", "/jobs?status=failed&limit=50", "/jobs?prefix=logs/b/&limit=50",
          "/jobs/{job_id}", "/stats", "/stats?since={month_ago}", "/endpoints?since={month_ago}",
          "/health")
ENDPOINTS_PER_HOUR = 10


def seed(endpoint: str, jobs: int) -> str:
    """Store `jobs` final records with their rollups; returns one job id."""
    stage = load_stage("local", endpoint_url=endpoint)
    ddb = client(stage, "dynamodb")
    store = ResultsStore(ddb, stage.results_table)
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


def seed_rollups(endpoint: str, days: int) -> int:
    """Rollups for every hour of the last `days` days, one write an hour and kind; returns
    how many items hold them."""
    stage = load_stage("local", endpoint_url=endpoint)
    items = DynamoRollupItems(client(stage, "dynamodb"), stage.stats_table)
    start = int(time.time() // 3600) - days * 24
    targets = set()
    for number, hour_number in enumerate(range(start, start + days * 24 + 1)):
        hour = time.strftime("%Y-%m-%dT%H", time.gmtime(hour_number * 3600))
        figures = {
            "files_received": 40, "files_completed": 38, "files_failed": 2, "malformed": 120,
            "records": 38_000, "rt_sum": 2_400_000.5,
            "levels": {"info": 33_000, "warn": 2_000, "error": 2_000, "debug": 1_000},
            "codes": dict.fromkeys(("200", "201", "404", "500", "503"), 7_600),
            "bins": {str(key): 120 for key in range(100, 400)}}
        endpoints = {f"/api/endpoint/{n}": {
            "requests": 3_800 - n, "errors": 200,
            "bins": {str(key): 25 for key in range(200 + n, 350 + n)}}
            for n in range(ENDPOINTS_PER_HOUR)}
        for target, delta in ((day_target(hour, "upload"), {hour[11:13]: figures}),
                              (endpoints_target(hour, "upload"), {"named": endpoints})):
            job = f"{number:032x}"
            items.apply(Write(target, (Change(job, position(str(number + 1)), delta),),
                              expires_at(target)))
            items.forget(target, {job: position(str(number + 1))})
            targets.add(target)
    return len(targets)


def time_route(url: str, requests: int) -> list[float]:
    samples = []
    for _ in range(requests):
        started = time.perf_counter()
        with urllib.request.urlopen(url, timeout=60) as answer:
            answer.read()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--days", type=int, default=30)
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
                started = time.perf_counter()
                items = seed_rollups(runtime.endpoint, args.days)
                print(f"stored {items} rollup items ({args.days} days of hours) in "
                      f"{time.perf_counter() - started:.1f} s")
                month_ago = time.strftime("%Y-%m-%dT%H:00:00Z",
                                          time.gmtime(time.time() - args.days * 86400))
                print("| route | P50 ms | P95 ms |\n|---|---:|---:|")
                for route in ROUTES:
                    path = route.format(job_id=job_id, month_ago=month_ago)
                    samples = time_route(f"http://127.0.0.1:{api_port}{path}", args.requests)
                    print(f"| `GET {route}` | {percentile(samples, 50):.1f} | "
                          f"{percentile(samples, 95):.1f} |")
        except BackgroundRuntimeError as exc:
            print(f"bench-api: {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
