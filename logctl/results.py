"""Show result records from the results table.

    python -m logctl.results [--stage local] [--limit 20] [--status S] [--key PREFIX] [--json]
    python -m logctl.results [--stage local] --job JOB_ID

The listing is the one GET /jobs serves: Queries on the table's job indexes, newest
first, never a Scan (chalicelib.jobindex). Expired records (expires_at in the past) are
hidden: DynamoDB's TTL deletes lazily.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

from chalicelib.adapters import from_item
from chalicelib.apimodels import MAX_PAGE
from chalicelib.core.schema import Status
from chalicelib.jobindex import JobIndex, listing
from logctl.cli import LogctlError, non_negative_int, run, stage_from, stage_options
from logctl.stage import Stage, StageLike, as_stage
from logctl.stage import client as make_client

COLUMNS = ("CREATED", "KEY", "STATUS", "LINES", "MALFORMED", "ERRORS",
           "P50/P95/P99 MS", "PROC MS", "JOB", "REASON")
STATUSES = tuple(status.value for status in Status)
NUMERIC = {"LINES", "MALFORMED", "ERRORS", "P50/P95/P99 MS", "PROC MS"}


def is_expired(record: dict[str, Any], now: float) -> bool:
    expires_at = record.get("expires_at")
    return expires_at is not None and float(expires_at) < now


def list_results(stage: StageLike, *, limit: int = 20, status: str | None = None,
                 key: str | None = None, now: float | None = None,
                 client: Any = None) -> list[dict[str, Any]]:
    """The newest `limit` live jobs (all of them when limit is 0), as listing rows."""
    stage = as_stage(stage)
    ddb = client or make_client(stage, "dynamodb")
    now = time.time() if now is None else now
    index = JobIndex(ddb, stage.results_table)
    wanted = listing(now, limit=min(limit or MAX_PAGE, MAX_PAGE), status=status, prefix=key)
    records: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page, cursor = index.page(wanted, cursor, now)
        records.extend(page)
        if cursor is None or (limit and len(records) >= limit):
            return records[:limit] if limit else records


def get_result(stage: StageLike, job_id: str, *, now: float | None = None,
               client: Any = None) -> dict[str, Any] | None:
    """One live record by job id, or None."""
    stage = as_stage(stage)
    ddb = client or make_client(stage, "dynamodb")
    item = ddb.get_item(TableName=stage.results_table, Key={"job_id": {"S": job_id}},
                        ConsistentRead=True).get("Item")
    if item is None:
        return None
    record = from_item(item)
    return None if is_expired(record, time.time() if now is None else now) else record


def number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{float(value):.2f}".rstrip("0").rstrip(".")
    return str(value)


def percentiles(record: dict[str, Any]) -> str:
    fields = ("p50_response_time_ms", "p95_response_time_ms", "p99_response_time_ms")
    return "/".join(number(record.get(f)) for f in fields)


def failure_reason(record: dict[str, Any]) -> str:
    return str(record.get("failure_reason") or "")


def short_time(value: Any) -> str:
    if not value:
        return "-"
    return str(value).replace("T", " ").removesuffix("Z")[:19]


def row(record: dict[str, Any]) -> tuple[str, ...]:
    return (
        short_time(record.get("created_at")),
        str(record.get("key", "")),
        str(record.get("status", "")),
        number(record.get("line_count")),
        number(record.get("malformed_count")),
        number(record.get("error_count")),
        percentiles(record),
        number(record.get("processing_time_ms")),
        str(record.get("job_id", "")),
        failure_reason(record),
    )


def render_table(records: Sequence[dict[str, Any]]) -> str:
    rows = [COLUMNS, *(row(r) for r in records)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    lines = []
    for cells in rows:
        padded = [cell.rjust(w) if name in NUMERIC else cell.ljust(w)
                  for name, cell, w in zip(COLUMNS, cells, widths, strict=True)]
        lines.append("  ".join(padded).rstrip())
    return "\n".join(lines)


def nothing_found(stage: Stage, status: str | None, key: str | None) -> str:
    """What was asked and what to try when a listing is empty."""
    asked = [f"status {status}" if status else "", f"a key starting {key!r}" if key else ""]
    if not any(asked):
        return (f"no results in {stage.results_table} (stage {stage.name}): upload a file "
                "under logs/ first (make upload FILE=path)")
    return (f"no results with {' and '.join(a for a in asked if a)} in "
            f"{stage.results_table} (stage {stage.name}): `make results` without STATUS= or "
            "KEY= lists every record")


def to_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m logctl.results", description=__doc__, parents=[stage_options()],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--job", help="print this job's record as JSON")
    parser.add_argument("--limit", type=non_negative_int, default=20,
                        help="newest N records (0: all; default 20)")
    parser.add_argument("--status", choices=STATUSES, help="only jobs with this status")
    parser.add_argument("--key", metavar="PREFIX", help="only jobs whose key starts with PREFIX")
    parser.add_argument("--json", action="store_true",
                        help="print the listed rows as JSON (--job: the whole record)")
    args = parser.parse_args(argv)

    def body() -> int:
        stage = stage_from(args)
        if args.job:
            record = get_result(stage, args.job)
            if record is None:
                raise LogctlError(f"no result for job {args.job} in {stage.results_table}")
            print(to_json(record))
            return 0
        records = list_results(stage, limit=args.limit, status=args.status, key=args.key)
        if args.json:
            print(to_json(records))
        elif records:
            print(render_table(records))
        else:
            print(nothing_found(stage, args.status, args.key))
        return 0

    return run("results", body)


if __name__ == "__main__":
    sys.exit(main())
