"""What the rollups cost in DynamoDB capacity per file (in process, moto).

    python bench/bench_rollup_cost.py [--files-per-hour 10] [--lines 1000] [--endpoints 10]
                                      [--batch-files 1,20]   (or: make bench-rollup-cost)

A UTC day of completed files, --files-per-hour each hour, each with --lines events in its
hour over --endpoints endpoints and lognormal response times, goes through the rollups
handler as the results table's stream delivers it (INSERT queued, MODIFY processing, MODIFY
completed), in batches of the records of --batch-files files (1: a quiet pipeline, each
file's records alone; more: a busy one). Every stats-table call is metered as DynamoDB bills
it on demand: a write by the larger of the item's sizes before and after (1 WCU a KB), a
consistent read by its size (1 RCU per 4 KB). Prints write and read units per file, the
items' sizes at the end of the day, and the price per million files.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

WCU_PRICE = 0.625 / 1e6  # on-demand us-east-1, the report's prices (docs/report.md)
RCU_PRICE = 0.125 / 1e6


def attribute_bytes(value: dict[str, Any]) -> int:
    """DynamoDB's size of one attribute value (DynamoDB JSON)."""
    kind, inner = next(iter(value.items()))
    if kind == "B":
        return len(inner)
    if kind == "S":
        return len(inner.encode())
    if kind == "N":
        return len(inner.strip("-").replace(".", "")) // 2 + 2
    return len(json.dumps(inner))


def item_bytes(item: dict[str, Any] | None) -> int:
    return sum(len(name.encode()) + attribute_bytes(value)
               for name, value in (item or {}).items())


