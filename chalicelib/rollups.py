"""The rollups: kept up to date from the results table's stream, exactly once, and read back
for GET /stats and GET /endpoints (docs/spec.md, "Rollups"; the items: chalicelib.core.rollup).

Exactly once. Lambda delivers each stream record at least once, in order per item; a batch is
retried until it succeeds, the handler may die between any two calls, and a write may be
applied and still answered with an error. Stream records of one job come in order, so the
job is the lane in which writes are ordered (a DynamoDB stream event does not say which shard
a record came from):

1. the job's ledger item says which of its stream records are fully applied: one already
   applied is skipped;
2. every write of a change is conditional on the item's marker for the job being lower than
   the write's position (sequence number and chunk) and sets it: a failed condition means
   the write was applied before;
3. once all are applied the ledger takes the sequence number, and the markers are removed
   (conditionally), so an item keeps markers only of changes in flight.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from chalicelib.adapters import from_item, from_value, to_value
from chalicelib.core.errors import ConfigurationError
from chalicelib.core.rollup import (
    ENDPOINTS,
    HOURS,
    NAME,
    SEQUENCE_DIGITS,
    Contribution,
    Target,
    Write,
    contribution,
    difference,
    marker,
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
_LAST_CHUNK = ".9999"


class RollupItems(Protocol):
    """The stats table's contract, kept by `DynamoRollupItems` and its in-memory twin."""

    def apply(self, write: Write) -> bool: ...
    def forget(self, target: Target, job_id: str, upto: str) -> None: ...
    def ledger(self, job_id: str) -> str | None: ...
    def mark_done(self, job_id: str, sequence: str, expires_at: int) -> None: ...
    def day_items(self, kind: str, day: str) -> list[dict[str, Any]]: ...


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
        names = {"#m": marker(write.job_id)}
        values: dict[str, Any] = {":p": {"S": write.position},
                                  ":x": to_value(write.expires_at)}
        sets = ["#m = :p", "expires_at = if_not_exists(expires_at, :x)"]
        if write.name is not None:
            names["#n"] = NAME
            values[":n"] = {"S": write.name}
            sets.append("#n = :n")
        adds = []
        for i, (counter, value) in enumerate(write.adds.items()):
            names[f"#a{i}"] = counter
            values[f":a{i}"] = to_value(value)
            adds.append(f"#a{i} :a{i}")
        try:
            self.client.update_item(
                TableName=self.table, Key=_key(write.target),
                UpdateExpression="SET " + ", ".join(sets) + " ADD " + ", ".join(adds),
                ConditionExpression="attribute_not_exists(#m) OR #m < :p",
                ExpressionAttributeNames=names, ExpressionAttributeValues=values)
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def forget(self, target: Target, job_id: str, upto: str) -> None:
        """Remove the job's marker from the item if it is at most `upto`."""
        with contextlib.suppress(self.client.exceptions.ConditionalCheckFailedException):
            self.client.update_item(
                TableName=self.table, Key=_key(target), UpdateExpression="REMOVE #m",
                ConditionExpression="#m <= :u",
                ExpressionAttributeNames={"#m": marker(job_id)},
                ExpressionAttributeValues={":u": {"S": upto}})

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

    def day_items(self, kind: str, day: str) -> list[dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "TableName": self.table, "KeyConditionExpression": "series = :s",
            "ExpressionAttributeValues": {":s": {"S": f"{kind}#{day}"}}}
        items: list[dict[str, Any]] = []
        while True:
            response = self.client.query(**kwargs)
            items.extend(from_item(item) for item in response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                return items
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]


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
            self.items.forget(target, job_id, sequence + _LAST_CHUNK)
        return outcome


def change(new: Mapping[str, Any] | None, old: Mapping[str, Any] | None) -> Contribution:
    """f(new) - f(old) of a stream record's images."""
    return difference(contribution(image(new)), contribution(image(old)))


class RollupReader:
    """The hour and endpoint items of a range of days (one Query per day and kind)."""

    def __init__(self, items: RollupItems) -> None:
        self.items = items

    def hours(self, days: Iterable[str]) -> list[dict[str, Any]]:
        return [item for day in days for item in self.items.day_items(HOURS, day)]

    def endpoints(self, days: Iterable[str]) -> list[dict[str, Any]]:
        return [item for day in days for item in self.items.day_items(ENDPOINTS, day)]
