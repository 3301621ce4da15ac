"""The endpoint's state on disk: saved, the endpoint stopped, started again, restored."""

from __future__ import annotations

import http.client
import io
import json
import os
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from localruntime.background import free_port
from localruntime.endpoint.state import BODIES_NAME, CONTROL_PATH, SNAPSHOT_NAME

ROOT = Path(__file__).resolve().parents[2]


class Endpoint:
    """`python -m localruntime.endpoint.server --state DIR` as a child process."""

    def __init__(self, state: Path, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "localruntime.endpoint.server", "--port", str(self.port),
             "--exit-with-parent", "--state", str(state), *args],
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while True:
            if self.process.poll() is not None:
                pytest.fail(f"the endpoint exited: {self.output()}")
            try:
                http.client.HTTPConnection("127.0.0.1", self.port, timeout=1).connect()
                return
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("the endpoint did not start")
                time.sleep(0.05)

    def output(self) -> str:
        assert self.process.stdout is not None
        return self.process.stdout.read().decode(errors="replace")

    def control(self, method: str, body: dict[str, Any] | None = None,
                query: str = "") -> tuple[int, Any]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        connection.request(method, CONTROL_PATH + query,
                           body=None if body is None else json.dumps(body))
        response = connection.getresponse()
        return response.status, json.loads(response.read())

    def save(self, runtime: dict[str, Any] | None = None) -> dict[str, Any]:
        status, answer = self.control("POST", runtime or {})
        assert status == 200, answer
        return answer

    def client(self, service: str) -> Any:
        return boto3.client(service, endpoint_url=self.url, region_name="us-east-1",
                            aws_access_key_id="test", aws_secret_access_key="test",
                            config=Config(retries={"max_attempts": 1}))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Endpoint]]:
    started: list[Endpoint] = []

    def starter(*args: str, ready: bool = True) -> Endpoint:
        endpoint = Endpoint(tmp_path / "state", *args)
        started.append(endpoint)
        if ready:
            endpoint.wait_ready()
        return endpoint
    yield starter
    for endpoint in started:
        endpoint.stop()


def restart(endpoint: Endpoint, start: Callable[..., Endpoint]) -> Endpoint:
    endpoint.stop()
    return start()


def test_objects_and_their_versions_come_back_and_bodies_are_written_once(
        start: Callable[..., Endpoint], tmp_path: Path) -> None:
    # GIVEN a versioned bucket with two versions of one key, a delete marker on another,
    # and a body larger than moto keeps in memory
    endpoint = start()
    s3 = endpoint.client("s3")
    s3.create_bucket(Bucket="state-test")
    s3.put_bucket_versioning(Bucket="state-test", VersioningConfiguration={"Status": "Enabled"})
    first = s3.put_object(Bucket="state-test", Key="logs/a.ndjson", Body=b"one\n",
                          ContentType="application/x-ndjson", Metadata={"who": "me"})["VersionId"]
    second = s3.put_object(Bucket="state-test", Key="logs/a.ndjson", Body=b"two\n")["VersionId"]
    s3.put_object(Bucket="state-test", Key="logs/gone.ndjson", Body=b"gone\n")
    s3.delete_object(Bucket="state-test", Key="logs/gone.ndjson")
    big = os.urandom(6 * 1024 * 1024)
    s3.put_object(Bucket="state-test", Key="logs/big.bin", Body=big)
    saved = endpoint.save()
    assert saved["saved"] and saved["new_bodies"] == 4
    assert saved["object_versions"] == 4
    # WHEN the endpoint stops and starts again on the same state
    endpoint = restart(endpoint, start)
    s3 = endpoint.client("s3")
    # THEN every version reads back as it was, and the delete marker is still there
    old = s3.get_object(Bucket="state-test", Key="logs/a.ndjson", VersionId=first)
    assert old["Body"].read() == b"one\n"
    assert old["ContentType"] == "application/x-ndjson" and old["Metadata"] == {"who": "me"}
    assert s3.get_object(Bucket="state-test", Key="logs/a.ndjson")["VersionId"] == second
    assert s3.get_object(Bucket="state-test", Key="logs/big.bin")["Body"].read() == big
    versions = s3.list_object_versions(Bucket="state-test", Prefix="logs/")
    assert len(versions["Versions"]) == 4 and len(versions["DeleteMarkers"]) == 1
    assert s3.get_bucket_versioning(Bucket="state-test")["Status"] == "Enabled"
    # THEN a save after one more object writes only that object's body
    s3.put_object(Bucket="state-test", Key="logs/c.ndjson", Body=b"three\n")
    assert endpoint.save()["new_bodies"] == 1
    assert len(list((tmp_path / "state" / BODIES_NAME).iterdir())) == 5
    # THEN a body nothing refers to any more is removed at the next save
    version = s3.head_object(Bucket="state-test", Key="logs/c.ndjson")["VersionId"]
    s3.delete_object(Bucket="state-test", Key="logs/c.ndjson", VersionId=version)
    endpoint.save()
    assert len(list((tmp_path / "state" / BODIES_NAME).iterdir())) == 4


