"""The stream pollers against the runtime's endpoint: what they read, the events they build
(which Chalice must parse), moto invoking nothing itself, TTL deletions, read faults."""

from __future__ import annotations

import base64
import http.client
import io
import json
import os
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from chalice.app import DynamoDBEvent, KinesisEvent

from localruntime.background import free_port
from localruntime.faults import POLLER_APP_ID, FaultPlan, count_faults
from localruntime.functions.invoker import Invoker, Outcome
from localruntime.log import Console
from localruntime.sources.streams import (
    BatchSettler,
    DynamoDBReader,
    KinesisReader,
    QueueDestination,
    StreamOptions,
    StreamPoller,
    StreamReader,
)

ROOT = Path(__file__).resolve().parents[2]
ROLE = "arn:aws:iam::123456789012:role/app-local"
FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:app-local-f"


class Endpoint:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "localruntime.endpoint.server", "--port",
                 str(self.port), "--exit-with-parent", *self._fault_args(env)],
                cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), **env},
                stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            try:
                http.client.HTTPConnection("127.0.0.1", self.port, timeout=1).connect()
                return
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.process.kill()
                    pytest.fail("the endpoint did not start")
                time.sleep(0.05)

    @staticmethod
    def _fault_args(env: dict[str, str]) -> list[str]:
        plan = env.pop("FAULTS", None)
        return ["--faults", plan] if plan else []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, service: str, app_id: str | None = None) -> Any:
        return boto3.client(service, endpoint_url=self.url, region_name="us-east-1",
                            aws_access_key_id="test", aws_secret_access_key="test",
                            config=Config(retries={"max_attempts": 1},
                                          account_id_endpoint_mode="disabled",
                                          user_agent_appid=app_id))

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoint]:
    running = Endpoint({"LOCALRUNTIME_TTL_SWEEP_SECONDS": "0.2"},
                       tmp_path_factory.mktemp("endpoint") / "endpoint.log")
    yield running
    running.stop()


class RecordingInvoker(Invoker):
    """Hands each event to `reply` as Chalice would see it."""

    def __init__(self, reply: Callable[[dict[str, Any]], tuple[bool, Any]]) -> None:
        super().__init__(Console(io.StringIO(), status_line=False))
        self.reply = reply
        self.events: list[dict[str, Any]] = []

    def invoke(self, function: str, event: dict[str, Any], *, batch_size: int, source: str,
               judge: Any = None) -> Outcome:
        self.events.append(event)
        ok, result = self.reply(event)
        if not ok:
            return Outcome(False, None, "error", "req-1", None)
        failed = judge(result) if judge else []
        return Outcome(True, result, "ok", "req-1", failed)


def run(reader: StreamReader, invoker: RecordingInvoker, options: StreamOptions,
        sqs: Any, position: str = "TRIM_HORIZON") -> StreamPoller:
    shutdown = threading.Event()
    settler = BatchSettler("f", FUNCTION_ARN, reader, invoker, invoker.console,
                           lambda: options, lambda arn: QueueDestination(sqs, arn), shutdown,
                           retry_base_seconds=0.01)
    poller = StreamPoller("f", reader, settler, lambda: options, position, invoker.console,
                          shutdown, refresh_seconds=0.1)
    poller.start()
    return poller


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def records(invoker: RecordingInvoker) -> list[dict[str, Any]]:
    return [r for event in list(invoker.events) for r in event["Records"]]


def table_with_stream(ddb: Any, name: str) -> str:
    ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
                     StreamSpecification={"StreamEnabled": True,
                                          "StreamViewType": "NEW_AND_OLD_IMAGES"})
    return str(ddb.describe_table(TableName=name)["Table"]["LatestStreamArn"])


