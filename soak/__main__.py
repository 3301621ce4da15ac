"""Soak the pipeline: drive a mixed workload through a local runtime with faults injected,
wait until every queue is empty, reconcile, print one table.

    python -m soak [--files 1000] [--seed 1] [--scale full|small] [--fault KIND=RATE ...]
                   [--drain-timeout 900] [--out DIR] [--json PATH]

Exit status 0 when nothing is lost, duplicated, wrong or stuck, every line put into the
ingest stream is counted once, and the rollups equal the records; 1 otherwise; 2 when the
run could not be carried out. The runtime's log (every fault and invocation) is kept in
DIR (default .soak/<time>/).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from chalicelib.adapters import from_item
from chalicelib.rollups import DynamoRollupItems, RollupReader
from localruntime.background import BackgroundRuntime, BackgroundRuntimeError
from localruntime.faults import KINDS, FaultPlan, FaultSpecError, count_faults
from localruntime.sources.wiring import s3_queue_name
from logctl.stage import load_stage
from soak import workload
from soak.drive import Driver, drain_messages, queue_depth, stderr
from soak.reconcile import (
    Figures,
    expected_rollups,
    expected_statistics,
    final_writes,
    reconcile,
    reconcile_rollups,
    reconcile_stream,
    rollup_figures,
    settle_rollups,
    stream_lines_recorded,
    table,
)

# Handler calls fail this often at the endpoint (the SDK's retries absorb most), and the
# stream pollers' reads as often; a few invocations are killed; notifications come twice
# or late.
DEFAULT_FAULTS = ("s3_get_500=0.1,s3_get_slowdown=0.1,s3_get_reset=0.05,ddb_throughput=0.15,"
                  "ddb_500=0.1,sqs_send_500=0.2,sqs_visibility_500=0.2,kill=0.02,"
                  "s3_duplicate=0.05,s3_delay=0.05,stream_read_500=0.1,stream_read_throttle=0.1,"
                  "stream_iterator_expired=0.05")
WORKER_TIMEOUT_SECONDS = 20
REFERENCE_PROCESSES = 2
# Once the queues are empty: how long the streamed events' objects may take to be recorded,
# and how long the rollups may come no closer to the records (under DynamoDB faults the
# rollups handler retries batches of up to 100 changes, each of many conditional writes)
# before the soak reconciles anyway; at most --drain-timeout in all.
STREAM_WAIT_SECONDS = 180.0
ROLLUP_STALL_SECONDS = 120.0


def runtime_args(plan: FaultPlan) -> list[str]:
    args = ["--no-reload", "--timeout", f"worker={WORKER_TIMEOUT_SECONDS}",
            "--set", f"WORKER_TIMEOUT_SECONDS={WORKER_TIMEOUT_SECONDS}",
            "--fault-seed", str(plan.seed)]
    for kind, rate in sorted(plan.rates.items()):
        args += ["--fault", f"{kind}={rate}"]
    return args


def _client(service: str, endpoint: str) -> Any:
    return boto3.session.Session(
        aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1",
    ).client(service, endpoint_url=endpoint, config=Config(
        retries={"max_attempts": 5, "mode": "standard"}, max_pool_connections=16,
        read_timeout=120))


def scan_records(dynamodb: Any, table_name: str) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": table_name, "ConsistentRead": True}
    while True:
        page = dynamodb.scan(**kwargs)
        records += [from_item(item) for item in page.get("Items", [])]
        if "LastEvaluatedKey" not in page:
            return records
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def read_rollups(dynamodb: Any, table_name: str, days: list[str]) -> Figures:
    start = datetime.fromisoformat(days[0]).replace(tzinfo=UTC)
    end = datetime.fromisoformat(days[-1]).replace(tzinfo=UTC) + timedelta(days=1)
    return rollup_figures(RollupReader(DynamoRollupItems(dynamodb, table_name)).hours(start, end))


def wait_for_stream(driver: Driver, dynamodb: Any, table_name: str, timeout: float
                    ) -> list[dict[str, Any]]:
    """The records once the streamed objects' records count every line put and none is
    still running, or after `timeout` seconds; the queues are empty at each check."""
    deadline = time.monotonic() + timeout
    while True:
        records = scan_records(dynamodb, table_name)
        lines, pending = stream_lines_recorded(records)
        if (lines >= driver.stream_lines and not pending) or time.monotonic() >= deadline:
            return records
        stderr(f"soak: {lines:,} of {driver.stream_lines:,} streamed lines recorded, "
               f"{pending} streamed object(s) not completed; waiting")
        time.sleep(3.0)
        driver.wait_quiet(max(0.0, deadline - time.monotonic()))


def peak_worker_rss(log_lines: list[str]) -> int:
    peak = 0
    for line in log_lines:
        if not line.startswith('{"ts"') or '"invocation"' not in line:
            continue
        record = json.loads(line)
        if record.get("function") == "worker":
            peak = max(peak, int(record.get("max_memory_used_mb") or 0))
    return peak


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m soak", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=1000, help="regular uploads (default 1000)")
    parser.add_argument("--seed", type=int, default=1, help="workload and fault seed")
    parser.add_argument("--scale", choices=("full", "small"), default="full",
                        help="sizes of the hostile files (small: for the smoke test)")
    parser.add_argument("--fault", action="append", default=None, metavar="KIND=RATE",
                        help=f"fault rates (default {DEFAULT_FAULTS}); kinds: {', '.join(KINDS)}")
    parser.add_argument("--drain-timeout", type=float, default=900.0,
                        help="seconds to wait for the queues to empty (default 900)")
    parser.add_argument("--out", type=Path, default=None, help="directory for the run's log")
    parser.add_argument("--json", type=Path, default=None, help="also write the report here")
    args = parser.parse_args(argv)
    if args.files < 0:
        parser.error("--files must be >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        faults = FaultPlan.parse(args.fault if args.fault is not None else [DEFAULT_FAULTS],
                                 seed=args.seed)
    except FaultSpecError as exc:
        print(f"soak: {exc}", file=sys.stderr)
        return 2
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = args.out or Path(".soak") / stamp
    scale = workload.FULL if args.scale == "full" else workload.SMALL
    plan = workload.plan(args.files, args.seed, scale)
    started = time.monotonic()
    runtime = BackgroundRuntime(out / "runtime.log", *runtime_args(faults))
    try:
        runtime.wait_ready()
        report = soak(runtime, plan, args, faults)
    except (BackgroundRuntimeError, RuntimeError) as exc:
        print(f"soak: {exc}", file=sys.stderr)
        return 2
    finally:
        runtime.stop()
    minutes, seconds = divmod(round(time.monotonic() - started), 60)
    title = (f"soak: {args.files:,} regular files + {len(workload.hostile_steps(scale, 0))} "
             f"hostile ({args.scale}) + {plan.count('stream')} batches of streamed events, "
             f"seed {args.seed}, {minutes} min {seconds} s; "
             f"log {out / 'runtime.log'}")
    print(table(report, title=title))
    for problem in report.problems[:50]:
        print(f"  {problem}", file=sys.stderr)
    if len(report.problems) > 50:
        print(f"  ... and {len(report.problems) - 50} more", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(dataclasses.asdict(report), indent=2))
    return 0 if report.ok else 1


def soak(runtime: BackgroundRuntime, plan: workload.Plan, args: argparse.Namespace,
         faults: FaultPlan) -> Any:
    stage = load_stage("local", endpoint_url=runtime.endpoint)
    s3, sqs = _client("s3", runtime.endpoint), _client("sqs", runtime.endpoint)
    dynamodb = _client("dynamodb", runtime.endpoint)
    driver = Driver(stage, s3, sqs, stderr, kinesis=_client("kinesis", runtime.endpoint))
    stderr(f"soak: {len(plan.steps)} steps against {runtime.endpoint}")
    driver.run(plan, args.seed)
    stderr(f"soak: {driver.uploads} uploads done; computing the reference of each file "
           "while the queues empty")
    # The reference of every file that may complete, computed while the pipeline drains.
    specs = sorted({v.spec for v in driver.versions if v.record}, key=repr)
    with ProcessPoolExecutor(REFERENCE_PROCESSES, initializer=os.nice, initargs=(10,)) as pool:
        futures = {spec: pool.submit(expected_statistics, spec) for spec in specs}
        if not driver.wait_quiet(args.drain_timeout):
            stderr(f"soak: the queues were not empty after {args.drain_timeout:g} s; "
                   "reconciling anyway")
        records = wait_for_stream(driver, dynamodb, stage.results_table, STREAM_WAIT_SECONDS)
        expected_hours = expected_rollups(records)
        days = sorted({hour[:10] for hour, _ in expected_hours}
                      | {datetime.now(UTC).date().isoformat()})
        stderr("soak: waiting for the rollups to take the final records")
        rollup_differences = settle_rollups(
            expected_hours, lambda: read_rollups(dynamodb, stage.stats_table, days),
            stall=ROLLUP_STALL_SECONDS, timeout=args.drain_timeout)
        dlq = drain_messages(sqs, stage.dead_letter_queue)
        failed_events = sum(queue_depth(sqs, s3_queue_name("trigger") + "-failed").values())
        log_lines = runtime.log().splitlines()
        stderr("soak: the pipeline is quiet; reconciling")
        expected = {spec: future.result() for spec, future in futures.items()}
    report = reconcile(driver.versions, records, uploads=driver.uploads,
                       garbage_sent=driver.garbage_sent, dlq_bodies=dlq,
                       final_writes=final_writes(log_lines), expected=expected.__getitem__)
    reconcile_stream(report, records, lines_put=driver.stream_lines,
                     lines_unsent=driver.stream_unsent)
    reconcile_rollups(report, expected_hours, rollup_differences)
    report.faults = {kind: count for kind, count in count_faults(log_lines).items()}
    report.trigger_failed_events = failed_events
    report.peak_worker_rss_mb = peak_worker_rss(log_lines)
    return report


if __name__ == "__main__":
    sys.exit(main())
