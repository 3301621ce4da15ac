"""Stream handlers run by `python -m localruntime` as Lambda runs them, with a fixture app
(tests/e2e/fixtures/streamapp) that has one DynamoDB stream and one Kinesis handler."""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import ROOT, Runtime, running, wait_until

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "streamapp"
STREAM = "fixture-events"


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    project = tmp_path_factory.mktemp("streamapp")
    shutil.copy(FIXTURE / "app.py", project / "app.py")
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    config["stages"]["local"]["environment_variables"]["EVENTS_STREAM"] = STREAM
    config["stages"]["local"]["lambda_functions"] = {}
    (project / ".chalice").mkdir()
    (project / ".chalice" / "config.json").write_text(json.dumps(config))
    with running(tmp_path_factory.mktemp("runtime"), project=project) as rt:
        yield rt


def printed(runtime: Runtime, kind: str) -> list[dict[str, Any]]:
    lines = []
    for line in runtime.log().splitlines():
        if line.startswith('{"fixture"'):
            record = json.loads(line)
            if record["fixture"] == kind:
                lines.append(record)
    return lines


def ensure_stream(runtime: Runtime) -> None:
    kinesis = runtime.client("kinesis")
    if STREAM not in kinesis.list_streams()["StreamNames"]:
        kinesis.create_stream(StreamName=STREAM, ShardCount=1)


def test_kinesis_records_reach_the_handler_in_order(runtime: Runtime) -> None:
    kinesis = runtime.client("kinesis")
    # GIVEN the stream created after the runtime started, with records on it already
    ensure_stream(runtime)
    kinesis.put_records(StreamName=STREAM, Records=[
        {"Data": f"e{i}".encode(), "PartitionKey": "p"} for i in range(25)])
    # THEN the poller finds it and hands them over from the start, 10 at a time, in order
    wait_until(lambda: sum(len(p["data"]) for p in printed(runtime, "kinesis")) >= 25, 30,
               "the Kinesis records")
    # (two warm processes print through their own pipes: sort the lines by sequence)
    batches = [p["data"] for p in sorted(printed(runtime, "kinesis"),
                                         key=lambda p: int(p["sequence"][0]))]
    assert [d for batch in batches for d in batch] == [f"e{i}" for i in range(25)]
    assert max(len(batch) for batch in batches) == 10
    invocations = [r for r in runtime.log_records() if r["function"] == "ingest"]
    assert all(r["source"].startswith("arn:aws:kinesis:") for r in invocations)


def test_the_mapping_in_the_endpoint_decides_retries_and_the_destination(
        runtime: Runtime) -> None:
    lam, sqs, iam = (runtime.client(s) for s in ("lambda", "sqs", "iam"))
    kinesis = runtime.client("kinesis")
    ensure_stream(runtime)
    wait_until(lambda: "reading 1 shard(s) of fixture-events" in runtime.log(), 30,
               "the stream to be read")
    # GIVEN the ingest function deployed with a mapping that retries once and has an
    # on-failure queue (what post-deploy sets)
    role = iam.create_role(RoleName="fixture", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                "Principal": {"Service": "lambda.amazonaws.com"}}]
    }))["Role"]["Arn"]
    package = io.BytesIO()
    with zipfile.ZipFile(package, "w") as archive:
        archive.writestr("app.py", "")
    name = runtime.stage().function_name("ingest")
    lam.create_function(FunctionName=name, Runtime="python3.11", Role=role,
                        Handler="app.handler", Code={"ZipFile": package.getvalue()})
    url = sqs.create_queue(QueueName="fixture-ingest-failed")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    stream_arn = kinesis.describe_stream_summary(StreamName=STREAM)[
        "StreamDescriptionSummary"]["StreamARN"]
    uuid = lam.create_event_source_mapping(
        EventSourceArn=stream_arn, FunctionName=name, BatchSize=10,
        StartingPosition="TRIM_HORIZON")["UUID"]
    lam.update_event_source_mapping(
        UUID=uuid, MaximumRetryAttempts=1,
        DestinationConfig={"OnFailure": {"Destination": queue_arn}})
    wait_until(lambda: "retries 1" in runtime.log(), 30, "the runtime to read the mapping")
    # WHEN a batch keeps failing
    kinesis.put_record(StreamName=STREAM, Data=b"poison", PartitionKey="p")
    # THEN it is tried twice, its metadata goes to the queue, and the shard moves on
    messages = wait_until(lambda: sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1).get(
        "Messages"), 30, "the on-failure message")
    body = json.loads(messages[0]["Body"])
    assert body["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert body["requestContext"]["approximateInvokeCount"] == 2
    assert body["KinesisBatchInfo"]["streamArn"] == stream_arn
    assert body["KinesisBatchInfo"]["batchSize"] == 1
    kinesis.put_record(StreamName=STREAM, Data=b"after", PartitionKey="p")
    wait_until(lambda: any("after" in p["data"] and "poison" not in p["data"]
                           for p in printed(runtime, "kinesis")), 30, "the next record")
    poisoned = [p for p in printed(runtime, "kinesis") if "poison" in p["data"]]
    assert len(poisoned) == 2


def test_the_results_tables_stream_is_found_and_read(runtime: Runtime) -> None:
    ddb = runtime.client("dynamodb")
    table = runtime.stage().results_table
    # GIVEN the results table's stream, which provisioning turns on with the stage
    arn = ddb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    # THEN the runtime gives the app RESULTS_STREAM_ARN and runs its handler on that stream
    wait_until(lambda: f"rollups: app.rollups <- dynamodb {arn}" in runtime.log(), 60,
               "the DynamoDB stream poller")
    ddb.put_item(TableName=table, Item={"job_id": {"S": "j1"}, "status": {"S": "queued"}})
    ddb.delete_item(TableName=table, Key={"job_id": {"S": "j1"}})
    wait_until(lambda: sum(len(p["records"]) for p in printed(runtime, "dynamodb")) >= 2, 30,
               "the changes")
    changes = [r for p in printed(runtime, "dynamodb") for r in p["records"]]
    assert [c["name"] for c in changes] == ["INSERT", "REMOVE"]
    assert {c["table"] for c in changes} == {table}