def test_dynamodb_changes_reach_the_handler_as_lambda_sends_them(endpoint: Endpoint) -> None:
    ddb = endpoint.client("dynamodb")
    arn = table_with_stream(ddb, "changes")
    invoker = RecordingInvoker(lambda event: (True, None))
    reader = DynamoDBReader(endpoint.client("dynamodbstreams"), arn)
    poller = run(reader, invoker, StreamOptions(batch_size=2), endpoint.client("sqs"))
    try:
        ddb.put_item(TableName="changes", Item={"k": {"S": "a"}, "n": {"N": "1"},
                                                "b": {"B": b"\x00\xff"}})
        ddb.update_item(TableName="changes", Key={"k": {"S": "a"}},
                        UpdateExpression="SET n = :two",
                        ExpressionAttributeValues={":two": {"N": "2"}})
        ddb.delete_item(TableName="changes", Key={"k": {"S": "a"}})
        wait_for(lambda: len(records(invoker)) == 3, "three changes")
    finally:
        poller.stop()
    assert [len(e["Records"]) for e in invoker.events] == [2, 1]
    insert, modify, remove = records(invoker)
    assert [r["eventName"] for r in (insert, modify, remove)] == ["INSERT", "MODIFY", "REMOVE"]
    assert insert["eventSourceARN"] == arn and insert["eventSource"] == "aws:dynamodb"
    assert insert["awsRegion"] == "us-east-1" and insert["eventVersion"] == "1.1"
    assert insert["dynamodb"]["NewImage"]["b"] == {"B": base64.b64encode(b"\x00\xff").decode()}
    assert modify["dynamodb"]["OldImage"]["n"] == {"N": "1"}
    assert modify["dynamodb"]["NewImage"]["n"] == {"N": "2"}
    assert "userIdentity" not in remove
    sequences = [int(r["dynamodb"]["SequenceNumber"]) for r in (insert, modify, remove)]
    assert sequences == sorted(sequences)
    parsed = list(DynamoDBEvent(invoker.events[0], None))
    assert parsed[0].table_name == "changes" and parsed[0].new_image["n"] == {"N": "1"}
    assert abs(parsed[0].timestamp.timestamp() - time.time()) < 3600 * 24


def test_kinesis_records_reach_the_handler_as_lambda_sends_them(endpoint: Endpoint) -> None:
    kinesis = endpoint.client("kinesis")
    kinesis.create_stream(StreamName="events", ShardCount=2)
    kinesis.put_records(StreamName="events", Records=[
        {"Data": f"line {i}\n".encode(), "PartitionKey": f"p{i}"} for i in range(20)])
    invoker = RecordingInvoker(lambda event: (True, None))
    reader = KinesisReader(endpoint.client("kinesis"), "events", "us-east-1", ROLE)
    poller = run(reader, invoker, StreamOptions(batch_size=100), endpoint.client("sqs"))
    try:
        wait_for(lambda: len(records(invoker)) == 20, "twenty records")
    finally:
        poller.stop()
    assert all(len({r["eventID"].split(":")[0] for r in e["Records"]}) == 1
               for e in invoker.events)
    record = records(invoker)[0]
    assert record["eventSourceARN"] == "arn:aws:kinesis:us-east-1:123456789012:stream/events"
    assert record["eventName"] == "aws:kinesis:record" and record["invokeIdentityArn"] == ROLE
    assert record["eventID"] == (f"{record['eventID'].split(':')[0]}:"
                                 f"{record['kinesis']['sequenceNumber']}")
    parsed = [r for e in invoker.events for r in KinesisEvent(e, None)]
    assert sorted(r.data for r in parsed) == sorted(f"line {i}\n".encode() for i in range(20))


def test_a_batch_given_up_sends_its_metadata_to_the_queue(endpoint: Endpoint) -> None:
    kinesis, sqs = endpoint.client("kinesis"), endpoint.client("sqs")
    kinesis.create_stream(StreamName="poison", ShardCount=1)
    url = sqs.create_queue(QueueName="poison-failed")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    for i in range(4):
        kinesis.put_record(StreamName="poison", Data=f"{i}".encode(), PartitionKey="p")

    def fail_on_2(event: dict[str, Any]) -> tuple[bool, Any]:
        data = [base64.b64decode(r["kinesis"]["data"]) for r in event["Records"]]
        return b"2" not in data, None

    invoker = RecordingInvoker(fail_on_2)
    options = StreamOptions(batch_size=10, bisect=True, maximum_retry_attempts=1,
                            on_failure=queue_arn)
    poller = run(KinesisReader(kinesis, "poison", "us-east-1", ROLE), invoker, options, sqs)
    try:
        messages = wait_for(lambda: sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1).get(
            "Messages"), "the on-failure message")
    finally:
        poller.stop()
    info = json.loads(messages[0]["Body"])["KinesisBatchInfo"]
    assert (info["startSequenceNumber"], info["endSequenceNumber"], info["batchSize"]) == (
        "3", "3", 1)


