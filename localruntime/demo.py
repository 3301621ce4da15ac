"""The whole pipeline in one command: start the local runtime, process sample files, stop.

    python -m localruntime.demo [--data demo-data]      (or: make demo)

Generates log files of 100, 500 and 1,000 lines, one with malformed lines and one gzip
file, uploads them one after another, waits for each result record, prints a table,
and stops the runtime. Exits 1 if any file did not complete.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chalicelib.core.results import epoch
from localruntime.background import PROJECT_ROOT, BackgroundRuntime, BackgroundRuntimeError
from logctl.cli import run as run_command
from logctl.generate import write_log_file
from logctl.stage import load_stage
from logctl.upload import upload_file, wait_for_result

RESULT_TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True)
class Sample:
    name: str
    lines: int
    malformed_rate: float = 0.0
    gzip: bool = False


SAMPLES = (
    Sample("logs-100.ndjson", 100),
    Sample("logs-500.ndjson", 500),
    Sample("logs-1000.ndjson", 1000),
    Sample("logs-1000-malformed.ndjson", 1000, malformed_rate=0.05),
    Sample("logs-1000.ndjson.gz", 1000, gzip=True),
)
# What the files say (counted from their lines) and what the pipeline took, told apart.
FROM_LOGS = ("lines", "malformed", "errors", "p50/p95/p99 ms")
FROM_PIPELINE = ("worker ms", "upload to result ms")
COLUMNS = ("file", "status", *FROM_LOGS, *FROM_PIPELINE)
LEGEND = ("from the logs: lines, malformed and ERROR lines, and the percentiles of their "
          "response_time_ms;\nfrom the pipeline: worker ms (the worker's processing_time_ms) "
          "and upload to result ms (upload start to the record's completed_at)")


def _number(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:g}" if isinstance(value, float) else str(value)


def row(name: str, record: dict[str, Any], uploaded: float) -> tuple[str, ...]:
    """`uploaded`: epoch seconds when the upload started; the record says when it ended."""
    percentiles = "/".join(_number(record.get(f"p{p}_response_time_ms")) for p in (50, 95, 99))
    status = record.get("status", "?")
    if record.get("failure_reason"):
        status += f" ({record['failure_reason']})"
    return (name, status, _number(record.get("line_count")),
            _number(record.get("malformed_count")), _number(record.get("error_count")),
            percentiles, _number(record.get("processing_time_ms")),
            f"{(epoch(record['completed_at']) - uploaded) * 1000:.0f}")


def table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in [COLUMNS, *rows]) for i in range(len(COLUMNS))]
    groups = {"": 2, "from the logs": len(FROM_LOGS), "from the pipeline": len(FROM_PIPELINE)}
    spans, start = [], 0
    for title, count in groups.items():
        width = sum(widths[start:start + count]) + 2 * (count - 1)
        spans.append(title.center(width, "-") if title else " " * width)
        start += count
    lines = ["  ".join(spans).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
              for r in [COLUMNS, *rows]]
    lines.insert(2, "  ".join("-" * w for w in widths))
    return "\n".join([*lines, "", LEGEND])


def write_samples(data: Path) -> list[Path]:
    """The sample files, the same bytes every time: the README's examples use them."""
    return [write_log_file(data / s.name, s.lines, malformed_rate=s.malformed_rate,
                           gzip=s.gzip, seed=index + 1) for index, s in enumerate(SAMPLES)]


def run(data: Path) -> int:
    paths = write_samples(data)
    runtime = BackgroundRuntime(data / "runtime.log", "--no-reload")
    print(f"demo: starting the local runtime on {runtime.endpoint} (log: {runtime.log_path})",
          flush=True)
    rows: list[tuple[str, ...]] = []
    failed = 0
    with runtime:
        stage = load_stage("local", endpoint_url=runtime.endpoint)
        for path in paths:
            upload = upload_file(stage, path)
            record = wait_for_result(stage, upload.job_id, RESULT_TIMEOUT_SECONDS)
            rows.append(row(upload.key, record, upload.started))
            failed += record.get("status") != "completed"
    print(table(rows))
    if failed:
        print(f"demo: {failed} of {len(paths)} files did not complete; see "
              f"{runtime.log_path}", file=sys.stderr)
        return 1
    print(f"demo: {len(paths)} files processed; the runtime has stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localruntime.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=PROJECT_ROOT / "demo-data",
                        help="where the sample files and the runtime log go")
    args = parser.parse_args(argv)
    return run_command("demo", lambda: run(args.data), (BackgroundRuntimeError,))


if __name__ == "__main__":
    sys.exit(main())
