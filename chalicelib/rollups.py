"""The rollups: kept up to date from the results table's stream, exactly once, and read back
for GET /stats and GET /endpoints (docs/spec.md, "Rollups"; the items: chalicelib.core.rollup).

Exactly once. Lambda delivers each stream record at least once, in order per item; a batch is
retried until it succeeds, the handler may die between any two calls, and a write may be
applied and still answered with an error. Stream records of one job come in order, so the
job is the lane in which writes are ordered (a DynamoDB stream event does not say which shard
a record came from):

1. the job's ledger item says which of its stream records are fully applied: one already
   applied is skipped;
2. each item of a change is read, and written back with the delta added and the item's
   marker for the job set to the change's sequence number, unless the marker already is
   there or later (then the write was applied before); the write is conditional on the
   item's version being the one read, so concurrent writers never lose each other's
   deltas (a failed condition: read again);
3. once all are applied the ledger takes the sequence number, and the markers are removed
   (conditionally, bumping the version), so an item keeps markers only of changes in
   flight.

One item holds a whole document (chalicelib.core.rollup), so a read-modify-write is the only
way to add to it: no expression grows with the number of codes or bins, and an item costs
write units by its compressed size (docs/operations.md, "Costs").
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from chalicelib.adapters import from_value, to_value
from chalicelib.core.errors import ConfigurationError
from chalicelib.core.rollup import (
    ENDPOINTS,
    HOURS,
    SEQUENCE_DIGITS,
    Contribution,
    RollupItem,
    Target,
    Write,
    contribution,
    difference,
    fold,
    marker,
    pack,
    unpack,
    writes,
)

log = logging.getLogger(__name__)
STREAM_ARN_VARIABLE = "RESULTS_STREAM_ARN"
# What the decorator gets where the ARN does not matter (in Lambda, where the mapping exists
# since the deploy; tests): Chalice reads it only when it deploys or packages.
UNRESOLVED_STREAM_ARN = "arn:aws:dynamodb:us-east-1:000000000000:table/unresolved/stream/unresolved"
DEPLOYING_COMMANDS = ("deploy", "package")
LEDGER = "ledger"
LEDGER_TTL_SECONDS = 8 * 24 * 3600  # past the stream's 24 h and the records' 7 days
DOCUMENT = "figures"
VERSION = "v"
MAX_ATTEMPTS = 10  # reads and conditional writes of one item before the batch is retried


class RollupContention(Exception):
    """An item changed between every read and write of MAX_ATTEMPTS tries."""


class RollupItems(Protocol):
    """The stats table's contract, kept by `DynamoRollupItems` and its in-memory twin."""

    def apply(self, write: Write) -> bool: ...
    def forget(self, target: Target, job_id: str, upto: str) -> None: ...
    def ledger(self, job_id: str) -> str | None: ...
    def mark_done(self, job_id: str, sequence: str, expires_at: int) -> None: ...
    def items_between(self, kind: str, first: str, last: str) -> list[RollupItem]: ...


def results_stream_arn(environ: Mapping[str, str], argv: list[str]) -> str:
    """The results table's stream ARN for `@app.on_dynamodb_record`.

    `python -m logctl.deploy` looks it up (DescribeTable LatestStreamArn) and sets it for
    `chalice deploy`; a deploy or package without it fails here, as it would otherwise create
    no rollups mapping.
    """
    arn = environ.get(STREAM_ARN_VARIABLE)
    if arn:
        return arn
    if environ.get("AWS_CHALICE_CLI_MODE") and any(a in DEPLOYING_COMMANDS for a in argv[1:]):
        raise ConfigurationError(
            f"{STREAM_ARN_VARIABLE} is not set: deploy with `python -m logctl.deploy` (make "
            "deploy-aws / deploy-local), which looks up the results table's stream ARN; a "
            "deploy without it would have no rollups")
    return UNRESOLVED_STREAM_ARN