class Meter:
    """A DynamoDB client that counts capacity units as on-demand billing does."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.exceptions = client.exceptions
        self.sizes: dict[str, int] = {}
        self.write_units = 0
        self.read_units = 0

    @staticmethod
    def _key(key: dict[str, Any]) -> str:
        return json.dumps(key, sort_keys=True)

    def get_item(self, **kwargs: Any) -> Any:
        response = self.client.get_item(**kwargs)
        self.read_units += max(1, math.ceil(item_bytes(response.get("Item")) / 4096))
        return response

    def put_item(self, **kwargs: Any) -> Any:
        item = kwargs["Item"]
        key = self._key({"series": item["series"], "hour": item["hour"]})
        after = item_bytes(item)
        self.write_units += max(1, math.ceil(max(after, self.sizes.get(key, 0)) / 1024))
        response = self.client.put_item(**kwargs)
        self.sizes[key] = after
        return response

    def update_item(self, **kwargs: Any) -> Any:
        key = self._key(kwargs["Key"])
        self.write_units += max(1, math.ceil(self.sizes.get(key, 100) / 1024))
        return self.client.update_item(**kwargs)

    def batch_get_item(self, **kwargs: Any) -> Any:
        """Billed as a GetItem of each item."""
        response = self.client.batch_get_item(**kwargs)
        for keys in kwargs["RequestItems"].values():
            found = {self._key({"series": i["series"], "hour": i["hour"]}): i
                     for items in response.get("Responses", {}).values() for i in items}
            for key in keys["Keys"]:
                self.read_units += max(1, math.ceil(
                    item_bytes(found.get(self._key(key))) / 4096))
        return response

    def batch_write_item(self, **kwargs: Any) -> Any:
        """Billed as a PutItem of each item."""
        for requests in kwargs["RequestItems"].values():
            for request in requests:
                item = request["PutRequest"]["Item"]
                key = self._key({"series": item["series"], "hour": item["hour"]})
                after = item_bytes(item)
                self.write_units += max(1, math.ceil(max(after, self.sizes.get(key, 0)) / 1024))
                self.sizes[key] = after
        return self.client.batch_write_item(**kwargs)


def file_lines(rng: random.Random, hour: datetime, lines: int, endpoints: int) -> bytes:
    out = []
    for _ in range(lines):
        error = rng.random() < 0.05
        out.append(json.dumps({
            "timestamp": (hour + timedelta(seconds=rng.randrange(3600))).isoformat(),
            "level": "ERROR" if error else rng.choice(["INFO", "INFO", "WARN", "DEBUG"]),
            "endpoint": f"/api/v1/resource{rng.randrange(endpoints)}",
            "response_time_ms": round(rng.lognormvariate(4, 1), 3),
            "status_code": 500 if error else rng.choice([200, 200, 201, 404]),
            "user_id": "u"}))
    return ("\n".join(out) + "\n").encode()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files-per-hour", type=int, default=10)
    parser.add_argument("--lines", type=int, default=1000)
    parser.add_argument("--endpoints", type=int, default=10)
    parser.add_argument("--batch-files", default="1,20",
                        help="files whose records make one batch, comma-separated runs")
    args = parser.parse_args(argv)
    print(f"{24 * args.files_per_hour} files a day ({args.files_per_hour} an hour, {args.lines} "
          f"lines, {args.endpoints} endpoints each), Python {sys.version.split()[0]}")
    for batch_files in (int(n) for n in args.batch_files.split(",")):
        run(args, batch_files)
    return 0


def run(args: argparse.Namespace, batch_files: int) -> None:
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                      AWS_DEFAULT_REGION="us-east-1")
    import boto3
    from moto import mock_aws

    from chalicelib.adapters import to_item
    from chalicelib.core.eventtime import hour_of_iso
    from chalicelib.core.jobs import Job
    from chalicelib.core.results import completed_record, iso, processing_record, queued_record
    from chalicelib.core.summary import aggregate_chunks
    from chalicelib.rollups import DynamoRollupItems, RollupsHandler

    rng = random.Random(7)
    day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    sequence = 0

    def stream(new: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any]:
        nonlocal sequence
        sequence += 1
        body: dict[str, Any] = {"Keys": {"job_id": {"S": new["job_id"]}},
                                "SequenceNumber": str(sequence), "NewImage": to_item(new)}
        if old is not None:
            body["OldImage"] = to_item(old)
        return {"eventName": "MODIFY" if old else "INSERT", "dynamodb": body}

    with mock_aws():
        client = boto3.client("dynamodb")
        client.create_table(
            TableName="stats", BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "series", "KeyType": "HASH"},
                       {"AttributeName": "hour", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "series", "AttributeType": "S"},
                                  {"AttributeName": "hour", "AttributeType": "S"}])
        meter = Meter(client)
        handler = RollupsHandler(DynamoRollupItems(meter, "stats"))
        files = 0
        batch: list[dict[str, Any]] = []
        for hour_number in range(24):
            hour = day + timedelta(hours=hour_number)
            for n in range(args.files_per_hour):
                uploaded = iso((hour + timedelta(minutes=59)).timestamp())
                job = Job(job_id=f"{files:032x}", bucket="b", key=f"logs/{hour_number}/{n}",
                          size=1, etag="e", version_id=None, uploaded_at=uploaded,
                          created_at=uploaded)
                data = file_lines(rng, hour, args.lines, args.endpoints)
                aggregate = aggregate_chunks([data])
                queued = dict(queued_record(job))
                processing = {**queued, **processing_record(job, 0.0, 1)}
                done = dict(completed_record(job, aggregate.result(), 0.0, 0.1, 1,
                                             aggregate.event_hours(hour_of_iso(uploaded))))
                batch += [stream(queued, None), stream(processing, queued),
                          stream(done, processing)]
                files += 1
                if files % batch_files == 0:
                    handler.handle({"Records": batch})
                    batch = []
        if batch:
            handler.handle({"Records": batch})
        day_sizes = [size for key, size in meter.sizes.items() if '"hours#' in key]
        endpoint_sizes = [size for key, size in meter.sizes.items() if '"endpoints#' in key]
    writes, reads = meter.write_units / files, meter.read_units / files
    print(f"batches of {batch_files} file(s): per file {writes:.1f} write units, {reads:.1f} "
          f"read units (on demand: ${(writes * WCU_PRICE + reads * RCU_PRICE) * 1e6:.2f} per "
          f"million files); at the day's end the day item has {max(day_sizes):,} bytes, "
          f"endpoint items {min(endpoint_sizes):,}-{max(endpoint_sizes):,}")


if __name__ == "__main__":
    sys.exit(main())
