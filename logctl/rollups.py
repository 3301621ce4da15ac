"""Recompute the rollups of a range of hours from the result records still in the table.

    python -m logctl.rollups rebuild --stage local --since 2026-12-01T00:00Z [--until ...]

The range widens to whole UTC hours. Every hour of the range (day items' hours and endpoint
items, both sources) is replaced by the sum of f(record) over the records in the results
table (chalicelib.core.rollup); the hours of a day item outside the range are kept.

Items of the former layouts in the range are folded in for hours whose records have expired
(older than 7 days) and then deleted, which migrates them: upload-hour items (`series` =
hourly: files, lines, levels and codes by upload hour, no latency) and items of one hour each
in day partitions (`hours#YYYY-MM-DD`, `endpoints#YYYY-MM-DD`, counters as attributes).

Run it while no file of those hours is being processed: a record that changes between the
scan here and the rewrite is counted by the scan and by the stream.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.adapters import from_item
from chalicelib.core.eventtime import OTHER
from chalicelib.core.jobs import Source
from chalicelib.core.results import TTL_SECONDS
from chalicelib.core.rollup import (
    ENDPOINTS,
    HOURS,
    LEVELS,
    NAMED,
    Contribution,
    Figures,
    Target,
    add_into,
    contribution,
    day_target,
    endpoints_target,
    expires_at,
    fold,
    hour_list,
    item_hour,
    whole_hours,
)
from chalicelib.rollups import DynamoRollupItems, Edited, Rewritten
from logctl.cli import run, stage_from, stage_options
from logctl.stage import Stage, client

LEGACY_SERIES = "hourly"
FORMER_BIN, FORMER_CODE, FORMER_LEVEL, FORMER_NAME = "b_", "sc_", "level_", "endpoint"
FORMER_PLAIN = ("files_received", "files_completed", "files_failed", "malformed",
                "out_of_range", "records", "rt_sum")


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


def legacy_delta(item: dict[str, Any]) -> Contribution:
    """What an upload-hour item knew, as a day item's delta (source upload)."""
    malformed = int(item.get("malformed", 0))
    figures: Figures = {f"files_{kind}": int(item.get(f"files_{kind}", 0))
                        for kind in ("received", "completed", "failed")}
    figures["malformed"] = malformed
    figures["records"] = int(item.get("lines", 0)) - malformed
    figures["levels"] = {level: int(item.get(FORMER_LEVEL + level, 0)) for level in LEVELS}
    figures["codes"] = {name[len(FORMER_CODE):]: int(value) for name, value in item.items()
                        if name.startswith(FORMER_CODE)}
    hour = str(item["hour"])
    delta: Figures = {}
    add_into(delta, {hour[11:13]: figures})
    return {day_target(hour, Source.UPLOAD): delta} if delta else {}


def former_delta(item: dict[str, Any]) -> tuple[str, Contribution]:
    """An item of one hour in a day partition (counters as attributes), as a delta; and its
    hour."""
    kind, day = str(item["series"]).split("#", 1)
    hour_part, source = str(item["hour"]).split("#")[:2]
    hour = f"{day}T{hour_part}"
    bins = {name[len(FORMER_BIN):]: int(value) for name, value in item.items()
            if name.startswith(FORMER_BIN)}
    delta: Figures = {}
    if kind == HOURS:
        figures: Figures = {name: item[name] for name in FORMER_PLAIN if name in item}
        figures["levels"] = {name[len(FORMER_LEVEL):]: int(value) for name, value
                             in item.items() if name.startswith(FORMER_LEVEL)}
        figures["codes"] = {name[len(FORMER_CODE):]: int(value) for name, value in item.items()
                            if name.startswith(FORMER_CODE)}
        figures["bins"] = bins
        add_into(delta, {hour_part: figures})
        return hour, {day_target(hour, source): delta}
    name = str(item.get(FORMER_NAME, OTHER))
    entry = {"requests": int(item.get("requests", 0)), "errors": int(item.get("errors", 0)),
             "bins": bins}
    add_into(delta, {OTHER: entry} if name == OTHER else {NAMED: {name: entry}})
    return hour, {endpoints_target(hour, source): delta}


def _months(start: datetime, end: datetime) -> list[str]:
    return sorted({hour[:7] for hour in hour_list(start, end)})


def _days(start: datetime, end: datetime) -> list[str]:
    return sorted({hour[:10] for hour in hour_list(start, end)})


def rebuild(stage: Stage, since: datetime, until: datetime, now: datetime) -> Rebuilt:
    ddb = client(stage, "dynamodb")
    items = DynamoRollupItems(ddb, stage.stats_table)
    start, end = whole_hours(since, until)
    hours = set(hour_list(start, end))
    wanted: Contribution = {}

    def want(delta: Contribution) -> None:
        for target, figures in delta.items():
            add_into(wanted.setdefault(target, {}), figures)

    records = 0
    for record in scan(ddb, stage.results_table):
        records += 1
        want(_within(contribution(record), hours))
    expired_before = (now - timedelta(seconds=TTL_SECONDS)).strftime("%Y-%m-%dT%H")
    legacy = [item for item in query(ddb, stage.stats_table, LEGACY_SERIES)
              if item["hour"] in hours]
    former = [item for day in _days(start, end) for kind in (HOURS, ENDPOINTS)
              for item in query(ddb, stage.stats_table, f"{kind}#{day}")
              if f"{day}T{str(item['hour'])[:2]}" in hours]
    for item in legacy:
        if item["hour"] < expired_before:
            want(legacy_delta(item))
    for item in former:
        hour, delta = former_delta(item)
        if hour < expired_before:
            want(delta)
    deleted = 0
    for item in [*legacy, *former]:
        ddb.delete_item(TableName=stage.stats_table,
                        Key={"series": {"S": item["series"]}, "hour": {"S": item["hour"]}})
        deleted += 1
    first, last = min(hours), max(hours)
    present = {target for kind, low, high in ((HOURS, first[:10], last[:10]),
                                              (ENDPOINTS, first, last))
               for target, _ in items.items_between(kind, low, high)}
    for target in sorted(present | set(wanted)):
        if _replace(items, target, hours, wanted.get(target, {})):
            deleted += 1
    return Rebuilt(len(hours), records, len(wanted), deleted, len(legacy) + len(former))


def _within(delta: Contribution, hours: set[str]) -> Contribution:
    """The part of a contribution that falls in `hours`."""
    out: Contribution = {}
    for target, figures in delta.items():
        if target.kind == HOURS:
            kept = {h: f for h, f in figures.items() if f"{target.day}T{h}" in hours}
            if kept:
                out[target] = kept
        elif item_hour(target) in hours:
            out[target] = figures
    return out


def _replace(items: DynamoRollupItems, target: Target, hours: set[str],
             delta: Figures) -> bool:
    """Write the item with its hours in `hours` made from `delta`; True if the item ends up
    deleted."""
    def edit(_: dict[str, Any], document: Figures) -> Edited:
        kept = ({h: f for h, f in document.items() if f"{target.day}T{h}" not in hours}
                if target.kind == HOURS else {})
        return fold(target, kept, delta), {}

    return items.rewrite(target, edit, expires_at(target)) is Rewritten.DELETED


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