def ledger_key(job_id: str) -> dict[str, Any]:
    return {"series": {"S": f"{LEDGER}#{job_id}"}, "hour": {"S": "-"}}


class DynamoRollupItems:
    """The stats table through an injected DynamoDB client."""

    def __init__(self, client: Any, table: str) -> None:
        self.client = client
        self.table = table

    def apply(self, write: Write) -> bool:
        """Apply one write; False if the item shows it was applied already."""
        for _ in range(MAX_ATTEMPTS):
            item = self.client.get_item(TableName=self.table, Key=_key(write.target),
                                        ConsistentRead=True).get("Item")
            mark = item.get(marker(write.job_id)) if item else None
            if mark is not None and mark["S"] >= write.position:
                return False
            document = unpack(item[DOCUMENT]["B"]) if item and DOCUMENT in item else {}
            version = int(item[VERSION]["N"]) if item and VERSION in item else 0
            new = {**(item or {}), **_key(write.target),
                   DOCUMENT: {"B": pack(write.target,
                                          fold(write.target, document, write.delta))},
                   VERSION: {"N": str(version + 1)},
                   marker(write.job_id): {"S": write.position}}
            new.setdefault("expires_at", to_value(write.expires_at))
            condition: dict[str, Any] = (
                {"ConditionExpression": "#v = :v", "ExpressionAttributeNames": {"#v": VERSION},
                 "ExpressionAttributeValues": {":v": {"N": str(version)}}} if item else
                {"ConditionExpression": "attribute_not_exists(series)"})
            try:
                self.client.put_item(TableName=self.table, Item=new, **condition)
            except self.client.exceptions.ConditionalCheckFailedException:
                continue
            return True
        raise RollupContention(f"{write.target}: changed under every one of {MAX_ATTEMPTS} "
                               "writes")

    def forget(self, target: Target, job_id: str, upto: str) -> None:
        """Remove the job's marker from the item if it is at most `upto`."""
        with contextlib.suppress(self.client.exceptions.ConditionalCheckFailedException):
            self.client.update_item(
                TableName=self.table, Key=_key(target), UpdateExpression="REMOVE #m ADD #v :1",
                ConditionExpression="#m <= :u",
                ExpressionAttributeNames={"#m": marker(job_id), "#v": VERSION},
                ExpressionAttributeValues={":u": {"S": upto}, ":1": {"N": "1"}})

    def ledger(self, job_id: str) -> str | None:
        item = self.client.get_item(TableName=self.table, Key=ledger_key(job_id),
                                    ConsistentRead=True).get("Item")
        return item["applied"]["S"] if item else None

    def mark_done(self, job_id: str, sequence: str, expires_at: int) -> None:
        with contextlib.suppress(self.client.exceptions.ConditionalCheckFailedException):
            self.client.update_item(
                TableName=self.table, Key=ledger_key(job_id),
                UpdateExpression="SET applied = :s, expires_at = :x",
                ConditionExpression="attribute_not_exists(applied) OR applied < :s",
                ExpressionAttributeValues={":s": {"S": sequence}, ":x": to_value(expires_at)})

    def items_between(self, kind: str, first: str, last: str) -> list[RollupItem]:
        """The items of `kind` from the one holding `first` to the one holding `last`
        (days YYYY-MM-DD for hours, hours YYYY-MM-DDTHH for endpoints): one Query a month."""
        items: list[RollupItem] = []
        for month, low, high in month_ranges(first, last):
            kwargs: dict[str, Any] = {
                "TableName": self.table,
                "KeyConditionExpression": "series = :s AND #h BETWEEN :a AND :b",
                "ProjectionExpression": "series, #h, #d",
                "ExpressionAttributeNames": {"#h": "hour", "#d": DOCUMENT},
                "ExpressionAttributeValues": {":s": {"S": f"{kind}#{month}"},
                                              ":a": {"S": low}, ":b": {"S": high + "~"}}}
            while True:
                response = self.client.query(**kwargs)
                items.extend((Target(i["series"]["S"], i["hour"]["S"]), unpack(i[DOCUMENT]["B"]))
                             for i in response.get("Items", []) if DOCUMENT in i)
                if "LastEvaluatedKey" not in response:
                    break
                kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return items


