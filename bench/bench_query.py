"""moto's DynamoDB Query as the table grows, with and without the endpoint's
`query-partition` speed-up, side by side.

    python bench/bench_query.py [--sizes 1000,8000]

Each variant runs in a fresh process with in-process moto and two tables filled straight
into moto (as PutItem would store them, so that filling takes seconds): `series` (a hash
and a range key: partitions of 24 items of 150 numeric attributes, like an hour's rollup
items) and `jobs` (a hash key of random hex, a status index: a quarter of the items
`failed`). At each size it measures a table Query of a partition that does not exist, of a
partition of 24 items, of its first 5, and an index Query of 51 `failed` items newest first:
median CPU time of 7 of each, the answer's parsing by boto3 included (CPU, so a busy machine
does not blur it).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Any

from bench.motovariant import run_variant

REPEATS = 7
PARTITION = 24
ATTRIBUTES = 150
QUERIES = ("no such partition", "partition of 24", "Limit 5 of 24", "index, Limit 51")


def _tables(ddb: Any) -> None:
    def key(*names: tuple[str, str]) -> list[dict[str, str]]:
        return [{"AttributeName": name, "KeyType": kind} for name, kind in names]

    ddb.create_table(TableName="series", BillingMode="PAY_PER_REQUEST",
                     KeySchema=key(("series", "HASH"), ("hour", "RANGE")),
                     AttributeDefinitions=[{"AttributeName": "series", "AttributeType": "S"},
                                           {"AttributeName": "hour", "AttributeType": "S"}])
    ddb.create_table(
        TableName="jobs", BillingMode="PAY_PER_REQUEST", KeySchema=key(("job_id", "HASH")),
        AttributeDefinitions=[{"AttributeName": name, "AttributeType": "S"}
                              for name in ("job_id", "status", "created_at")],
        GlobalSecondaryIndexes=[{"IndexName": "by_status",
                                 "KeySchema": key(("status", "HASH"), ("created_at", "RANGE")),
                                 "Projection": {"ProjectionType": "ALL"}}])


def measure(sizes: list[int]) -> dict[str, dict[str, float]]:
    import copy
    import hashlib

    import boto3
    from moto import mock_aws
    from moto.dynamodb.models import dynamodb_backends
    from moto.dynamodb.models.dynamo_type import DynamoType, Item

    results: dict[str, dict[str, float]] = {}
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1", aws_access_key_id="test",
                           aws_secret_access_key="test")
        _tables(ddb)
        tables = dynamodb_backends["123456789012"]["us-east-1"].tables
        # Copies of one item each (Item() checks the item's size at each attribute it adds).
        counters = Item(None, None, {f"b{k}": {"N": str(k)} for k in range(ATTRIBUTES)})
        summary = Item(None, None, {f"a{k}": {"S": "x" * 20} for k in range(12)})

        def item(like: Any, key: DynamoType, sort: DynamoType | None, **attrs: Any) -> Any:
            made = copy.deepcopy(like)
            made.hash_key, made.range_key = key, sort
            for name, value in attrs.items():
                dict.__setitem__(made.attrs, name, DynamoType(value))
            return made

        filled = 0
        for size in sizes:
            while filled < size:
                series, hour = divmod(filled, PARTITION)
                series_key = DynamoType({"S": f"upload#{series:05}"})
                hour_key = DynamoType({"S": f"{hour:02}"})
                tables["series"].items[series_key][hour_key] = item(
                    counters, series_key, hour_key, series=series_key, hour=hour_key)
                job_id = DynamoType({"S": hashlib.sha256(str(filled).encode()).hexdigest()})
                tables["jobs"].items[job_id] = item(
                    summary, job_id, None, job_id=job_id,
                    status={"S": "failed" if filled % 4 == 3 else "completed"},
                    created_at={"S": f"2026-12-06T{filled:08}"})
                filled += 1
            middle = f"upload#{size // PARTITION // 2:05}"

            def partition(series: str, **extra: Any) -> Any:
                return ddb.query(TableName="series", KeyConditionExpression="series = :s",
                                 ExpressionAttributeValues={":s": {"S": series}}, **extra)

            calls = {
                QUERIES[0]: lambda: partition("upload#none"),
                QUERIES[1]: lambda m=middle: partition(m),
                QUERIES[2]: lambda m=middle: partition(m, Limit=5),
                QUERIES[3]: lambda: ddb.query(
                    TableName="jobs", IndexName="by_status", KeyConditionExpression="#s = :s",
                    ExpressionAttributeNames={"#s": "status"},
                    ExpressionAttributeValues={":s": {"S": "failed"}}, ScanIndexForward=False,
                    Limit=51),
            }
            for name, call in calls.items():
                spent = []
                for _ in range(REPEATS):
                    started = time.process_time()
                    call()
                    spent.append(time.process_time() - started)
                results[f"{size}/{name}"] = {"ms": statistics.median(spent) * 1000}
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,8000")
    args = parser.parse_args(argv)
    sizes = sorted(int(n) for n in args.sizes.split(","))
    if not sizes or sizes[0] < 2 * PARTITION:
        parser.error(f"--sizes: each at least {2 * PARTITION} items")
    without = run_variant("bench.bench_query", "query-partition", sizes)
    with_ = run_variant("bench.bench_query", "", sizes)
    print(f"{'items in each table':>19} | {'Query':<18} | {'moto, CPU ms':>12} | "
          f"{'speed-up, CPU ms':>16} | {'ratio':>6}")
    for size in sizes:
        for name in QUERIES:
            a, b = without[f"{size}/{name}"]["ms"], with_[f"{size}/{name}"]["ms"]
            print(f"{size:>19,} | {name:<18} | {a:>12.1f} | {b:>16.1f} | "
                  f"{a / max(b, 0.01):>5.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
