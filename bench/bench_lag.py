"""How long after a file's final record GET /stats counts it, on the local runtime.

    python bench/bench_lag.py [--files 50] [--lines 1000] [--poll 0.1]   (or: make bench-lag)

Starts `python -m localruntime --api-port ...` on free ports and uploads files of --lines
lines one at a time (after --warmup untimed ones). After each upload it asks GET /stats
(through the runtime's API port, for the hours of the file's events and its upload) every
--poll seconds until the totals count the file: `files.completed` one more and `records`
--lines more than before the upload. The lag of a file is from its result record's
`completed_at` to the answer that first counted it, so it is late by up to one poll
interval and one answer. Only the HTTP API's answers are read, not the stats table.
Prints P50/P95/max of the lag against the target (a P50 of at most --target seconds) and
writes every file's figures to results/raw/bench_lag.csv. A missed target is a finding, not
an error: the exit status is 0 unless the run fails.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from bench.bench_e2e import BenchError, run_reporting
from chalicelib.adapters import from_item
from chalicelib.core.jobs import job_id_for
from chalicelib.core.results import epoch
from localruntime.background import BackgroundRuntime, BackgroundRuntimeError, free_port
from logctl.stage import client, load_stage
from measure.host import cpu_check_seconds
from measure.payloads import build_payload
from measure.stats import percentile

ROOT = Path(__file__).resolve().parent.parent
TARGET_SECONDS = 1.5
API_READY_SECONDS = 60.0


@dataclass(frozen=True)
class Counts:
    """What GET /stats counts over a range: the figures a final record adds to."""

    completed: int
    records: int

    @classmethod
    def of(cls, stats: dict[str, Any]) -> Counts:
        totals = stats["totals"]
        return cls(completed=int(totals["files"]["completed"]), records=int(totals["records"]))


def counted(before: Counts, now: Counts, lines: int) -> bool:
    """Whether `now` counts one more completed file of `lines` records than `before`."""
    return now.completed > before.completed and now.records - before.records >= lines


@dataclass(frozen=True)
class Sample:
    index: int
    key: str
    job_id: str
    lag_s: float  # completed_at -> the first answer that counted the file
    upload_to_counted_s: float
    upload_to_completed_s: float
    polls: int
    stats_request_ms: float  # median answer time of this file's polls


def summarize(lags: list[float], target: float = TARGET_SECONDS) -> list[str]:
    """The lag's percentiles and the target's verdict (P50 at most `target` seconds)."""
    p50 = percentile(lags, 50)
    met = p50 <= target
    return [
        f"final record -> counted by GET /stats, {len(lags)} files: P50 {p50:.3f} s, "
        f"P95 {percentile(lags, 95):.3f} s, max {max(lags):.3f} s, "
        f"mean {statistics.fmean(lags):.3f} s",
        f"target: P50 {p50:.3f} s {'<=' if met else '>'} {target:g} s: "
        f"{'PASS' if met else 'FAIL'}",
    ]


class StatsApi:
    """GET /stats over one range of hours, timed."""

    def __init__(self, base_url: str, since: datetime, until: datetime) -> None:
        query = urllib.parse.urlencode({"since": f"{since:%Y-%m-%dT%H:%M:%SZ}",
                                        "until": f"{until:%Y-%m-%dT%H:%M:%SZ}"})
        self.url = f"{base_url}/stats?{query}"

    def counts(self) -> tuple[Counts, float, float]:
        """(counts, when the answer arrived (epoch s), how long it took (ms))."""
        started = time.perf_counter()
        with urllib.request.urlopen(self.url, timeout=30) as answer:
            body = json.loads(answer.read())
        took = (time.perf_counter() - started) * 1000
        return Counts.of(body), time.time(), took


def hour_of(moment: float) -> datetime:
    return datetime.fromtimestamp(moment, UTC).replace(minute=0, second=0, microsecond=0)


def wait_for_api(base_url: str, timeout: float = API_READY_SECONDS) -> None:
    """Until GET /stats answers (the runtime's `chalice local` may still be starting)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{base_url}/stats", timeout=10):
                return
        except (urllib.error.URLError, OSError) as exc:  # an HTTPError too
            last = str(exc)
        if time.monotonic() > deadline:
            raise BenchError(f"GET {base_url}/stats did not answer within {timeout:g} s: {last}")
        time.sleep(0.25)


@dataclass(frozen=True)
class Pipeline:
    s3: Any
    ddb: Any
    bucket: str
    table: str
    api: str


def one_file(pipe: Pipeline, body: bytes, lines: int, events_hour: datetime, key: str,
             index: int, *, poll: float, timeout: float) -> Sample:
    # The file counts by the hours of its events and of its upload: both are in the range.
    stats = StatsApi(pipe.api, events_hour, hour_of(time.time()) + timedelta(hours=2))
    before, _, _ = stats.counts()
    uploaded = time.time()
    put = pipe.s3.put_object(Bucket=pipe.bucket, Key=key, Body=body,
                             ContentType="application/x-ndjson")
    job_id = job_id_for(pipe.bucket, key, etag=put.get("ETag"), version_id=put.get("VersionId"))
    deadline = time.monotonic() + timeout
    took: list[float] = []
    while True:
        time.sleep(poll)
        seen, at, ms = stats.counts()
        took.append(ms)
        if counted(before, seen, lines):
            break
        if time.monotonic() > deadline:
            raise BenchError(f"{key}: GET /stats did not count it within {timeout:g} s "
                             f"(before the upload {before}, now {seen})")
    if (seen.completed - before.completed, seen.records - before.records) != (1, lines):
        raise BenchError(f"{key}: GET /stats went from {before} to {seen} for one file of "
                         f"{lines} records: another change is mixed in, or one counted twice")
    item = pipe.ddb.get_item(TableName=pipe.table, Key={"job_id": {"S": job_id}},
                             ConsistentRead=True).get("Item")
    record = from_item(item) if item else {}
    if record.get("status") != "completed" or not record.get("completed_at"):
        raise BenchError(f"{key}: counted by GET /stats, but its record is "
                         f"{record.get('status', 'missing')}")
    completed = epoch(record["completed_at"])
    return Sample(index=index, key=key, job_id=job_id, lag_s=at - completed,
                  upload_to_counted_s=at - uploaded, upload_to_completed_s=completed - uploaded,
                  polls=len(took), stats_request_ms=statistics.median(took))


def measure_lags(args: argparse.Namespace, log_path: Path) -> list[Sample]:
    api_port = free_port()
    runtime = BackgroundRuntime(log_path, "--no-reload", "--api-port", str(api_port))
    try:
        runtime.wait_ready()
        api = f"http://127.0.0.1:{api_port}"
        wait_for_api(api)
        stage = load_stage("local", endpoint_url=runtime.endpoint)
        pipe = Pipeline(client(stage, "s3"), client(stage, "dynamodb"), stage.bucket,
                        stage.results_table, api)
        events_hour = hour_of(time.time())
        payload = build_payload(args.lines)  # events from the start of the current hour
        run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        samples = []
        for i in range(args.warmup + args.files):
            name = f"warmup-{i}" if i < args.warmup else f"{i - args.warmup:04d}"
            sample = one_file(pipe, payload.body, args.lines, events_hour,
                              f"logs/bench-lag/{run_id}/{name}.ndjson", i - args.warmup,
                              poll=args.poll, timeout=args.timeout)
            if i >= args.warmup:
                samples.append(sample)
            time.sleep(args.gap)
        return samples
    except (BotoCoreError, ClientError) as exc:
        raise BenchError(f"AWS call failed: {exc}") from exc
    except (urllib.error.URLError, OSError, ValueError, KeyError) as exc:
        raise BenchError(f"GET /stats failed: {exc}") from exc
    except BackgroundRuntimeError as exc:
        raise BenchError(str(exc)) from exc
    finally:
        runtime.stop()


def write_csv(path: Path, samples: list[Sample]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(asdict(samples[0])))
        writer.writeheader()
        writer.writerows(asdict(s) for s in samples)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    log_path = out.with_suffix(".runtime.log")
    print(f"bench: starting the local runtime and its API on free ports (log: {log_path})",
          flush=True)
    before = cpu_check_seconds()
    samples = measure_lags(args, log_path)
    print(f"bench: CPU check, a Python loop of 3 million additions: {before:.3f} s before the "
          f"run, {cpu_check_seconds():.3f} s after (lower is faster); load average "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"bench: {args.files} files of {args.lines} lines, one at a time, after {args.warmup} "
          f"warm-up files; GET /stats polled every {args.poll:g} s; {platform.node()}, "
          f"{os.cpu_count()} cores, Python {platform.python_version()}")
    lines = summarize([s.lag_s for s in samples], args.target)
    print(lines[0])
    for label, values in (
            ("upload start -> final record (completed_at)",
             [s.upload_to_completed_s for s in samples]),
            ("upload start -> counted by GET /stats", [s.upload_to_counted_s for s in samples])):
        print(f"  {label:<44} median {statistics.median(values):.3f} s")
    print(f"  GET /stats polls per file (mean) {statistics.fmean(s.polls for s in samples):.1f}, "
          f"answer time (median) {statistics.median(s.stats_request_ms for s in samples):.1f} ms")
    print(lines[1])
    write_csv(out, samples)
    print(f"bench: raw numbers in {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/bench_lag.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=50, help="timed files (default 50)")
    parser.add_argument("--lines", type=int, default=1000, help="lines per file (default 1000)")
    parser.add_argument("--warmup", type=int, default=3,
                        help="untimed files first (default 3)")
    parser.add_argument("--poll", type=float, default=0.1,
                        help="seconds between GET /stats polls (default 0.1)")
    parser.add_argument("--gap", type=float, default=0.1,
                        help="seconds between a file counted and the next upload (default 0.1)")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="seconds a file may take to be counted before the run fails "
                        "(default 30)")
    parser.add_argument("--target", type=float, default=TARGET_SECONDS,
                        help=f"the lag's P50 target in seconds (default {TARGET_SECONDS:g})")
    parser.add_argument("--out", default=str(ROOT / "results" / "raw" / "bench_lag.csv"),
                        help="CSV of every file (the runtime's log goes beside it)")
    args = parser.parse_args(argv)
    if args.files < 1 or args.lines < 1 or args.warmup < 0:
        parser.error("--files and --lines must be at least 1, --warmup at least 0")
    if min(args.poll, args.timeout, args.target) <= 0 or args.gap < 0:
        parser.error("--poll, --timeout and --target must be above 0, --gap at least 0")
    return run_reporting(run, args)


if __name__ == "__main__":
    sys.exit(main())