def month_ranges(first: str, last: str) -> list[tuple[str, str, str]]:
    """(YYYY-MM, first sort key, last sort key) of each month from `first` to `last`
    (both YYYY-MM-DD, or both YYYY-MM-DDTHH)."""
    def sort_key(moment: str) -> str:
        return moment[8:]
    out = []
    month = first[:7]
    while month <= last[:7]:
        low = sort_key(first) if month == first[:7] else "00"
        high = sort_key(last) if month == last[:7] else "99"
        out.append((month, low, high))
        year, number = int(month[:4]), int(month[5:7])
        month = f"{year + number // 12:04d}-{number % 12 + 1:02d}"
    return out


def _key(target: Target) -> dict[str, Any]:
    return {"series": {"S": target.series}, "hour": {"S": target.hour}}


def image(record: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A stream image (DynamoDB JSON) as a plain record."""
    return {k: from_value(v) for k, v in record.items()} if record else None


class RollupsHandler:
    """Applies a batch of the results table's stream records to the rollups, in order.

    An error stops the batch and is raised: the mapping retries the whole batch, and what
    was applied before is skipped (module docstring).
    """

    def __init__(self, items: RollupItems, clock: Any = None) -> None:
        self.items = items
        self.clock = clock or (lambda: datetime.now(UTC).timestamp())

    def handle(self, event: Mapping[str, Any]) -> dict[str, int]:
        counts = {"applied": 0, "skipped": 0, "unchanged": 0}
        for record in event.get("Records") or []:
            counts[self.apply(record)] += 1
        return counts

    def apply(self, record: Mapping[str, Any]) -> str:
        """One stream record: 'applied', 'skipped' (applied before) or 'unchanged'."""
        if record.get("eventName") not in ("INSERT", "MODIFY"):
            return "unchanged"  # REMOVE, TTL deletions included: rollups outlive records
        stream = record["dynamodb"]
        job_id = from_value(stream["Keys"]["job_id"])
        sequence = str(stream["SequenceNumber"]).zfill(SEQUENCE_DIGITS)
        delta = change(stream.get("NewImage"), stream.get("OldImage"))
        if not delta:
            return "unchanged"
        done = self.items.ledger(job_id)
        if done is None or done < sequence:
            for write in writes(delta, job_id, sequence):
                self.items.apply(write)
            self.items.mark_done(job_id, sequence, int(self.clock()) + LEDGER_TTL_SECONDS)
            outcome = "applied"
        else:
            outcome = "skipped"
        for target in delta:
            self.items.forget(target, job_id, sequence)
        return outcome


def change(new: Mapping[str, Any] | None, old: Mapping[str, Any] | None) -> Contribution:
    """f(new) - f(old) of a stream record's images."""
    return difference(contribution(image(new)), contribution(image(old)))


class RollupReader:
    """The day items and the endpoint items of a range (one Query per month and kind)."""

    def __init__(self, items: RollupItems) -> None:
        self.items = items

    def hours(self, start: datetime, end: datetime) -> list[RollupItem]:
        """The day items of the hours from `start` to before `end`."""
        last = end - timedelta(hours=1)
        return self.items.items_between(HOURS, f"{start:%Y-%m-%d}", f"{last:%Y-%m-%d}")

    def endpoints(self, start: datetime, end: datetime) -> list[RollupItem]:
        last = end - timedelta(hours=1)
        return self.items.items_between(ENDPOINTS, f"{start:%Y-%m-%dT%H}",
                                        f"{last:%Y-%m-%dT%H}")
