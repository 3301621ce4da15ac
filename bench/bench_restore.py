"""How long a runtime with a large saved state takes to start, and what a save costs.

    python bench/bench_restore.py [--records 10000] [--megabytes 500]   (or: make bench-restore)

Starts `python -m localruntime --state DIR` (a temporary folder) on a free port, processes
one log file through the pipeline, copies its result record until the results table holds
--records of them, and uploads --megabytes of objects (1 MiB each, random, under `bench/`
so the pipeline leaves them alone). It then asks the endpoint to save twice (everything new,
then after one more item: the cost of a periodic save), stops the runtime (the save at a stop),
and starts it again on the same folder, timing the start from the process's launch to its
`ready` line, beside a start with no state. Prints the figures and the CPU check (a plain loop
of 3 million additions: the machine is shared, and a slow check means a slow machine). Exits 1
when the restored state is not what was saved.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from localruntime.background import BackgroundRuntime, BackgroundRuntimeError
from localruntime.statefolder import EndpointState
from logctl.generate import generate_lines
from logctl.stage import Stage, client, load_stage
from measure.host import cpu_check_seconds

MIB = 1024 * 1024
RESULT_TIMEOUT_SECONDS = 60.0
BATCH_WRITE_MAX = 25
TARGET_READY_SECONDS = 10.0


class BenchError(Exception):
    """The benchmark could not run; the message says why."""


def first_record(stage: Stage) -> dict[str, Any]:
    """One real result record: a log file through the pipeline."""
    s3, ddb = client(stage, "s3"), client(stage, "dynamodb")
    s3.put_object(Bucket=stage.bucket, Key="logs/bench/restore.ndjson",
                  Body=b"".join(generate_lines(1000, seed=1)))
    deadline = time.monotonic() + RESULT_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        items = ddb.scan(TableName=stage.results_table, ConsistentRead=True)["Items"]
        if items and items[0]["status"]["S"] == "completed":
            return dict(items[0])
        time.sleep(0.2)
    raise BenchError("the pipeline did not complete the first file")


def fill(stage: Stage, records: int, megabytes: int) -> None:
    ddb, s3 = client(stage, "dynamodb"), client(stage, "s3")
    template = first_record(stage)
    for start in range(1, records, BATCH_WRITE_MAX):
        requests = [{"PutRequest": {"Item": {**template, "job_id": {"S": f"bench-{n:06}"}}}}
                    for n in range(start, min(records, start + BATCH_WRITE_MAX))]
        while requests:
            answer = ddb.batch_write_item(RequestItems={stage.results_table: requests})
            requests = answer.get("UnprocessedItems", {}).get(stage.results_table, [])
    for n in range(megabytes):
        s3.put_object(Bucket=stage.bucket, Key=f"bench/object-{n:05}.bin", Body=os.urandom(MIB))


def start(log: Path, *args: str) -> tuple[BackgroundRuntime, float]:
    started = time.monotonic()
    runtime = BackgroundRuntime(log, "--no-reload", *args)
    try:
        runtime.wait_ready(timeout=300)
    except BackgroundRuntimeError:
        runtime.stop()
        raise
    return runtime, time.monotonic() - started


def run(records: int, megabytes: int, work: Path) -> int:
    state = work / "state"
    cpu_before = cpu_check_seconds()
    fresh, fresh_ready = start(work / "fresh.log")
    fresh.stop()
    runtime, _ = start(work / "fill.log", "--state", str(state))
    try:
        stage = load_stage("local", endpoint_url=runtime.endpoint)
        filled = time.monotonic()
        fill(stage, records, megabytes)
        print(f"filled {records:,} records and {megabytes:,} MiB of objects in "
              f"{time.monotonic() - filled:.1f} s", flush=True)
        endpoint = EndpointState(runtime.endpoint)
        first = endpoint.save({})  # what the runtime's own saves during the fill left
        client(stage, "dynamodb").put_item(TableName=stage.results_table,
                                           Item={"job_id": {"S": "bench-one-more"}})
        periodic = endpoint.save({})
    finally:
        stopped = time.monotonic()
        runtime.stop()
        stop_seconds = time.monotonic() - stopped
    restored, restored_ready = start(work / "restored.log", "--state", str(state))
    try:
        described = EndpointState(restored.endpoint).describe()["restored"]
        stage = load_stage("local", endpoint_url=restored.endpoint)
        table = client(stage, "dynamodb").describe_table(TableName=stage.results_table)
        items = table["Table"]["ItemCount"]
    finally:
        restored.stop()
    cpu_after = cpu_check_seconds()
    size = sum(p.stat().st_size for p in state.rglob("*") if p.is_file())
    summary = described["summary"]
    bodies = len(list((state / "bodies").iterdir()))
    print(f"state folder: {size / 1e6:,.0f} MB ({first['snapshot_bytes'] / 1e6:,.1f} MB "
          f"snapshot, {bodies:,} object bodies)")
    print(f"save after the fill: {first['seconds']:.2f} s in the snapshot process, "
          f"{first['new_bodies']:,} bodies the runtime's saves had not written yet, endpoint "
          f"paused {first['paused_ms']:.0f} ms")
    print(f"periodic save (one item changed): {periodic['seconds']:.2f} s in the snapshot "
          f"process, {periodic['new_bodies']} new bodies, endpoint paused "
          f"{periodic['paused_ms']:.0f} ms")
    print(f"stop (with its save): {stop_seconds:.2f} s")
    print(f"restore in the endpoint: {described['seconds']:.2f} s "
          f"({summary['items']:,} items, {summary['object_versions']:,} object versions, "
          f"{summary['object_bytes'] / 1e6:,.0f} MB)")
    print(f"| start | ready after | ratio |\n|---|---:|---:|\n"
          f"| no state | {fresh_ready:.2f} s | 1.00 |\n"
          f"| {records:,} records + {megabytes:,} MiB restored | {restored_ready:.2f} s | "
          f"{restored_ready / fresh_ready:.2f} |")
    print(f"CPU check: {cpu_before:.2f} s before, {cpu_after:.2f} s after "
          "(0.10-0.18 s on a quiet 2-vCPU VM)")
    if items != records + 1:  # the records and the one more
        print(f"bench-restore: the restored table has {items:,} items, expected "
              f"{records + 1:,}", file=sys.stderr)
        return 1
    met = "met" if restored_ready <= TARGET_READY_SECONDS else "not met"
    print(f"target: ready within {TARGET_READY_SECONDS:g} s of the launch: {met}; the restore "
          f"adds {restored_ready - fresh_ready:+.2f} s to a start with no state")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--megabytes", type=int, default=500, help="MiB of objects")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-restore-") as work:
        try:
            return run(args.records, args.megabytes, Path(work))
        except (BenchError, BackgroundRuntimeError, BotoCoreError, ClientError) as exc:
            print(f"bench-restore: {exc}", file=sys.stderr)
            return 1


if __name__ == "__main__":
    sys.exit(main())