def test_messages_come_back_in_flight_ones_visible_and_retry_delays_kept(
        start: Callable[..., Endpoint]) -> None:
    # GIVEN a queue with a dead-letter queue, and four messages: one waiting, one received
    # (in flight), one received and then delayed for a retry, and one sent with a delay
    endpoint = start()
    sqs = endpoint.client("sqs")
    dlq = sqs.create_queue(QueueName="jobs-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    policy = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 5})
    url = sqs.create_queue(QueueName="jobs", Attributes={
        "VisibilityTimeout": "600", "RedrivePolicy": policy})["QueueUrl"]
    for body in ("in-flight", "retry", "waiting"):
        sqs.send_message(QueueUrl=url, MessageBody=body)
    received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=2)["Messages"]
    assert sorted(m["Body"] for m in received) == ["in-flight", "retry"]
    retry = next(m for m in received if m["Body"] == "retry")
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=retry["ReceiptHandle"],
                                  VisibilityTimeout=600)
    sqs.send_message(QueueUrl=url, MessageBody="delayed", DelaySeconds=600)
    assert endpoint.save()["messages"] == 4
    # WHEN the endpoint stops and starts again on the same state
    endpoint = restart(endpoint, start)
    sqs = endpoint.client("sqs")
    # THEN the in-flight message is visible again with its receive count, the retry and the
    # delay keep their deadlines, and the redrive policy still names the dead-letter queue
    again = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                MessageSystemAttributeNames=["ApproximateReceiveCount"])
    bodies = {m["Body"]: m["Attributes"]["ApproximateReceiveCount"]
              for m in again["Messages"]}
    assert bodies == {"in-flight": "2", "waiting": "1"}
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert json.loads(attributes["RedrivePolicy"]) == json.loads(policy)
    assert attributes["ApproximateNumberOfMessagesDelayed"] == "1"
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "3"
    _, described = endpoint.control("GET")
    assert described["restored"]["released"] == 1
    assert described["restored"]["summary"]["messages"] == 4


