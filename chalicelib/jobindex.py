"""Listing jobs newest first with DynamoDB Queries on two secondary indexes, never a Scan.

- `jobs_by_day`: partition `created_day` (YYYY-MM-DD), sort `created_at`. A listing walks
  the days from `until` back to `since`; results live 7 days, so 9 partitions at most.
- `jobs_by_status`: partition `status`, sort `created_at`. A status filter reads only
  that status's items; the oldest `queued` one gives the age of the queue's backlog.

`prefix` (key prefix) and expiry are FilterExpressions: they cost the reads of the items
they skip, so one page makes one Query per day partition it reaches plus at most
`MAX_QUERIES_PER_PAGE` that continue inside a partition, and a page can hold fewer than
`limit` jobs while a `next_cursor` says there is more to read. A page asks for one job more
than it shows: a full page whose listing ends there has no `next_cursor`.

A cursor is not signed (there is no secret to sign it with that the committed config would
not reveal); it is checked against the listing it continues instead: same filters, its day
inside the listing's days, its key the index key of a job created inside the range.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.adapters import from_item, to_value
from chalicelib.core.errors import PipelineError
from chalicelib.core.jobs import STREAM_PREFIX, Source
from chalicelib.core.results import TTL_SECONDS, iso
from chalicelib.core.schema import Status

BY_DAY = "jobs_by_day"
BY_STATUS = "jobs_by_status"
DAY_ATTRIBUTE = "created_day"
MAX_QUERIES_PER_PAGE = 8
# Copied into both indexes: what a listing row shows (keys are projected anyway).
SUMMARY_ATTRIBUTES = (
    "key", "file_size_bytes", "line_count", "malformed_count", "error_count",
    "p50_response_time_ms", "p95_response_time_ms", "p99_response_time_ms",
    "processing_time_ms", "failure_reason", "completed_at", "expires_at",
)
# Results live 7 days after their last write (results.TTL_SECONDS); a listing looks back
# that far and one more day, for jobs written last well after they were created.
DEFAULT_LOOKBACK = timedelta(seconds=TTL_SECONDS) + timedelta(days=1)


class BadCursor(PipelineError):
    """The cursor was not issued for this listing, or has been altered."""


def day_of(created_at: str) -> str:
    return created_at[:10]


def index_attributes(record: dict[str, Any]) -> dict[str, Any]:
    """The attributes a record needs to appear in `jobs_by_day` (status is already there)."""
    return {DAY_ATTRIBUTE: day_of(record["created_at"])}


def index_definitions() -> tuple[list[dict[str, str]], list[dict[str, Any]]]:
    """AttributeDefinitions and GlobalSecondaryIndexes for provisioning the results table."""
    attributes = [{"AttributeName": name, "AttributeType": "S"}
                  for name in ("job_id", DAY_ATTRIBUTE, "status", "created_at")]

    def index(name: str, partition: str, extra: tuple[str, ...]) -> dict[str, Any]:
        return {
            "IndexName": name,
            "KeySchema": [{"AttributeName": partition, "KeyType": "HASH"},
                          {"AttributeName": "created_at", "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "INCLUDE",
                           "NonKeyAttributes": [*extra, *SUMMARY_ATTRIBUTES]},
        }

    return attributes, [index(BY_DAY, DAY_ATTRIBUTE, ("status",)),
                        index(BY_STATUS, "status", (DAY_ATTRIBUTE,))]


@dataclass(frozen=True)
class Listing:
    """What to list: bounds on created_at, optional status and key prefix, page size."""

    since: datetime
    until: datetime
    limit: int
    status: str | None = None
    prefix: str | None = None
    source: str | None = None
    # The filters as the caller gave them: a cursor is valid only for the same ones.
    fingerprint: str = ""


def listing(now: float, *, limit: int, since: datetime | None = None,
            until: datetime | None = None, status: str | None = None,
            prefix: str | None = None, source: str | None = None) -> Listing:
    """A listing over the given range, within the last 8 days (older jobs have expired, and
    no job is created after now): the default range is all of it."""
    latest = datetime.fromtimestamp(now, UTC)
    earliest = latest - DEFAULT_LOOKBACK
    return Listing(since=max(since or earliest, earliest), until=min(until or latest, latest),
                   limit=limit, status=status, prefix=prefix, source=source,
                   fingerprint=fingerprint(status, prefix, since, until,
                                           *([source] if source else [])))


@dataclass(frozen=True)
class Position:
    """Where a listing continues: the day partition (jobs_by_day only) and the last key."""

    day: str | None
    last_key: dict[str, Any] | None


def fingerprint(*values: object) -> str:
    return hashlib.sha256(json.dumps(values, default=str).encode()).hexdigest()[:12]


def encode_cursor(listing: Listing, position: Position) -> str:
    data = {"f": listing.fingerprint, "d": position.day, "k": position.last_key}
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(listing: Listing, cursor: str) -> Position:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError, RecursionError) as exc:
        raise BadCursor("not a cursor this API issued") from exc
    if not isinstance(data, dict) or set(data) != {"f", "d", "k"}:
        raise BadCursor("not a cursor this API issued")
    if data["f"] != listing.fingerprint:
        raise BadCursor("issued for other filters: repeat the same status, prefix, since and "
                        "until, or start again without a cursor")
    day, key = data["d"], data["k"]
    if (day is None) != (listing.status is not None):
        raise BadCursor("issued for other filters")
    if day is not None and not (_is_day(day) and day in _days(listing)):
        raise BadCursor("its day is outside the listing's range")
    if key is not None and not _key_inside(listing, day, key):
        raise BadCursor("its position is not a job of this listing")
    return Position(day, key)


def _days(listing: Listing) -> set[str]:
    return set(days_back(listing.until, listing.since)) if listing.since <= listing.until \
        else set()


def position_key(listing: Listing, day: str | None, record: dict[str, Any]) -> dict[str, Any]:
    """The index key of a listed job: where the next page starts after it."""
    key = {"job_id": {"S": record["job_id"]}, "created_at": {"S": record["created_at"]}}
    if day is None:
        key["status"] = {"S": str(listing.status)}
    else:
        key[DAY_ATTRIBUTE] = {"S": day}
    return key


def _key_inside(listing: Listing, day: str | None, key: object) -> bool:
    partition = "status" if day is None else DAY_ATTRIBUTE
    if not (isinstance(key, dict) and set(key) == {"job_id", "created_at", partition}
            and all(isinstance(v, dict) and list(v) == ["S"] and isinstance(v["S"], str)
                    for v in key.values())):
        return False
    job_id, created_at = key["job_id"]["S"], key["created_at"]["S"]
    if len(job_id) != 32 or not all(c in "0123456789abcdef" for c in job_id):
        return False
    if key[partition]["S"] != (listing.status if day is None else day):
        return False
    if day is not None and day_of(created_at) != day:
        return False
    return iso(listing.since.timestamp()) <= created_at <= iso(listing.until.timestamp())


def _is_day(text: object) -> bool:
    try:
        return isinstance(text, str) and datetime.strptime(text, "%Y-%m-%d") is not None
    except ValueError:
        return False


def days_back(until: datetime, since: datetime, start: str | None = None) -> Iterator[str]:
    """Day partitions from `start` (or until's day) back to since's day, newest first."""
    day = (datetime.strptime(start, "%Y-%m-%d").replace(tzinfo=UTC).date() if start
           else until.astimezone(UTC).date())
    last = since.astimezone(UTC).date()
    while day >= last:
        yield day.isoformat()
        day -= timedelta(days=1)


class JobIndex:
    """Queries on the results table's indexes, through an injected DynamoDB client."""

    def __init__(self, client: Any, table: str) -> None:
        self.client = client
        self.table = table

    def page(self, listing: Listing, cursor: str | None, now: float
             ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of jobs, newest first, and the cursor of the next page (None at the end)."""
        start = decode_cursor(listing, cursor) if cursor else None
        if listing.since > listing.until:
            return [], None
        if listing.status is not None:
            positions: Iterator[Position] = iter([Position(None, start.last_key if start
                                                           else None)])
        else:
            positions = (Position(day, start.last_key if start and day == start.day else None)
                         for day in days_back(listing.until, listing.since,
                                              start.day if start else None))
        jobs: list[dict[str, Any]] = []
        continuations = 0
        for position in positions:
            key = position.last_key
            while True:
                if key is not None:
                    if continuations >= MAX_QUERIES_PER_PAGE:
                        return jobs, encode_cursor(listing, Position(position.day, key))
                    continuations += 1
                wanted = listing.limit - len(jobs)
                response = self.client.query(**self._query(listing, position.day, key, now,
                                                           wanted + 1))
                found = [from_item(item) for item in response.get("Items", [])]
                if len(found) > wanted:
                    jobs.extend(found[:wanted])
                    last = jobs[-1]
                    day = None if position.day is None else day_of(last["created_at"])
                    return jobs, encode_cursor(listing, Position(
                        day, position_key(listing, day, last)))
                jobs.extend(found)
                key = response.get("LastEvaluatedKey")
                if key is None:
                    break
        return jobs, None

    def count(self, status: str, now: float) -> int:
        """Live jobs with this status (reads the status's index partition)."""
        kwargs: dict[str, Any] = {
            "TableName": self.table, "IndexName": BY_STATUS, "Select": "COUNT",
            "KeyConditionExpression": "#s = :s", "FilterExpression": "expires_at > :now",
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": {":s": to_value(status), ":now": to_value(int(now))},
        }
        total = 0
        while True:
            response = self.client.query(**kwargs)
            total += int(response.get("Count", 0))
            if "LastEvaluatedKey" not in response:
                return total
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def oldest_queued(self, now: float) -> dict[str, Any] | None:
        """The oldest live job still waiting for a worker, or None."""
        kwargs: dict[str, Any] = {
            "TableName": self.table, "IndexName": BY_STATUS,
            "KeyConditionExpression": "#s = :s", "FilterExpression": "expires_at > :now",
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": {":s": {"S": Status.QUEUED.value},
                                          ":now": to_value(int(now))},
            "ScanIndexForward": True, "Limit": 25,
        }
        for _ in range(MAX_QUERIES_PER_PAGE):
            response = self.client.query(**kwargs)
            if response.get("Items"):
                return from_item(response["Items"][0])
            if "LastEvaluatedKey" not in response:
                return None
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return None

    def _query(self, listing: Listing, day: str | None, start_key: dict[str, Any] | None,
               now: float, limit: int) -> dict[str, Any]:
        names = {"#p": "status" if day is None else DAY_ATTRIBUTE}
        values = {":p": to_value(listing.status if day is None else day),
                  ":since": to_value(iso(listing.since.timestamp())),
                  ":until": to_value(iso(listing.until.timestamp())),
                  ":now": to_value(int(now))}
        filters = ["expires_at > :now"]
        if listing.prefix:
            names["#k"] = "key"
            values[":prefix"] = to_value(listing.prefix)
            filters.append("begins_with(#k, :prefix)")
        if listing.source:
            names["#k"] = "key"
            values[":stream"] = to_value(STREAM_PREFIX)
            filters.append("begins_with(#k, :stream)" if listing.source == Source.STREAM
                           else "NOT begins_with(#k, :stream)")
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": BY_STATUS if day is None else BY_DAY,
            "KeyConditionExpression": "#p = :p AND created_at BETWEEN :since AND :until",
            "FilterExpression": " AND ".join(filters),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if start_key:
            kwargs["ExclusiveStartKey"] = start_key
        return kwargs
