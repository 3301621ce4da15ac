"""Hourly rollups for GET /stats: one small item per hour, updated as files finish.

The stats table holds partition `series` = "hourly", sort `hour` (YYYY-MM-DDTHH, the
hour the job was created). The trigger adds each new file to `files_received`; a final
record (completed, or failed) adds its counts with one UpdateItem `ADD`. Reading a range
is one Query of at most 24 x 31 items, however many files the results table holds.

Counts are added after the result is stored, so a crash between the two writes can miss
one file in the totals; the results table stays the record of truth.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.adapters import from_item, to_value
from chalicelib.core.schema import Status
from chalicelib.jobindex import index_attributes

log = logging.getLogger(__name__)
SERIES = "hourly"
ROLLUP_TTL_SECONDS = 32 * 24 * 3600
LEVELS = ("info", "warn", "error", "debug")
STATUS_CODE_PREFIX = "sc_"


def hour_of(created_at: str) -> str:
    return created_at[:13]


def hours_between(since: datetime, until: datetime) -> list[str]:
    start = since.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    end = until.astimezone(UTC)
    hours = []
    while start <= end:
        hours.append(start.strftime("%Y-%m-%dT%H"))
        start += timedelta(hours=1)
    return hours


def result_counts(record: dict[str, Any]) -> dict[str, int]:
    """What one final record adds to its hour."""
    counts = {f"files_{Status(record['status']).value}": 1,
              "lines": int(record.get("line_count") or 0),
              "malformed": int(record.get("malformed_count") or 0)}
    for level in LEVELS:
        counts[f"level_{level}"] = int(record.get(f"{level}_count") or 0)
    for code, count in (record.get("status_codes") or {}).items():
        if str(code).isdigit():
            counts[f"{STATUS_CODE_PREFIX}{code}"] = int(count)
    return {name: value for name, value in counts.items() if value}


def update_request(table: str, hour: str, counts: dict[str, int], expires_at: int
                   ) -> dict[str, Any]:
    names = {f"#a{i}": name for i, name in enumerate(counts)}
    values = {f":a{i}": to_value(value) for i, value in enumerate(counts.values())}
    values[":exp"] = to_value(expires_at)
    adds = ", ".join(f"#a{i} :a{i}" for i in range(len(counts)))
    return {
        "TableName": table,
        "Key": {"series": {"S": SERIES}, "hour": {"S": hour}},
        "UpdateExpression": f"SET expires_at = if_not_exists(expires_at, :exp) ADD {adds}",
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }


class HourlyRollups:
    """The stats table, through an injected DynamoDB client."""

    def __init__(self, client: Any, table: str) -> None:
        self.client = client
        self.table = table

    def add(self, created_at: str, counts: dict[str, int]) -> None:
        if not counts:
            return
        expires_at = int(datetime.fromisoformat(created_at.replace("Z", "+00:00")).timestamp()
                         ) + ROLLUP_TTL_SECONDS
        self.client.update_item(**update_request(self.table, hour_of(created_at), counts,
                                                 expires_at))

    def read(self, since: datetime, until: datetime) -> list[dict[str, Any]]:
        """The hour items from since's hour to until's hour, oldest first."""
        hours = hours_between(since, until)
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "#p = :s AND #h BETWEEN :a AND :b",
            "ExpressionAttributeNames": {"#p": "series", "#h": "hour"},
            "ExpressionAttributeValues": {":s": {"S": SERIES}, ":a": {"S": hours[0]},
                                          ":b": {"S": hours[-1]}},
        }
        items: list[dict[str, Any]] = []
        while True:
            response = self.client.query(**kwargs)
            items.extend(from_item(item) for item in response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                return items
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]


@dataclass
class Totals:
    received: int = 0
    completed: int = 0
    failed: int = 0
    lines: int = 0
    malformed: int = 0
    levels: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LEVELS, 0))
    status_codes: dict[str, int] = field(default_factory=dict)

    def add(self, item: dict[str, Any]) -> None:
        self.received += int(item.get("files_received", 0))
        self.completed += int(item.get(f"files_{Status.COMPLETED.value}", 0))
        self.failed += int(item.get(f"files_{Status.FAILED.value}", 0))
        self.lines += int(item.get("lines", 0))
        self.malformed += int(item.get("malformed", 0))
        for level in LEVELS:
            self.levels[level] += int(item.get(f"level_{level}", 0))
        for name, value in item.items():
            if name.startswith(STATUS_CODE_PREFIX):
                code = name.removeprefix(STATUS_CODE_PREFIX)
                self.status_codes[code] = self.status_codes.get(code, 0) + int(value)

    @property
    def error_rate(self) -> float | None:
        """Share of valid records at level ERROR; None without valid records."""
        valid = self.lines - self.malformed
        return round(self.levels["error"] / valid, 6) if valid > 0 else None


def summarize(items: Iterable[dict[str, Any]]) -> tuple[Totals, list[tuple[str, Totals]]]:
    """Totals over the range and per hour (only hours with any activity)."""
    overall = Totals()
    hours: list[tuple[str, Totals]] = []
    for item in sorted(items, key=lambda i: i["hour"]):
        hour = Totals()
        hour.add(item)
        overall.add(item)
        hours.append((item["hour"], hour))
    return overall, hours


class RollupRecorder:
    """A job store that also keeps the job indexes' attributes and the hourly rollups.

    It wraps the results store the handlers use: every record written gets its index
    attributes, and every stored new or final record is counted in its hour. A failed
    rollup write is logged and does not fail the job. A file processed again (a failed
    file uploaded again, a redrive from the DLQ) is counted again: the totals count writes.
    """

    def __init__(self, store: Any, rollups: HourlyRollups) -> None:
        self.store = store
        self.rollups = rollups

    def create(self, record: dict[str, Any]) -> dict[str, Any] | None:
        existing = self.store.create(_indexed(record))
        if existing is None:
            self._count(record, {"files_received": 1})
        return existing

    def requeue(self, record: dict[str, Any], failed_at: str) -> bool:
        stored = self.store.requeue(_indexed(record), failed_at)
        if stored:
            self._count(record, {"files_received": 1})
        return stored

    def reject(self, record: dict[str, Any]) -> bool:
        stored = self.store.reject(_indexed(record))
        if stored:
            self._count(record, {"files_received": 1, **result_counts(record)})
        return stored

    def claim(self, record: dict[str, Any], stale_before: str) -> bool:
        return self.store.claim(_indexed(record), stale_before)

    def finish(self, record: dict[str, Any]) -> bool:
        stored = self.store.finish(_indexed(record))
        if stored:
            self._count(record, result_counts(record))
        return stored

    def release(self, job_id: str, error: str) -> None:
        self.store.release(job_id, error)

    def get(self, job_id: str) -> dict[str, Any] | None:
        return self.store.get(job_id)

    def _count(self, record: dict[str, Any], counts: dict[str, int]) -> None:
        try:
            self.rollups.add(record["created_at"], counts)
        except Exception:  # noqa: BLE001 - the result is stored; the totals miss one file
            log.warning("could not add job %s to the hourly rollup", record.get("job_id"))


def _indexed(record: dict[str, Any]) -> dict[str, Any]:
    return {**record, **index_attributes(record)}
