"""The results table's stream, read from moto and shaped as Lambda hands it to a handler."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

import boto3
from botocore.config import Config

# moto answers stream calls only with botocore's account-id endpoint mode off.
STREAMS_CONFIG = Config(account_id_endpoint_mode="disabled")


def lambda_shape(value: Any) -> Any:
    """A boto3 value as Lambda's JSON event has it: binary as base64, times as epoch."""
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode()
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, dict):
        return {k: lambda_shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [lambda_shape(v) for v in value]
    return value


class StreamReader:
    """Every shard of a table's stream from TRIM_HORIZON; `read()` returns what is new."""

    def __init__(self, region: str, dynamodb: Any, table: str) -> None:
        self.arn = dynamodb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
        self.client = boto3.client("dynamodbstreams", region_name=region, config=STREAMS_CONFIG)
        self.iterators: dict[str, str] = {}

    def read(self) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = []
        shards = self.client.describe_stream(StreamArn=self.arn)["StreamDescription"]["Shards"]
        for shard in shards:
            shard_id = shard["ShardId"]
            if shard_id not in self.iterators:
                self.iterators[shard_id] = self.client.get_shard_iterator(
                    StreamArn=self.arn, ShardId=shard_id,
                    ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
            response = self.client.get_records(ShardIterator=self.iterators[shard_id])
            self.iterators[shard_id] = response["NextShardIterator"]
            for record in response["Records"]:
                records.append({**lambda_shape(record), "eventSourceARN": self.arn})
        return records
