"""Kinesis records read from moto, shaped as Lambda's event source mapping delivers them."""

from __future__ import annotations

import base64
from typing import Any


def shard_records(kinesis: Any, stream: str) -> dict[str, list[dict[str, Any]]]:
    """Every record of each shard, oldest first (GetRecords from TRIM_HORIZON)."""
    shards = kinesis.list_shards(StreamName=stream)["Shards"]
    found: dict[str, list[dict[str, Any]]] = {}
    for shard in shards:
        iterator = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard["ShardId"],
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        records: list[dict[str, Any]] = []
        while iterator:
            response = kinesis.get_records(ShardIterator=iterator, Limit=10000)
            if not response["Records"]:
                break
            records += response["Records"]
            iterator = response.get("NextShardIterator")
        found[shard["ShardId"]] = records
    return found


def lambda_event(stream_arn: str, shard_id: str, records: list[dict[str, Any]],
                 region: str = "us-east-1") -> dict[str, Any]:
    return {"Records": [{
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": r["PartitionKey"],
            "sequenceNumber": r["SequenceNumber"],
            "data": base64.b64encode(r["Data"]).decode("ascii"),
            "approximateArrivalTimestamp": r["ApproximateArrivalTimestamp"].timestamp(),
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"{shard_id}:{r['SequenceNumber']}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": "arn:aws:iam::123456789012:role/lambda-role",
        "awsRegion": region,
        "eventSourceARN": stream_arn,
    } for r in records]}
