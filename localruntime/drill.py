"""The fault drill: jobs fail into the dead-letter queue, the fault is cleared, a redrive
completes them.

    python -m localruntime.drill [--files 3] [--lines 200] [--timeout 120]
    python -m localruntime.drill --running [--endpoint-url URL]    on a running runtime

(or `make fault-drill`, and `make fault-drill RUNNING=1` on the runtime `make local` runs).
Each step is a command a person can type against `make local`, and the drill prints it:

1. `python -m logctl faults set s3_get_reset=1`: every GetObject the worker makes is cut off
   mid-body. The SDK does not retry a broken body, so each attempt fails (a rate below 1, or
   a fault the SDK retries, would mostly be absorbed by the SDK's own retries).
2. upload the files (`make upload FILE=...`);
3. each job fails 5 times with back-off; its record ends `failed: retries_exhausted` and
   its message moves to the dead-letter queue (`make dlq`);
4. `python -m logctl faults clear`, then `make redrive`;
5. every job ends `completed` (`make results`).

Without --running it starts its own runtime, with retries 0.2 s apart instead of 1 s,
and stops it at the end (docs/guarantees.md says how long each takes). On a running
runtime it refuses to start when faults are in force or the dead-letter queue is not
empty (it redrives the whole queue).
Exits 1 unless every file went into the dead-letter queue and then completed.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from localruntime.background import BackgroundRuntime, BackgroundRuntimeError
from logctl import dlq
from logctl import faults as fault_control
from logctl.cli import LogctlError, positive_int, run
from logctl.generate import write_log_file
from logctl.results import get_result
from logctl.stage import Stage, load_stage
from logctl.stage import client as make_client
from logctl.upload import Upload, outcome, upload_file, wait_for_result

FAULT = "s3_get_reset=1"
OWN_RUNTIME_ARGS = ("--no-reload", "--set", "RETRY_BASE_SECONDS=0.2")
POLL_SECONDS = 0.5


class DrillFailed(LogctlError):
    """A step did not end as the drill expects; the message says which."""


def step(text: str) -> None:
    print(f"\n== {text}", flush=True)


def wait_for(condition: Callable[[], Any], deadline: float, what: str) -> Any:
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise DrillFailed(f"timed out waiting for {what}")
        time.sleep(POLL_SECONDS)


@contextlib.contextmanager
def runtime_for(running: bool, endpoint_url: str | None, log_dir: Path) -> Iterator[Stage]:
    """The running runtime (found as the tools find it), or one started for the drill."""
    if running:
        yield load_stage("local", endpoint_url=endpoint_url)
        return
    runtime = BackgroundRuntime(log_dir / "runtime.log", *OWN_RUNTIME_ARGS)
    print(f"drill: starting a local runtime on {runtime.endpoint} (log: {runtime.log_path})",
          flush=True)
    with runtime:
        yield load_stage("local", endpoint_url=runtime.endpoint)


def check_quiet(stage: Stage) -> None:
    """A running runtime must have no faults in force and an empty dead-letter queue."""
    state = fault_control.show(stage)
    if state["rates"]:
        raise DrillFailed(f"faults are in force ({fault_control.describe(state)}): clear them "
                          "first (python -m logctl faults clear)")
    waiting, _ = dlq.peek(stage, limit=1)
    if waiting.visible or waiting.in_flight:
        raise DrillFailed(f"{stage.dead_letter_queue} already holds "
                          f"{waiting.visible + waiting.in_flight} messages: redrive or purge "
                          "them first (the drill redrives the whole queue)")


def drill(stage: Stage, paths: list[Path], timeout: float) -> int:
    deadline = time.monotonic() + timeout
    sqs = make_client(stage, "sqs")
    dlq_url = dlq.queue_url(sqs, stage.dead_letter_queue)
    prefix = f"logs/drill/{time.strftime('%Y%m%dT%H%M%S')}/"

    step(f"1. python -m logctl faults set {FAULT}")
    print("\n".join(fault_control.report(stage, fault_control.set_rates(stage, [FAULT]))))
    uploads: list[Upload] = []
    try:
        step(f"2. upload {len(paths)} files under {prefix}")
        for path in paths:
            uploads.append(upload_file(stage, path, key=prefix + path.name))
            print(f"{uploads[-1].key}  {uploads[-1].job_id}", flush=True)

        step("3. each job fails 5 times, then its message goes to the dead-letter queue")
        for upload in uploads:
            record = wait_for_result(stage, upload.job_id, max(1.0, deadline - time.monotonic()))
            print(outcome(upload.key, record), flush=True)
            if not str(record.get("failure_reason") or "").startswith("retries_exhausted"):
                raise DrillFailed(f"{upload.key} ended {record.get('status')} without "
                                  "exhausting its retries")
        wait_for(lambda: dlq.depth(sqs, dlq_url).visible >= len(uploads), deadline,
                 f"{len(uploads)} messages in {stage.dead_letter_queue}")
        step("   make dlq")
        print("\n".join(dlq.show_lines(stage, *dlq.peek(stage, limit=len(uploads)))))
    finally:
        step("4. python -m logctl faults clear")
        print("\n".join(fault_control.report(stage, fault_control.clear(stage))))

    step("   make redrive")
    moved = dlq.redrive(stage)
    print(f"moved {moved.moved} messages from {stage.dead_letter_queue} to {stage.jobs_queue}")

    step("5. every job completes")

    def all_completed() -> list[dict[str, Any]] | None:
        records = [get_result(stage, upload.job_id) for upload in uploads]
        done = all(r is not None and r.get("status") == "completed" for r in records)
        return [r for r in records if r is not None] if done else None

    records = wait_for(all_completed, deadline, "the redriven jobs to complete")
    for upload, record in zip(uploads, records, strict=True):
        print(f"{outcome(upload.key, record)}  attempts={record.get('attempts')}")
    print(f"\ndrill: {len(uploads)} files went to the dead-letter queue under {FAULT} and "
          "completed after the fault was cleared and the queue redriven")
    return 0


def run_drill(files: int, lines: int, timeout: float, running: bool = False,
              endpoint_url: str | None = None) -> int:
    with tempfile.TemporaryDirectory(prefix="fault-drill-") as scratch:
        directory = Path(scratch)
        paths = [write_log_file(directory / f"drill-{n}.ndjson", lines, seed=n)
                 for n in range(1, files + 1)]
        with runtime_for(running, endpoint_url, directory) as stage:
            if running:
                check_quiet(stage)
            return drill(stage, paths, timeout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localruntime.drill", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=positive_int, default=3, help="files to upload")
    parser.add_argument("--lines", type=positive_int, default=200, help="lines per file")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="seconds for the whole drill (default 120)")
    parser.add_argument("--running", action="store_true",
                        help="drill on the running runtime (make local) instead of starting one")
    parser.add_argument("--endpoint-url", default=None,
                        help="with --running: its endpoint (default: as the tools find it)")
    args = parser.parse_args(argv)
    if args.endpoint_url and not args.running:
        parser.error("--endpoint-url goes with --running")
    return run("drill", lambda: run_drill(args.files, args.lines, args.timeout, args.running,
                                          args.endpoint_url), (BackgroundRuntimeError,))


if __name__ == "__main__":
    sys.exit(main())
