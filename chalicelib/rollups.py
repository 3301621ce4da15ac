"""The rollups: kept up to date from the results table's stream, exactly once, and read back
for GET /stats and GET /endpoints (docs/spec.md, "Rollups"; the items: chalicelib.core.rollup).

Exactly once. Lambda delivers each stream record at least once, in order per item; a batch is
retried until it succeeds, the handler may die between any two calls, and a write may be
applied and still answered with an error. Stream records of one job come in order, so the
job is the lane in which writes are ordered (a DynamoDB stream event does not say which shard
a record came from):

1. the job's ledger item says which of its stream records are fully applied: one already
   applied is skipped (the batch's ledgers are read in one BatchGetItem);
2. each item the batch changes is read once, and written back once with the batch's deltas
   added in stream order and the item's marker for each job set to its last sequence
   number; a delta whose job's marker is already there or later was applied before and is
   left out; the write is conditional on the item's version being the one read, so
   concurrent writers never lose each other's deltas (a failed condition: read again);
3. once all are applied each job's ledger takes its last sequence number (BatchWriteItem,
   which takes no condition: a job's records come on one shard, one batch at a time, so
   its ledger is written by one batch at a time, above the value that batch read), and the
   markers are removed (conditionally, bumping the version), so an item keeps markers only
   of changes in flight.

Under load a batch holds many files' records, and an item is written once a batch rather
than once a record (`make bench-rollup-cost`).

One item holds a whole document (chalicelib.core.rollup), so a read-modify-write is the only
way to add to it: no expression grows with the number of codes or bins, and an item costs
write units by its compressed size (docs/operations.md, "Costs").
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any, Protocol

from chalicelib.adapters import from_value, to_value
from chalicelib.core.errors import ConfigurationError
from chalicelib.core.rollup import (
    ENDPOINTS,
    HOURS,
    MARKER_PREFIX,
    SEQUENCE_DIGITS,
    Contribution,
    Figures,
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
FORGET_CHUNK = 25  # markers one update removes: ~1 KB of the expression's 4 KB
BATCH_GET_KEYS = 100  # BatchGetItem's limit
BATCH_WRITE_ITEMS = 25  # BatchWriteItem's limit
UNPROCESSED_ATTEMPTS = 8  # calls for what a batch call left unprocessed, then the batch fails
UNPROCESSED_PAUSE_SECONDS = 0.05  # doubled after each call that left some


class Rewritten(Enum):
    PUT = "put"
    DELETED = "deleted"
    UNCHANGED = "unchanged"


Edited = tuple[Figures, dict[str, Any]]  # an item's new document, and attributes to set


class Unprocessed(Exception):
    """DynamoDB left part of a batch call unprocessed through every attempt."""


class RollupContention(Exception):
    """An item changed between every read and write of MAX_ATTEMPTS tries."""


class RollupItems(Protocol):
    """The stats table's contract, kept by `DynamoRollupItems` and its in-memory twin."""

    def apply(self, write: Write) -> int: ...
    def forget(self, target: Target, markers: Mapping[str, str]) -> None: ...
    def ledgers(self, job_ids: Iterable[str]) -> dict[str, str | None]: ...
    def mark_done(self, done: Mapping[str, str], expires_at: int) -> None: ...
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

    def apply(self, write: Write) -> int:
        """Apply a write's changes the item has not seen; how many this call found unseen
        (0 when the SDK's retry of a write applied before finds them there)."""
        applied = 0

        def edit(item: dict[str, Any], document: Figures) -> Edited | None:
            nonlocal applied
            marks = {change.job_id: item[marker(change.job_id)]["S"]
                     for change in write.changes if marker(change.job_id) in item}
            applied = 0
            for change in write.changes:
                if marks.get(change.job_id, "") < change.position:
                    fold(write.target, document, change.delta)
                    marks[change.job_id] = change.position
                    applied += 1
            if not applied:
                return None
            return document, {marker(job): {"S": mark} for job, mark in marks.items()}

        self.rewrite(write.target, edit, write.expires_at)
        return applied

    def rewrite(self, target: Target, edit: Callable[[dict[str, Any], Figures], Edited | None],
                expires: int) -> Rewritten:
        """Read the item, let `edit` make its new document and attributes from it (None: leave
        it), and write it back under the version read, reading again when another writer
        came between. An item left with no document and no marker is deleted."""
        key = _key(target)
        for _ in range(MAX_ATTEMPTS):
            item = self.client.get_item(TableName=self.table, Key=key,
                                        ConsistentRead=True).get("Item") or {}
            edited = edit(item, unpack(item[DOCUMENT]["B"]) if DOCUMENT in item else {})
            if edited is None:
                return Rewritten.UNCHANGED
            document, attributes = edited
            version = int(item[VERSION]["N"]) if VERSION in item else 0
            condition: dict[str, Any] = (
                {"ConditionExpression": "#v = :v", "ExpressionAttributeNames": {"#v": VERSION},
                 "ExpressionAttributeValues": {":v": {"N": str(version)}}} if item else
                {"ConditionExpression": "attribute_not_exists(series)"})
            kept = {**item, **attributes}
            try:
                if document or any(name.startswith(MARKER_PREFIX) for name in kept):
                    self.client.put_item(TableName=self.table, Item={
                        **kept, **key, DOCUMENT: {"B": pack(target, document)},
                        VERSION: {"N": str(version + 1)}, "expires_at": to_value(expires)},
                        **condition)
                    return Rewritten.PUT
                if not item:
                    return Rewritten.UNCHANGED
                self.client.delete_item(TableName=self.table, Key=key, **condition)
                return Rewritten.DELETED
            except self.client.exceptions.ConditionalCheckFailedException:
                continue
        raise RollupContention(f"{target}: changed under every one of {MAX_ATTEMPTS} "
                               "writes")

    def forget(self, target: Target, markers: Mapping[str, str]) -> None:
        """Remove each job's marker from the item if it is at most the position given (one
        update for up to FORGET_CHUNK markers; one by one if one of them moved on)."""
        jobs = sorted(markers)
        for start in range(0, len(jobs), FORGET_CHUNK):
            chunk = jobs[start:start + FORGET_CHUNK]
            try:
                self._forget(target, {job: markers[job] for job in chunk})
            except self.client.exceptions.ConditionalCheckFailedException:
                for job in chunk if len(chunk) > 1 else ():
                    with contextlib.suppress(
                            self.client.exceptions.ConditionalCheckFailedException):
                        self._forget(target, {job: markers[job]})

    def _forget(self, target: Target, markers: Mapping[str, str]) -> None:
        names = {"#v": VERSION}
        values = {":1": {"N": "1"}}
        conditions = ["attribute_exists(series)"]
        for i, (job, upto) in enumerate(markers.items()):
            names[f"#m{i}"] = marker(job)
            values[f":u{i}"] = {"S": upto}
            conditions.append(f"(attribute_not_exists(#m{i}) OR #m{i} <= :u{i})")
        self.client.update_item(
            TableName=self.table, Key=_key(target),
            UpdateExpression="REMOVE " + ", ".join(f"#m{i}" for i in range(len(markers)))
            + " ADD #v :1",
            ConditionExpression=" AND ".join(conditions),
            ExpressionAttributeNames=names, ExpressionAttributeValues=values)

    def ledgers(self, job_ids: Iterable[str]) -> dict[str, str | None]:
        """Each job's last fully applied sequence number (None: none yet), read strongly
        consistent."""
        found: dict[str, str | None] = dict.fromkeys(job_ids)
        jobs = list(found)
        for start in range(0, len(jobs), BATCH_GET_KEYS):
            request = {self.table: {"Keys": [ledger_key(job) for job in
                                             jobs[start:start + BATCH_GET_KEYS]],
                                    "ConsistentRead": True}}
            for response in self._until_processed("batch_get_item", "UnprocessedKeys", request):
                for item in response.get("Responses", {}).get(self.table, []):
                    found[item["series"]["S"].removeprefix(f"{LEDGER}#")] = item["applied"]["S"]
        return found

    def mark_done(self, done: Mapping[str, str], expires_at: int) -> None:
        """Each job's ledger takes its sequence number (module docstring, step 3)."""
        puts = [{"PutRequest": {"Item": {**ledger_key(job), "applied": {"S": sequence},
                                         "expires_at": to_value(expires_at)}}}
                for job, sequence in sorted(done.items())]
        for start in range(0, len(puts), BATCH_WRITE_ITEMS):
            request = {self.table: puts[start:start + BATCH_WRITE_ITEMS]}
            for _ in self._until_processed("batch_write_item", "UnprocessedItems", request):
                pass

    def _until_processed(self, operation: str, unprocessed: str, request: dict[str, Any]
                         ) -> Iterable[dict[str, Any]]:
        """A batch call's responses, calling again for what each left unprocessed."""
        pause = UNPROCESSED_PAUSE_SECONDS
        for attempt in range(UNPROCESSED_ATTEMPTS):
            if attempt:
                time.sleep(pause)
                pause *= 2
            response = getattr(self.client, operation)(RequestItems=request)
            yield response
            request = response.get(unprocessed) or {}
            if not request:
                return
        raise Unprocessed(f"{operation}: DynamoDB left part of the stats table's request "
                          f"unprocessed {UNPROCESSED_ATTEMPTS} times")

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
        """A batch: 'applied', 'skipped' (applied before) and 'unchanged' records."""
        records = event.get("Records") or []
        changes = [parsed for parsed in map(self.parse, records) if parsed is not None]
        done = self.items.ledgers(dict.fromkeys(job_id for job_id, _, _ in changes))
        fresh = [(job_id, sequence, delta) for job_id, sequence, delta in changes
                 if (done[job_id] or "") < sequence]
        for write in writes(fresh):
            self.items.apply(write)
        last = {job_id: sequence for job_id, sequence, _ in fresh}
        self.items.mark_done(last, int(self.clock()) + LEDGER_TTL_SECONDS)
        markers: dict[Target, dict[str, str]] = {}
        for job_id, sequence, delta in changes:
            for target in delta:
                markers.setdefault(target, {})[job_id] = sequence
        for target in sorted(markers):
            self.items.forget(target, markers[target])
        return {"applied": len(fresh), "skipped": len(changes) - len(fresh),
                "unchanged": len(records) - len(changes)}

    @staticmethod
    def parse(record: Mapping[str, Any]) -> tuple[str, str, Contribution] | None:
        """A stream record's job, sequence number and change; None if it changes nothing
        (REMOVE, TTL deletions included: rollups outlive records)."""
        if record.get("eventName") not in ("INSERT", "MODIFY"):
            return None
        stream = record["dynamodb"]
        delta = change(stream.get("NewImage"), stream.get("OldImage"))
        if not delta:
            return None
        return (from_value(stream["Keys"]["job_id"]),
                str(stream["SequenceNumber"]).zfill(SEQUENCE_DIGITS), delta)


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
