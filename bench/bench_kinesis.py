"""moto's Kinesis PutRecords and GetRecords as the shard grows, with and without the
endpoint's `kinesis-shard` speed-up, side by side.

    python bench/bench_kinesis.py [--lengths 10000,100000]

Each variant runs in a fresh process with in-process moto: it fills one shard up to each
length with 100-byte records (put straight into moto's shard, as PutRecords would store
them, so that filling does not take minutes without the speed-up), then measures one more
PutRecords of 500 records and a GetRecords of 100 records from the middle of the shard:
median CPU time of 5 of each (CPU, so a busy machine does not blur it).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from bench.motovariant import run_variant

REPEATS = 5
BATCH = 500


def measure(lengths: list[int]) -> dict[str, dict[str, float]]:
    import base64

    import boto3
    from moto import mock_aws
    from moto.kinesis.models import Record, kinesis_backends

    results: dict[str, dict[str, float]] = {}
    with mock_aws():
        kinesis = boto3.client("kinesis", region_name="us-east-1", aws_access_key_id="test",
                               aws_secret_access_key="test")
        kinesis.create_stream(StreamName="bench", ShardCount=1)
        batch = [{"Data": b"x" * 100, "PartitionKey": "p"} for _ in range(BATCH)]
        shard = kinesis_backends["123456789012"]["us-east-1"].streams["bench"].shards[
            "shardId-000000000000"]
        data = base64.b64encode(b"x" * 100).decode()
        size = 0
        for length in lengths:
            while size < length:
                size += 1
                shard.records[size] = Record("p", data, size, "")
            puts, gets = [], []
            for _ in range(REPEATS):
                started = time.process_time()
                kinesis.put_records(StreamName="bench", Records=batch)
                puts.append(time.process_time() - started)
                size += BATCH
                iterator = kinesis.get_shard_iterator(
                    StreamName="bench", ShardId="shardId-000000000000",
                    ShardIteratorType="AT_SEQUENCE_NUMBER",
                    StartingSequenceNumber=str(size // 2))["ShardIterator"]
                started = time.process_time()
                got = kinesis.get_records(ShardIterator=iterator, Limit=100)["Records"]
                gets.append(time.process_time() - started)
                assert len(got) == 100
            results[str(length)] = {"put_ms": statistics.median(puts) * 1000,
                                    "get_ms": statistics.median(gets) * 1000}
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", default="10000,100000")
    args = parser.parse_args(argv)
    lengths = [int(n) for n in args.lengths.split(",")]
    without = run_variant("bench.bench_kinesis", "kinesis-shard", lengths)
    with_ = run_variant("bench.bench_kinesis", "", lengths)
    print(f"{'records in shard':>16} | {'PutRecords 500, CPU ms':>26} | "
          f"{'GetRecords 100, CPU ms':>26}")
    print(f"{'':>16} | {'moto':>8} {'speed-up':>9} {'ratio':>7} | "
          f"{'moto':>8} {'speed-up':>9} {'ratio':>7}")
    for length in map(str, lengths):
        a, b = without[length], with_[length]
        print(f"{int(length):>16,} | {a['put_ms']:>8.1f} {b['put_ms']:>9.1f} "
              f"{a['put_ms'] / b['put_ms']:>6.1f}x | {a['get_ms']:>8.1f} {b['get_ms']:>9.1f} "
              f"{a['get_ms'] / b['get_ms']:>6.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
