"""Streamed events end to end on the local runtime, and what a batch's size costs.

    python bench/bench_ingest.py [--events 200000] [--shards 2]   (or: make bench-ingest)
    python bench/bench_ingest.py --batch-sizes 100,1000,5000,10000  (in-process, no runtime)

The first form starts `python -m localruntime` on a free port (the ingest stream with
--shards shards), puts --events events with PutRecords from --producers threads at --rate
events/s (25,000; 0: as fast as they go), packed as `logctl send` packs them, and waits until every
one is counted in a completed record. It prints sustained events/s, from the first
PutRecords to the last record completing, and each event's latency from its PutRecords to
its object's completed record (P50/P99). Each event's `user_id` names the producer call that
carried it, so an object's lines say which calls they came from.

The second form measures, with moto in this process, what the ingest handler and then the
trigger and worker spend on batches of one-line records of each size: the fixed cost per
object against the cost per event, which decides the handler's batch size.
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import importlib
import json
import os
import platform
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.adapters import from_item
from chalicelib.core.jobs import STREAM_PREFIX
from chalicelib.core.results import epoch
from chalicelib.core.stream import numbered_lines, pack, put_requests
from chalicelib.ingest import EventProducer, random_partition_key
from localruntime.background import BackgroundRuntime, BackgroundRuntimeError
from logctl.stage import Stage, client, load_stage
from measure.host import cpu_check_seconds

ROOT = Path(__file__).resolve().parent.parent
FIRST_OBJECT_TIMEOUT_SECONDS = 60.0
QUIET_TIMEOUT_SECONDS = 120.0  # no new completed line for this long: give up
TARGETS = {"events_per_second": 20_000.0, "p50_seconds": 3.0}
OFFERED_RATE = 25_000.0
LEVELS = ("INFO", "INFO", "INFO", "WARN", "ERROR", "DEBUG")


class BenchError(Exception):
    """The benchmark could not run; the message says why."""


def event_line(i: int, call: int, now: float, tag: str = "call") -> bytes:
    return json.dumps({
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        "level": LEVELS[i % len(LEVELS)], "endpoint": f"/api/v1/items/{i % 50}",
        "response_time_ms": 5 + (i * 37) % 900, "status_code": 500 if i % 23 == 0 else 200,
        "user_id": f"{tag}-{call}"}, separators=(",", ":")).encode()


# ---- end to end through the local runtime ------------------------------------------------

@dataclasses.dataclass
class Put:
    seconds: float  # when the PutRecords call started (epoch)
    events: int


def put_events(stage: Stage, events: int, per_call: int, producers: int, rate: float = 0.0,
               tag: str = "call") -> tuple[dict[int, Put], float]:
    """`events` events, `per_call` lines a producer call (packed into records), from
    `producers` threads, call k starting no earlier than k * per_call / rate seconds in (0:
    as fast as they go); the bodies are made before the clock starts."""
    producer = EventProducer(client(stage, "kinesis"), stage.ingest_stream)
    now = time.time()
    bodies = []
    for call, start in enumerate(range(0, events, per_call)):
        count = min(per_call, events - start)
        bodies.append(b"".join(event_line(start + i, call, now, tag) + b"\n"
                               for i in range(count)))
    puts: dict[int, Put] = {}

    def put(call: int) -> None:
        if rate:
            time.sleep(max(0.0, started + call * per_call / rate - time.time()))
        puts[call] = Put(time.time(), bodies[call].count(b"\n"))
        records = pack(numbered_lines([bodies[call]]), random_partition_key)
        for request in put_requests(records):
            outcome = producer.put(request)
            if outcome.failed:
                raise BenchError(f"PutRecords refused {len(outcome.failed)} records "
                                 f"({outcome.error}) after retries")

    started = time.time()
    with ThreadPoolExecutor(max_workers=producers) as pool:
        for future in [pool.submit(put, call) for call in range(len(bodies))]:
            future.result()
    return puts, started


def completed_stream_records(stage: Stage, ddb: Any) -> list[dict[str, Any]]:
    records = []
    for page in ddb.get_paginator("scan").paginate(
            TableName=stage.results_table, FilterExpression="begins_with(#k, :p)",
            ExpressionAttributeNames={"#k": "key"},
            ExpressionAttributeValues={":p": {"S": STREAM_PREFIX}}):
        records += [from_item(item) for item in page.get("Items", [])]
    return records


def wait_for_lines(stage: Stage, events: int) -> list[dict[str, Any]]:
    ddb = client(stage, "dynamodb")
    s3 = client(stage, "s3")
    counted, changed = -1, time.monotonic()
    first_deadline = time.monotonic() + FIRST_OBJECT_TIMEOUT_SECONDS
    while True:
        records = completed_stream_records(stage, ddb)
        failed = [r for r in records if r.get("status") == "failed"]
        if failed:
            raise BenchError(f"{len(failed)} streamed objects failed, e.g. {failed[0]['key']}: "
                             f"{failed[0].get('failure_reason')}")
        lines = sum(int(r.get("line_count") or 0) for r in records
                    if r.get("status") == "completed")
        if lines >= events:
            return records
        if lines != counted:
            counted, changed = lines, time.monotonic()
        if time.monotonic() - changed > QUIET_TIMEOUT_SECONDS:
            raise BenchError(f"{lines:,} of {events:,} events counted, none more for "
                             f"{QUIET_TIMEOUT_SECONDS:g} s")
        if not records and time.monotonic() > first_deadline:
            listed = s3.list_objects_v2(Bucket=stage.bucket, Prefix=STREAM_PREFIX, MaxKeys=1)
            where = ("objects are under logs/stream/ but no job was made of them"
                     if listed.get("KeyCount") else
                     "no object under logs/stream/: does the local runtime run the ingest "
                     "handler's Kinesis source (localruntime/sources)?")
            raise BenchError(f"nothing counted {FIRST_OBJECT_TIMEOUT_SECONDS:g} s after the "
                             f"puts: {where}")
        time.sleep(0.25)


def latencies(stage: Stage, records: list[dict[str, Any]], puts: dict[int, Put]
              ) -> tuple[list[tuple[float, int]], float]:
    """(seconds from PutRecords to the object's completed record, events) per timed call and
    object, and when the last object holding timed events completed (warm-up ones aside)."""
    s3 = client(stage, "s3")
    found: list[tuple[float, int]] = []
    last = 0.0
    for record in records:
        body = s3.get_object(Bucket=record["bucket"], Key=record["key"],
                             VersionId=record["version_id"])["Body"].read()
        calls: Counter[int] = Counter()
        for line in gzip.decompress(body).splitlines():
            tag, call = json.loads(line)["user_id"].split("-")
            if tag == "call":
                calls[int(call)] += 1
        done = epoch(record["completed_at"])
        found += [(done - puts[call].seconds, n) for call, n in calls.items()]
        if calls:
            last = max(last, done)
    return found, last


def weighted_percentile(samples: list[tuple[float, int]], p: float) -> float:
    ordered = sorted(samples)
    total = sum(n for _, n in ordered)
    rank, seen = max(1, -(-total * p // 100)), 0
    for value, n in ordered:
        seen += n
        if seen >= rank:
            return value
    return ordered[-1][0]


def run_end_to_end(args: argparse.Namespace) -> int:
    log_path = ROOT / "results" / "raw" / "bench_ingest.runtime.log"
    print(f"bench-ingest: starting the local runtime on a free port, {args.shards} shard(s) "
          f"(log: {log_path})", flush=True)
    before = cpu_check_seconds()
    runtime = BackgroundRuntime(log_path, "--no-reload", env={"INGEST_SHARDS": str(args.shards)})
    try:
        runtime.wait_ready()
        stage = load_stage("local", endpoint_url=runtime.endpoint)
        if args.warmup:  # the handlers' first invocations import the app (cold starts)
            put_events(stage, args.warmup, args.per_call, args.producers, tag="warm")
            wait_for_lines(stage, args.warmup)
        puts, started = put_events(stage, args.events, args.per_call, args.producers,
                                   args.rate)
        put_seconds = time.time() - started
        records = wait_for_lines(stage, args.warmup + args.events)
        samples, last = latencies(stage, records, puts)
    except (BotoCoreError, ClientError) as exc:
        raise BenchError(f"AWS call failed: {exc}") from exc
    except BackgroundRuntimeError as exc:
        raise BenchError(str(exc)) from exc
    finally:
        runtime.stop()
    rate = args.events / (last - started)
    p50, p99 = weighted_percentile(samples, 50), weighted_percentile(samples, 99)
    sizes = [int(r["line_count"]) for r in records]
    print(f"bench-ingest: {platform.node()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}; CPU check (3 M additions) {before:.3f} s before, "
          f"{cpu_check_seconds():.3f} s after")
    print(f"{args.events:,} events (after {args.warmup:,} warm-up ones) in {len(puts):,} "
          f"producer calls of {args.per_call:,} lines from {args.producers} threads, offered "
          f"at {f'{args.rate:,.0f} events/s' if args.rate else 'full speed'}: put in "
          f"{put_seconds:.1f} s ({args.events / put_seconds:,.0f} events/s)")
    print(f"{len(records)} objects, warm-up ones included: {min(sizes):,} to {max(sizes):,} "
          f"events each (median {sorted(sizes)[len(sizes) // 2]:,})")
    print(f"sustained, first PutRecords to the last event counted: {rate:,.0f} events/s "
          f"({last - started:.1f} s)")
    print(f"event to result: P50 {p50:.2f} s, P99 {weighted_percentile(samples, 99):.2f} s, "
          f"max {max(v for v, _ in samples):.2f} s")
    met = (rate >= TARGETS["events_per_second"], p50 <= TARGETS["p50_seconds"])
    print(f"targets: >= {TARGETS['events_per_second']:,.0f} events/s "
          f"{'met' if met[0] else 'NOT met'}; P50 <= {TARGETS['p50_seconds']:g} s "
          f"{'met' if met[1] else 'NOT met'} (P99 {p99:.2f} s)")
    return 0


# ---- the cost of a batch, in process ------------------------------------------------------

def measure_batch_sizes(sizes: list[int], events: int) -> list[tuple[int, float, float]]:
    """(batch size, ingest CPU ms per 1,000 events, trigger+worker CPU ms per 1,000 events)."""
    from chalice.test import Client
    from moto import mock_aws

    from localruntime.endpoint.motofixes import apply_in_process
    from logctl.provision import provision

    apply_in_process()
    for key in [k for k in os.environ if k.startswith("AWS_")]:
        del os.environ[key]
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                      AWS_DEFAULT_REGION="us-east-1", POWERTOOLS_LOG_LEVEL="WARNING",
                      POWERTOOLS_METRICS_DISABLED="true")
    stage = dataclasses.replace(load_stage("local"), endpoint_url=None)
    os.environ.update(stage.environment)
    rows = []
    for size in sizes:
        with mock_aws():
            provision(stage)
            sys.modules.pop("app", None)
            app = importlib.import_module("app")
            kinesis, s3, sqs = (client(stage, name) for name in ("kinesis", "s3", "sqs"))
            now = time.time()
            lines = [event_line(i, 0, now) + b"\n" for i in range(events)]
            for start in range(0, events, 500):
                kinesis.put_records(StreamName=stage.ingest_stream, Records=[
                    {"Data": line, "PartitionKey": "k"} for line in lines[start:start + 500]])
            batches = _shard_batches(kinesis, stage, size)
            with Client(app.app) as test_client:
                cpu = time.process_time()
                for batch in batches:
                    test_client.lambda_.invoke("ingest", batch)
                ingest_cpu = time.process_time() - cpu
                cpu = time.process_time()
                _process_objects(test_client, s3, sqs, stage)
                pipeline_cpu = time.process_time() - cpu
            sys.modules.pop("app", None)
        rows.append((size, ingest_cpu * 1e6 / events, pipeline_cpu * 1e6 / events))
    return rows


def _shard_batches(kinesis: Any, stage: Stage, size: int) -> list[dict[str, Any]]:
    import base64

    summary = kinesis.describe_stream_summary(StreamName=stage.ingest_stream)
    arn = summary["StreamDescriptionSummary"]["StreamARN"]
    batches = []
    for shard in kinesis.list_shards(StreamName=stage.ingest_stream)["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamName=stage.ingest_stream, ShardId=shard["ShardId"],
            ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while True:
            response = kinesis.get_records(ShardIterator=iterator, Limit=size)
            if not response["Records"]:
                break
            batches.append({"Records": [{
                "kinesis": {"sequenceNumber": r["SequenceNumber"], "partitionKey": "k",
                            "data": base64.b64encode(r["Data"]).decode(),
                            "approximateArrivalTimestamp":
                                r["ApproximateArrivalTimestamp"].timestamp()},
                "eventID": f"{shard['ShardId']}:{r['SequenceNumber']}",
                "eventSourceARN": arn} for r in response["Records"]]})
            iterator = response["NextShardIterator"]
    return batches


def _process_objects(test_client: Any, s3: Any, sqs: Any, stage: Stage) -> None:
    url = sqs.get_queue_url(QueueName=stage.jobs_queue)["QueueUrl"]
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=stage.bucket,
                                                                  Prefix=STREAM_PREFIX):
        for version in page.get("Versions", []):
            event = test_client.events.generate_s3_event(stage.bucket,
                                                         quote_plus(version["Key"]))
            event["Records"][0]["s3"]["object"].update(
                size=version["Size"], eTag=version["ETag"].strip('"'),
                versionId=version["VersionId"])
            test_client.lambda_.invoke("trigger", event)
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                          AttributeNames=["All"]).get("Messages", []):
        test_client.lambda_.invoke("worker", {"Records": [
            {"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"],
             "body": m["Body"], "attributes": m["Attributes"], "eventSource": "aws:sqs"}
            for m in messages]})


def run_batch_sizes(args: argparse.Namespace) -> int:
    sizes = [int(s) for s in args.batch_sizes.split(",")]
    print(f"bench-ingest: {args.sweep_events:,} one-line records per size, moto in process; "
          f"CPU time, {platform.node()}, {os.cpu_count()} cores", flush=True)
    print(f"{'batch size':>10}  {'ingest us/event':>15}  {'trigger+worker us/event':>23}  "
          f"{'total us/event':>14}  {'objects per 200k':>16}")
    for size, ingest, pipeline in measure_batch_sizes(sizes, args.sweep_events):
        print(f"{size:>10,}  {ingest:>15.1f}  {pipeline:>23.1f}  {ingest + pipeline:>14.1f}  "
              f"{-(-200_000 // size):>16,}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/bench_ingest.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--per-call", type=int, default=2_000,
                        help="lines per producer call, packed into records (default 2,000)")
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=4_000,
                        help="events put and counted before the clock starts (default 4,000)")
    parser.add_argument("--rate", type=float, default=OFFERED_RATE,
                        help=f"events/s the producers offer (default {OFFERED_RATE:,.0f}: "
                             "above the target, since the sustained rate counts the last "
                             "event's latency too; 0: as fast as they go, a burst)")
    parser.add_argument("--producers", type=int, default=2,
                        help="threads putting events (default 2)")
    parser.add_argument("--batch-sizes", default=None,
                        help="instead: measure these batch sizes in process (e.g. 100,1000)")
    parser.add_argument("--sweep-events", type=int, default=20_000,
                        help="records per batch size with --batch-sizes (default 20,000)")
    args = parser.parse_args(argv)
    try:
        return run_batch_sizes(args) if args.batch_sizes else run_end_to_end(args)
    except BenchError as exc:
        print(f"bench-ingest: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
