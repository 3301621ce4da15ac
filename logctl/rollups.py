"""Recompute the rollups of a range of hours from the result records still in the table.

    python -m logctl.rollups rebuild --stage local --since 2026-12-01T00:00Z [--until ...]

The range widens to whole UTC hours. Every rollup item of those hours (hours and endpoints,
both sources) is replaced by the sum of f(record) over the records in the results table
(chalicelib.core.rollup); hour items of the former upload-hour layout (`series` = hourly) in
the range are folded in for hours whose records have expired (older than 7 days) and then
deleted, which migrates them. Records expire after 7 days: a rebuild of older hours keeps only
what the former items knew (files, lines, levels and codes by upload hour, no latency).

Run it while no file of those hours is being processed: a stream update that lands on an item
between its read and its rewrite here is overwritten.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.adapters import from_item, to_item
from chalicelib.core.jobs import Source
from chalicelib.core.results import TTL_SECONDS
from chalicelib.core.rollup import (
    CODE_PREFIX,
    ENDPOINTS,
    HOURS,
    LEVEL_PREFIX,
    LEVELS,
    NAME,
    Contribution,
    Delta,
    Target,
    contribution,
    days_of,
    expires_at,
    hour_list,
    hours_target,
    whole_hours,
)
from logctl.cli import run, stage_from, stage_options
from logctl.stage import Stage, client

LEGACY_SERIES = "hourly"


@dataclass
class Rebuilt:
    hours: int
    records: int
    items_written: int
    items_deleted: int
    legacy_migrated: int


def scan(ddb: Any, table: str) -> Iterator[dict[str, Any]]:
    kwargs: dict[str, Any] = {"TableName": table}
    while True:
        page = ddb.scan(**kwargs)
        yield from (from_item(item) for item in page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            return
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def query(ddb: Any, table: str, series: str) -> Iterator[dict[str, Any]]:
    kwargs: dict[str, Any] = {"TableName": table, "KeyConditionExpression": "series = :s",
                              "ExpressionAttributeValues": {":s": {"S": series}}}
    while True:
        page = ddb.query(**kwargs)
        yield from (from_item(item) for item in page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            return
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def legacy_delta(item: dict[str, Any]) -> Delta:
    """What a former upload-hour item knew, as counters of an hour item (source upload)."""
    delta = Delta()
    for kind in ("received", "completed", "failed"):
        delta.add(f"files_{kind}", int(item.get(f"files_{kind}", 0)))
    malformed = int(item.get("malformed", 0))
    delta.add("malformed", malformed)
    delta.add("records", int(item.get("lines", 0)) - malformed)
    for level in LEVELS:
        delta.add(LEVEL_PREFIX + level, int(item.get(f"level_{level}", 0)))
    for name, value in item.items():
        if name.startswith(CODE_PREFIX):
            delta.add(name, int(value))
    return delta


def rebuild(stage: Stage, since: datetime, until: datetime, now: datetime) -> Rebuilt:
    ddb = client(stage, "dynamodb")
    start, end = whole_hours(since, until)
    hours = set(hour_list(start, end))
    days = days_of(start, end - timedelta(hours=1))
    wanted: Contribution = {}
    records = 0
    for record in scan(ddb, stage.results_table):
        records += 1
        for target, delta in contribution(record).items():
            if target.hour_text in hours:
                total = wanted.setdefault(target, Delta(name=delta.name))
                for counter, value in delta.counters.items():
                    total.add(counter, value)
    expired_before = (now - timedelta(seconds=TTL_SECONDS)).strftime("%Y-%m-%dT%H")
    legacy = [item for item in query(ddb, stage.stats_table, LEGACY_SERIES)
              if item["hour"] in hours]
    for item in legacy:
        if item["hour"] < expired_before:
            total = wanted.setdefault(hours_target(item["hour"], Source.UPLOAD), Delta())
            for counter, value in legacy_delta(item).counters.items():
                total.add(counter, value)
    deleted = 0
    for day in days:
        for kind in (HOURS, ENDPOINTS):
            for item in query(ddb, stage.stats_table, f"{kind}#{day}"):
                target = Target(item["series"], item["hour"])
                if target.hour_text in hours and target not in wanted:
                    ddb.delete_item(TableName=stage.stats_table,
                                    Key={"series": {"S": target.series},
                                         "hour": {"S": target.hour}})
                    deleted += 1
    for item in legacy:
        ddb.delete_item(TableName=stage.stats_table,
                        Key={"series": {"S": LEGACY_SERIES}, "hour": {"S": item["hour"]}})
        deleted += 1
    for target, delta in wanted.items():
        values: dict[str, Any] = {"series": target.series, "hour": target.hour,
                                  "expires_at": expires_at(target), **delta.counters}
        if delta.name is not None:
            values[NAME] = delta.name
        ddb.put_item(TableName=stage.stats_table, Item=to_item(values))
    return Rebuilt(len(hours), records, len(wanted), deleted, len(legacy))


def _moment(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m logctl.rollups", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="{rebuild}")
    command = commands.add_parser("rebuild", parents=[stage_options()],
                                  help="recompute a range of hours from the result records")
    command.add_argument("--since", type=_moment, required=True,
                         help="first hour (ISO 8601; no offset means UTC)")
    command.add_argument("--until", type=_moment, default=None,
                         help="last hour (default: now)")
    args = parser.parse_args(argv)

    def body() -> int:
        now = datetime.now(UTC)
        done = rebuild(stage_from(args), args.since, args.until or now, now)
        print(f"rebuilt {done.hours} hours from {done.records} records: "
              f"{done.items_written} items written, {done.items_deleted} deleted "
              f"({done.legacy_migrated} upload-hour items of the former layout)")
        return 0

    return run("rollups", body)


if __name__ == "__main__":
    sys.exit(main())
