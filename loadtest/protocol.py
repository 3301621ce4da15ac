"""The comparison protocol: warm-up files, then N iterations over the file sizes, one at a time.

    python -m loadtest.protocol --stage local        # needs a running local runtime
    python -m loadtest.protocol --stage aws          # needs credentials and a deployed stack

Same protocol as the Go pipeline's report (2 warm-up files, 10 iterations x 100/500/1000
lines, sequential), measured with the same probe as the Locust run. One CSV row per file
goes to `results/raw/protocol-<stage>-<UTC stamp>.csv` (or `-o`), with a `.host.json` beside it.
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from loadtest.itemsize import item_size
from loadtest.preflight import TargetError, check_target
from loadtest.samples import (
    RAW_RESULTS_DIR,
    RunContext,
    SampleWriter,
    results_path,
    sample_row,
)
from logctl.stage import StageError, StageLike, as_stage, client, load_stage, session_for
from measure.host import update_host_file
from measure.payloads import DEFAULT_SIZES, Payload, SizeSpecError, build_payloads, parse_sizes
from measure.probe import Measurement, PipelineProbe


def plan(sizes: tuple[int, ...], iterations: int, warmup: int) -> list[tuple[str, int]]:
    """(phase, lines) in run order: warm-ups at the smallest size, then sizes interleaved."""
    steps = [("warmup", min(sizes))] * warmup
    for _ in range(iterations):
        steps.extend(("measure", lines) for lines in sizes)
    return steps


def record_bytes(ddb: Any, table: str, job_id: str) -> int | None:
    """Size of the stored result record (read after the measurement, outside its timing)."""
    try:
        item = ddb.get_item(TableName=table, Key={"job_id": {"S": job_id}},
                            ConsistentRead=True).get("Item")
    except (BotoCoreError, ClientError):
        return None
    return item_size(item) if item else None


def _progress(done: int, total: int, phase: str, label: str, m: Measurement) -> None:
    status = "ok" if m.ok else f"{m.outcome}: {m.reason}"
    tag = " (warm-up)" if phase == "warmup" else ""
    print(f"[{done:>3}/{total}] {label:>11}{tag}  e2e {m.e2e_ms:8.1f} ms  "
          f"upload {m.upload_ms:7.1f} ms  {status}", flush=True)


def run_protocol(stage: StageLike, out: Path, *, sizes: tuple[int, ...], iterations: int,
                 warmup: int, timeout: float) -> tuple[int, int]:
    """Run the protocol and write one row per file; returns (files, failures)."""
    stage = as_stage(stage)
    session = session_for(stage)
    s3 = client(stage, "s3", session)
    ddb = client(stage, "dynamodb", session)
    probe = PipelineProbe(s3, ddb, bucket=stage.bucket, table=stage.results_table,
                          timeout=timeout)
    payloads: dict[int, Payload] = build_payloads(sizes)
    steps = plan(sizes, iterations, warmup)
    context = RunContext(run_id=out.stem, kind="protocol", env=stage.name)
    prefix = f"logs/protocol/{out.stem}-{uuid.uuid4().hex[:8]}"
    failures = 0
    update_host_file(out, {"stage": stage.name, "endpoint": stage.endpoint_url or "aws"})
    with SampleWriter(out) as writer:
        for seq, (phase, lines) in enumerate(steps, start=1):
            payload = payloads[lines]
            m = probe.measure(payload, f"{prefix}/{seq:03d}-{lines}{payload.suffix}")
            size = record_bytes(ddb, stage.results_table, m.job_id) if m.job_id else None
            writer.write(sample_row(context, m, label=payload.label, phase=phase, seq=seq,
                                    record_bytes=size))
            failures += 0 if m.ok else 1
            _progress(seq, len(steps), phase, payload.label, m)
    return len(steps), failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.protocol", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", default=os.environ.get("LOG_STAGE", "local"),
                        help="stage in .chalice/config.json: local or aws (default: LOG_STAGE, "
                        "else local)")
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)),
                        help="file sizes in lines, comma separated")
    parser.add_argument("--iterations", type=int, default=10,
                        help="rounds over the sizes (default 10, the seed's protocol)")
    parser.add_argument("--warmup", type=int, default=2,
                        help="warm-up files before them, not counted (default 2)")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="seconds to wait for each file's final result")
    parser.add_argument("-o", "--output", default=os.environ.get("LOADTEST_OUTPUT", ""),
                        help="raw CSV (default results/raw/protocol-<stage>-<stamp>.csv)")
    parser.add_argument("--optional", action="store_true",
                        help="exit 0, saying why, when the stage cannot be measured")
    args = parser.parse_args(argv)
    if args.iterations < 1 or args.warmup < 0 or args.timeout <= 0:
        parser.error("--iterations must be >= 1, --warmup >= 0 and --timeout > 0")
    try:
        sizes = parse_sizes(args.sizes)
        stage = load_stage(args.stage)
        check_target(stage)
    except TargetError as exc:
        skipped = "skipped: " if args.optional else ""
        print(f"protocol[{args.stage}]: {skipped}{exc}", file=sys.stderr)
        return 0 if args.optional else 2
    except (SizeSpecError, StageError) as exc:
        print(f"protocol[{args.stage}]: {exc}", file=sys.stderr)
        return 2
    out = Path(args.output) if args.output else results_path(RAW_RESULTS_DIR, "protocol",
                                                             stage.name)
    print(f"protocol[{stage.name}]: {args.warmup} warm-up + {args.iterations} x "
          f"{len(sizes)} sizes -> {out}", flush=True)
    try:
        files, failures = run_protocol(stage, out, sizes=sizes, iterations=args.iterations,
                                       warmup=args.warmup, timeout=args.timeout)
    except KeyboardInterrupt:
        print(f"protocol[{stage.name}]: interrupted; rows so far are in {out}", file=sys.stderr)
        return 130
    print(f"protocol[{stage.name}]: {files} files, {failures} failed; raw rows in {out}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