def test_a_message_received_too_often_still_moves_to_the_dead_letter_queue(
        start: Callable[..., Endpoint]) -> None:
    # GIVEN a message received once, with a redrive policy of one receive
    endpoint = start()
    sqs = endpoint.client("sqs")
    dlq = sqs.create_queue(QueueName="dlq")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    url = sqs.create_queue(QueueName="q", Attributes={"RedrivePolicy": json.dumps(
        {"deadLetterTargetArn": arn, "maxReceiveCount": 1})})["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="poison")
    assert sqs.receive_message(QueueUrl=url)["Messages"]
    endpoint.save()
    # WHEN restored, THEN the next receive moves it to the dead-letter queue, as before
    endpoint = restart(endpoint, start)
    sqs = endpoint.client("sqs")
    assert sqs.receive_message(QueueUrl=url).get("Messages", []) == []
    assert sqs.receive_message(QueueUrl=dlq)["Messages"][0]["Body"] == "poison"


def test_tables_come_back_with_items_indexes_and_ttl(start: Callable[..., Endpoint]) -> None:
    # GIVEN a table with a TTL attribute, an index and items with nested values
    endpoint = start()
    ddb = endpoint.client("dynamodb")
    ddb.create_table(
        TableName="results", BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "job_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "job_id", "AttributeType": "S"},
                              {"AttributeName": "status", "AttributeType": "S"}],
        GlobalSecondaryIndexes=[{"IndexName": "by_status", "Projection": {"ProjectionType": "ALL"},
                                 "KeySchema": [{"AttributeName": "status", "KeyType": "HASH"}]}])
    ddb.update_time_to_live(TableName="results", TimeToLiveSpecification={
        "Enabled": True, "AttributeName": "expires_at"})
    item = {"job_id": {"S": "j1"}, "status": {"S": "completed"}, "expires_at": {"N": "1"},
            "status_codes": {"M": {"200": {"N": "3"}}},
            "top": {"L": [{"M": {"endpoint": {"S": "/a"}, "count": {"N": "2"}}}]}}
    ddb.put_item(TableName="results", Item=item)
    endpoint.save()
    # WHEN restored
    endpoint = restart(endpoint, start)
    ddb = endpoint.client("dynamodb")
    # THEN the item, the index and the TTL setting are as they were, and items still grow
    assert ddb.get_item(TableName="results", Key={"job_id": {"S": "j1"}})["Item"] == item
    by_status = ddb.query(TableName="results", IndexName="by_status",
                          KeyConditionExpression="#s = :s",
                          ExpressionAttributeNames={"#s": "status"},
                          ExpressionAttributeValues={":s": {"S": "completed"}})
    assert [i["job_id"]["S"] for i in by_status["Items"]] == ["j1"]
    ttl = ddb.describe_time_to_live(TableName="results")["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}
    ddb.update_item(TableName="results", Key={"job_id": {"S": "j1"}},
                    UpdateExpression="SET attempts = :one",
                    ExpressionAttributeValues={":one": {"N": "1"}})
    assert ddb.get_item(TableName="results", Key={"job_id": {"S": "j1"}})["Item"][
        "attempts"] == {"N": "1"}
    oversized = {"job_id": {"S": "big"}, "blob": {"S": "x" * 410_000}}
    with pytest.raises(ddb.exceptions.ClientError, match="Item size"):
        ddb.put_item(TableName="results", Item=oversized)


def test_stream_records_come_back_in_order(start: Callable[..., Endpoint]) -> None:
    # GIVEN a Kinesis stream with records
    endpoint = start()
    kinesis = endpoint.client("kinesis")
    kinesis.create_stream(StreamName="ingest", ShardCount=1)
    for n in range(3):
        kinesis.put_record(StreamName="ingest", Data=f"event {n}".encode(), PartitionKey="p")
    assert endpoint.save()["stream_records"] == 3
    # WHEN restored, THEN a reader from the trim horizon sees them in order
    endpoint = restart(endpoint, start)
    kinesis = endpoint.client("kinesis")
    shard = kinesis.list_shards(StreamName="ingest")["Shards"][0]["ShardId"]
    iterator = kinesis.get_shard_iterator(StreamName="ingest", ShardId=shard,
                                          ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    records = kinesis.get_records(ShardIterator=iterator)["Records"]
    assert [r["Data"] for r in records] == [b"event 0", b"event 1", b"event 2"]


def test_functions_mappings_and_notifications_come_back(start: Callable[..., Endpoint]) -> None:
    # GIVEN what `make deploy-local` leaves: a function, an SQS event source mapping with
    # ReportBatchItemFailures (the runtime reads it), and a bucket notification to a queue
    endpoint = start()
    role = endpoint.client("iam").create_role(
        RoleName="state-test", AssumeRolePolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": []}))["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("app.py", "def handler(event, context):\n    return None\n")
    lam = endpoint.client("lambda")
    lam.create_function(FunctionName="state-test-worker", Runtime="python3.11", Role=role,
                        Handler="app.handler", Code={"ZipFile": code.getvalue()})
    sqs = endpoint.client("sqs")
    url = sqs.create_queue(QueueName="jobs")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    lam.create_event_source_mapping(EventSourceArn=arn, FunctionName="state-test-worker",
                                    FunctionResponseTypes=["ReportBatchItemFailures"])
    s3 = endpoint.client("s3")
    s3.create_bucket(Bucket="state-test")
    s3.put_bucket_notification_configuration(Bucket="state-test", NotificationConfiguration={
        "QueueConfigurations": [{"Id": "jobs", "QueueArn": arn,
                                 "Events": ["s3:ObjectCreated:*"]}]})
    endpoint.save()
    # WHEN restored
    endpoint = restart(endpoint, start)
    # THEN the function, its mapping's setting and the notification are there, and an
    # upload still notifies the queue
    lam = endpoint.client("lambda")
    assert lam.get_function(FunctionName="state-test-worker")["Configuration"]["Handler"] \
        == "app.handler"
    mappings = lam.list_event_source_mappings(FunctionName="state-test-worker")
    assert [m["FunctionResponseTypes"] for m in mappings["EventSourceMappings"]] \
        == [["ReportBatchItemFailures"]]
    s3 = endpoint.client("s3")
    s3.put_object(Bucket="state-test", Key="logs/new.ndjson", Body=b"{}\n")
    sqs = endpoint.client("sqs")
    bodies = [json.loads(m["Body"]) for m in sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=2).get("Messages", [])]
    keys = [r["s3"]["object"]["key"] for b in bodies for r in b.get("Records", [])]
    assert keys == ["logs/new.ndjson"]


def test_the_runtimes_own_state_travels_in_the_snapshot_and_unchanged_state_is_not_saved(
        start: Callable[..., Endpoint]) -> None:
    endpoint = start()
    endpoint.client("sqs").create_queue(QueueName="q")
    assert endpoint.save({"pollers": {"ingest": "seq-7"}})["saved"]
    # nothing changed: a read does not count, and the same runtime state is not saved again
    endpoint.client("sqs").list_queues()
    assert endpoint.save({"pollers": {"ingest": "seq-7"}}) == {"saved": False}
    assert endpoint.save({"pollers": {"ingest": "seq-8"}})["saved"]
    endpoint = restart(endpoint, start)
    _, described = endpoint.control("GET")
    assert described["restored"]["runtime"] == {"pollers": {"ingest": "seq-8"}}


def test_after_the_last_save_changes_are_refused_and_reads_still_answer(
        start: Callable[..., Endpoint]) -> None:
    # GIVEN an endpoint that has taken its last save (what a stop does)
    endpoint = start()
    s3 = endpoint.client("s3")
    s3.create_bucket(Bucket="state-test")
    s3.put_object(Bucket="state-test", Key="saved", Body=b"kept")
    status, answer = endpoint.control("POST", {}, "?final=1")
    assert status == 200 and answer["saved"]
    # WHEN a client still writes, THEN it is refused (what it wrote would not be kept),
    # and reads still answer
    with pytest.raises(s3.exceptions.ClientError, match="ServiceUnavailable"):
        s3.put_object(Bucket="state-test", Key="late", Body=b"lost")
    assert s3.get_object(Bucket="state-test", Key="saved")["Body"].read() == b"kept"
    # THEN the next start has exactly what was saved
    endpoint = restart(endpoint, start)
    keys = [o["Key"] for o in endpoint.client("s3").list_objects_v2(
        Bucket="state-test")["Contents"]]
    assert keys == ["saved"]


def test_fresh_starts_empty_and_replaces_the_snapshot_at_the_first_save(
        start: Callable[..., Endpoint]) -> None:
    endpoint = start()
    endpoint.client("sqs").create_queue(QueueName="old")
    endpoint.save()
    endpoint.stop()
    endpoint = start("--fresh")
    assert endpoint.client("sqs").list_queues().get("QueueUrls", []) == []
    assert endpoint.control("GET")[1]["restored"] is None
    endpoint.client("sqs").create_queue(QueueName="new")
    endpoint.save()
    endpoint = restart(endpoint, start)
    urls = endpoint.client("sqs").list_queues()["QueueUrls"]
    assert [u.rsplit("/", 1)[-1] for u in urls] == ["new"]


def refused(start: Callable[..., Endpoint]) -> str:
    endpoint = start(ready=False)
    assert endpoint.process.wait(60) == 2
    return endpoint.output()


def saved_state(start: Callable[..., Endpoint], tmp_path: Path) -> Path:
    endpoint = start()
    s3 = endpoint.client("s3")
    s3.create_bucket(Bucket="state-test")
    s3.put_object(Bucket="state-test", Key="k", Body=b"body")
    endpoint.save()
    endpoint.stop()
    return tmp_path / "state"


def test_a_snapshot_of_another_endpoint_version_is_refused_with_the_way_out(
        start: Callable[..., Endpoint], tmp_path: Path) -> None:
    path = saved_state(start, tmp_path) / SNAPSHOT_NAME
    header, _, payload = path.read_bytes().partition(b"\n")
    stamped = json.loads(header)
    stamped["stamp"]["moto"] = "5.0.0"
    path.write_bytes(json.dumps(stamped).encode() + b"\n" + payload)
    output = refused(start)
    assert "another version of the endpoint" in output and "'5.0.0'" in output
    assert "make local FRESH=1" in output and "make clean-state" in output
    assert "Traceback" not in output


def test_a_damaged_snapshot_is_refused(start: Callable[..., Endpoint], tmp_path: Path) -> None:
    path = saved_state(start, tmp_path) / SNAPSHOT_NAME
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    output = refused(start)
    assert "is damaged" in output and "make local FRESH=1" in output
    assert "Traceback" not in output


def test_a_snapshot_that_is_not_one_is_refused(start: Callable[..., Endpoint],
                                               tmp_path: Path) -> None:
    path = saved_state(start, tmp_path) / SNAPSHOT_NAME
    path.write_bytes(b"hello\n")
    output = refused(start)
    assert "is not a snapshot the local runtime wrote" in output
    assert "Traceback" not in output


def test_a_missing_object_body_is_refused(start: Callable[..., Endpoint],
                                          tmp_path: Path) -> None:
    state = saved_state(start, tmp_path)
    for body in (state / BODIES_NAME).iterdir():
        body.unlink()
    output = refused(start)
    assert "is incomplete" in output and "is missing" in output
    assert "Traceback" not in output
