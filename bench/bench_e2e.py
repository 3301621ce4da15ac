"""End-to-end latency on the local runtime: upload start to result visible in DynamoDB.

    python bench/bench_e2e.py [--files 100] [--lines 1000] [--warmup 5]   (or: make bench-e2e)
    python bench/bench_e2e.py --endpoint http://127.0.0.1:4566            (a running runtime)

Without --endpoint it starts `python -m localruntime` on a free port and stops it at the
end. Files are uploaded one after another, and each job's record is polled with GetItem
the way the load test polls it (`measure.probe`: around the time recent files took,
backing off after that) until it is completed. Prints
P50/P95/P99/mean and where the time goes (from the record's uploaded_at / created_at /
started_at / completed_at), and writes every measurement to results/raw/bench_e2e.csv.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import statistics
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import psutil
from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.core.results import epoch
from localruntime.background import PROJECT_ROOT, BackgroundRuntime, BackgroundRuntimeError
from logctl.stage import client, load_stage
from measure.host import cpu_check_seconds
from measure.payloads import Payload, build_payload
from measure.probe import PipelineProbe
from measure.stats import percentile

ROOT = Path(__file__).resolve().parent.parent
RESULT_TIMEOUT_SECONDS = 30.0
TARGETS_MS = {"p50": 50.0, "p99": 150.0}


class BenchError(Exception):
    """The benchmark could not run; the message says why."""


@dataclass(frozen=True)
class Sample:
    index: int
    key: str
    total_ms: float
    upload_ms: float
    s3_to_trigger_ms: float
    trigger_to_worker_ms: float
    worker_ms: float
    result_seen_ms: float
    processing_time_ms: float
    polls: int


def measure(probe: PipelineProbe, payload: Payload, key: str, index: int) -> Sample:
    m = probe.measure(payload, key)
    if not m.ok or m.record is None:
        raise BenchError(f"{key}: {m.outcome}: {m.reason}")
    record = m.record
    stamps = ("uploaded_at", "created_at", "started_at", "completed_at")
    missing = [name for name in stamps if not record.get(name)]
    if missing:
        raise BenchError(f"{key}: the completed record has no {', '.join(missing)}: {record}")
    at = {name: epoch(record[name]) for name in stamps}
    seen = m.start_epoch + m.e2e_ms / 1000
    return Sample(
        index=index, key=key,
        total_ms=m.e2e_ms,
        upload_ms=m.upload_ms,
        s3_to_trigger_ms=(at["created_at"] - at["uploaded_at"]) * 1000,
        trigger_to_worker_ms=(at["started_at"] - at["created_at"]) * 1000,
        worker_ms=(at["completed_at"] - at["started_at"]) * 1000,
        result_seen_ms=(seen - at["completed_at"]) * 1000,
        processing_time_ms=float(record["processing_time_ms"]),
        polls=m.polls,
    )


def summarize(samples: list[Sample]) -> list[str]:
    totals = [s.total_ms for s in samples]
    lines = [
        f"end to end, {len(samples)} files: P50 {percentile(totals, 50):.1f} ms, "
        f"P95 {percentile(totals, 95):.1f} ms, P99 {percentile(totals, 99):.1f} ms, "
        f"mean {statistics.fmean(totals):.1f} ms, max {max(totals):.1f} ms",
        "where the time goes (median / mean ms):",
    ]
    parts = (("upload (PutObject)", "upload_ms"),
             ("S3 event -> trigger wrote the job", "s3_to_trigger_ms"),
             ("job queued -> worker started", "trigger_to_worker_ms"),
             ("worker: read, parse, write result", "worker_ms"),
             ("  of which processing_time_ms", "processing_time_ms"),
             ("result written -> seen by the client", "result_seen_ms"))
    for label, name in parts:
        values = [getattr(s, name) for s in samples]
        lines.append(f"  {label:<38} {statistics.median(values):7.1f} / "
                     f"{statistics.fmean(values):7.1f}")
    lines.append(f"  GetItem polls per file (mean)          "
                 f"{statistics.fmean(s.polls for s in samples):7.1f}")
    verdict = ", ".join(
        f"{name.upper()} {percentile(totals, float(name[1:])):.1f} ms "
        f"{'<=' if percentile(totals, float(name[1:])) <= limit else '>'} {limit:g} ms"
        for name, limit in TARGETS_MS.items())
    lines.append(f"targets: {verdict}")
    return lines


def write_csv(path: Path, samples: list[Sample]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(asdict(samples[0])))
        writer.writeheader()
        writer.writerows(asdict(s) for s in samples)


@dataclass(frozen=True)
class Run:
    samples: list[Sample]
    payload_bytes: int
    endpoint_cpu_ms_per_file: float | None  # None against a runtime this run did not start


def _endpoint_process(runtime: BackgroundRuntime) -> psutil.Process | None:
    for child in psutil.Process(runtime.process.pid).children(recursive=True):
        if "localruntime.endpoint.server" in " ".join(child.cmdline()):
            return child
    return None


def _cpu_seconds(process: psutil.Process | None) -> float:
    if process is None:
        return 0.0
    times = process.cpu_times()
    return times.user + times.system


def measure_files(files: int, lines: int, warmup: int, *, endpoint: str | None = None,
                  log_path: Path, env: dict[str, str] | None = None,
                  tree: Path = PROJECT_ROOT) -> Run:
    """Upload `files` files of `lines` lines one after another (after `warmup` ones) to a
    runtime at `endpoint`, or to a fresh one started with `env` added to its environment,
    running the code of the source tree `tree` (default: this one)."""
    runtime = None
    if not endpoint:
        runtime = BackgroundRuntime(log_path, "--no-reload", env=env, tree=tree)
    try:
        if runtime is not None:
            runtime.wait_ready()
        stage = load_stage("local", endpoint_url=endpoint or runtime.endpoint)
        probe = PipelineProbe(client(stage, "s3"), client(stage, "dynamodb"),
                              bucket=stage.bucket, table=stage.results_table,
                              timeout=RESULT_TIMEOUT_SECONDS)
        payload = build_payload(lines)
        run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        for i in range(warmup):
            measure(probe, payload, f"logs/bench/{run_id}/warmup-{i}.ndjson", i)
        server = _endpoint_process(runtime) if runtime is not None else None
        cpu_before = _cpu_seconds(server)
        samples = [measure(probe, payload, f"logs/bench/{run_id}/{i:04d}.ndjson", i)
                   for i in range(files)]
        cpu_ms = (_cpu_seconds(server) - cpu_before) * 1000 / files if server else None
    except (BotoCoreError, ClientError) as exc:
        raise BenchError(f"AWS call failed: {exc}") from exc
    except (BackgroundRuntimeError, psutil.Error) as exc:
        raise BenchError(str(exc)) from exc
    finally:
        if runtime is not None:
            runtime.stop()
    return Run(samples, len(payload.body), cpu_ms)


def run(args: argparse.Namespace) -> int:
    before = cpu_check_seconds()
    if not args.endpoint:
        print("bench: starting the local runtime on a free port "
              f"(log: {Path(args.out).with_suffix('.runtime.log')})", flush=True)
    result = measure_files(args.files, args.lines, args.warmup, endpoint=args.endpoint,
                           log_path=Path(args.out).with_suffix(".runtime.log"))
    print(f"bench: CPU check, a Python loop of 3 million additions: {before:.3f} s before the "
          f"run, {cpu_check_seconds():.3f} s after (lower is faster)")
    print(f"bench: {args.files} files of {args.lines} lines ({result.payload_bytes} bytes), one "
          f"after another, after {args.warmup} warm-up files; {platform.node()}, "
          f"{os.cpu_count()} cores, Python {platform.python_version()}")
    for line in summarize(result.samples):
        print(line)
    if result.endpoint_cpu_ms_per_file is not None:
        print(f"endpoint (moto) CPU time per file: {result.endpoint_cpu_ms_per_file:.1f} ms")
    write_csv(Path(args.out), result.samples)
    print(f"bench: raw numbers in {args.out}")
    return 0


def run_reporting(run: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """A bench's run: a BenchError is a message on stderr and status 1, Ctrl-C status 130."""
    try:
        return run(args)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/bench_e2e.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--lines", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--endpoint", default=None,
                        help="a running local runtime (default: start one on a free port)")
    parser.add_argument("--out", default=str(ROOT / "results" / "raw" / "bench_e2e.csv"))
    args = parser.parse_args(argv)
    if args.files < 1 or args.lines < 1 or args.warmup < 0:
        parser.error("--files and --lines must be at least 1, --warmup at least 0")
    return run_reporting(run, args)


if __name__ == "__main__":
    sys.exit(main())