def test_moto_invokes_nothing_for_stream_mappings(endpoint: Endpoint) -> None:
    ddb, kinesis, lam = (endpoint.client(s) for s in ("dynamodb", "kinesis", "lambda"))
    arn = table_with_stream(ddb, "mapped")
    kinesis.create_stream(StreamName="mapped", ShardCount=1)
    stream_arn = kinesis.describe_stream_summary(StreamName="mapped")[
        "StreamDescriptionSummary"]["StreamARN"]
    role = endpoint.client("iam").create_role(
        RoleName="mapped", AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Action": "sts:AssumeRole",
                "Principal": {"Service": "lambda.amazonaws.com"}}]}))["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("app.py", "def handler(event, context):\n    raise RuntimeError\n")
    lam.create_function(FunctionName="mapped", Runtime="python3.11", Role=role,
                        Handler="app.handler", Code={"ZipFile": code.getvalue()})
    for source in (arn, stream_arn):
        lam.create_event_source_mapping(EventSourceArn=source, FunctionName="mapped",
                                        StartingPosition="TRIM_HORIZON")
    ddb.put_item(TableName="mapped", Item={"k": {"S": "a"}})
    kinesis.put_record(StreamName="mapped", Data=b"x", PartitionKey="p")
    streams = endpoint.client("dynamodbstreams")
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"],
                                          ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    assert len(streams.get_records(ShardIterator=iterator)["Records"]) == 1
    iterator = kinesis.get_shard_iterator(StreamName="mapped", ShardId="shardId-000000000000",
                                          ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    assert len(kinesis.get_records(ShardIterator=iterator)["Records"]) == 1


def test_expired_items_are_deleted_and_reach_the_stream_as_ttl_removals(
        endpoint: Endpoint) -> None:
    ddb = endpoint.client("dynamodb")
    arn = table_with_stream(ddb, "expiring")
    ddb.update_time_to_live(TableName="expiring", TimeToLiveSpecification={
        "Enabled": True, "AttributeName": "expires_at"})
    now = int(time.time())
    items = {"past": {"N": str(now - 10)}, "future": {"N": str(now + 3600)},
             "ancient": {"N": str(now - 6 * 365 * 86400)}, "text": {"S": str(now - 10)}}
    for key, expires in items.items():
        ddb.put_item(TableName="expiring", Item={"k": {"S": key}, "expires_at": expires})
    invoker = RecordingInvoker(lambda event: (True, None))
    poller = run(DynamoDBReader(endpoint.client("dynamodbstreams"), arn), invoker,
                 StreamOptions(batch_size=100), endpoint.client("sqs"))
    try:
        wait_for(lambda: any(r["eventName"] == "REMOVE" for r in records(invoker)),
                 "the TTL deletion")
    finally:
        poller.stop()
    kept = {i["k"]["S"] for i in ddb.scan(TableName="expiring")["Items"]}
    assert kept == {"future", "ancient", "text"}
    [removal] = [r for r in records(invoker) if r["eventName"] == "REMOVE"]
    assert removal["dynamodb"]["Keys"] == {"k": {"S": "past"}}
    assert removal["userIdentity"] == {"type": "Service",
                                       "principalId": "dynamodb.amazonaws.com"}


@pytest.mark.parametrize("kind", ["stream_read_500", "stream_read_throttle",
                                  "stream_iterator_expired"])
def test_read_faults_reach_the_pollers_and_lose_nothing(tmp_path: Path, kind: str) -> None:
    plan = FaultPlan({kind: 0.5}, seed=4)
    faulty = Endpoint({"FAULTS": plan.to_json()}, tmp_path / "endpoint.log")
    try:
        kinesis = faulty.client("kinesis")
        kinesis.create_stream(StreamName="flaky", ShardCount=1)
        invoker = RecordingInvoker(lambda event: (True, None))
        reader = KinesisReader(faulty.client("kinesis", POLLER_APP_ID), "flaky", "us-east-1",
                               ROLE)
        poller = run(reader, invoker, StreamOptions(batch_size=7), faulty.client("sqs"))
        try:
            for start in range(0, 60, 6):
                kinesis.put_records(StreamName="flaky", Records=[
                    {"Data": str(i).encode(), "PartitionKey": "p"}
                    for i in range(start, start + 6)])
            wait_for(lambda: len(records(invoker)) >= 60, "every record")
            time.sleep(0.5)
        finally:
            poller.stop()
    finally:
        faulty.stop()
    data = [int(base64.b64decode(r["kinesis"]["data"])) for r in records(invoker)]
    assert data == list(range(60))
    assert count_faults(faulty.log.read_text().splitlines()).get(kind, 0) > 0
