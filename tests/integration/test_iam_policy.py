"""The shipped IAM policy of each stage covers every AWS call the handlers make, and no more.

The handlers and every API route run through the scenarios that reach every code path
(presigning an upload counts as the PutObject it authorises), with every botocore call
recorded; each call becomes an IAM action on a resource ARN, and the stage's policy
must allow it. Lambda's SQS and Kinesis pollers use the function's role too, so their calls
are added.
"""

from __future__ import annotations

import dataclasses
import gzip
import importlib
import json
import sys
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import boto3
import pytest
from chalice.test import Client
from moto import mock_aws

from chalicelib.pipeline import BatchFailed
from logctl.provision import provision
from logctl.stage import PROJECT_ROOT, load_stage
from tests.integration.kinesis_events import lambda_event, shard_records
from tests.integration.streams import StreamReader

ACCOUNT = "123456789012"
REGION = "us-east-1"
ESM_ACTIONS = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")
# What Lambda's Kinesis poller calls (the Lambda developer guide, "Process Kinesis Data
# Streams records with Lambda"; SubscribeToShard only for enhanced fan-out, not used here).
KINESIS_ESM_ACTIONS = ("kinesis:DescribeStream", "kinesis:DescribeStreamSummary",
                       "kinesis:GetRecords", "kinesis:GetShardIterator", "kinesis:ListShards")
DOWNLOAD_CALLS: list[tuple[str, str]] = []  # what GET /jobs/{id}/download asks of AWS
# Lambda's poller of the results table's stream (the rollups mapping), with the same role.
DYNAMODB_ESM_ACTIONS = ("dynamodb:DescribeStream", "dynamodb:GetRecords",
                        "dynamodb:GetShardIterator", "dynamodb:ListStreams")


def load_policy(stage: str) -> dict[str, Any]:
    config = json.loads((PROJECT_ROOT / ".chalice" / "config.json").read_text())
    name = config["stages"][stage]["iam_policy_file"]
    assert config["stages"][stage]["autogen_policy"] is False
    return json.loads((PROJECT_ROOT / ".chalice" / name).read_text())


def allowed(policy: dict[str, Any], action: str, resource: str) -> bool:
    for statement in policy["Statement"]:
        if statement["Effect"] != "Allow":
            continue
        actions = statement["Action"] if isinstance(statement["Action"], list) else [
            statement["Action"]]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [
            statement["Resource"]]
        if any(fnmatchcase(action, a) for a in actions) and any(
                fnmatchcase(resource, r) for r in resources):
            return True
    return False


def to_permissions(service: str, operation: str, params: dict[str, Any]
                   ) -> list[tuple[str, str]]:
    """What a call needs: one action on each table of a DynamoDB batch call."""
    if service == "dynamodb" and "RequestItems" in params:
        return [to_permission(service, operation, {"TableName": table})
                for table in params["RequestItems"]]
    return [to_permission(service, operation, params)]


def to_permission(service: str, operation: str, params: dict[str, Any]) -> tuple[str, str]:
    if service == "s3":
        if operation == "ListObjectsV2":
            return "s3:ListBucket", f"arn:aws:s3:::{params['Bucket']}"
        action = "s3:GetObjectVersion" if operation in ("GetObject", "HeadObject") and params.get(
            "VersionId") else f"s3:{operation.replace('HeadObject', 'GetObject')}"
        return action, f"arn:aws:s3:::{params['Bucket']}/{params.get('Key', '')}"
    if service == "kinesis":
        return (f"kinesis:{operation}",
                f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{params['StreamName']}")
    if service == "sqs":  # a batch call needs the permission of its single form
        name = params.get("QueueName") or params["QueueUrl"].rsplit("/", 1)[-1]
        return (f"sqs:{operation.removesuffix('Batch')}",
                f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}")
    if service == "dynamodb":
        assert "TableName" in params, f"dynamodb:{operation} {params}"
        index = f"/index/{params['IndexName']}" if params.get("IndexName") else ""
        return (f"dynamodb:{operation}",
                f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{params['TableName']}{index}")
    raise AssertionError(f"handlers call an unexpected service: {service}")


@pytest.fixture(params=["local", "aws"])
def recorded_calls(request, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(key, value)
    stage = dataclasses.replace(load_stage(request.param), endpoint_url=None)
    for key, value in stage.environment.items():
        monkeypatch.setenv(key, value)
    calls: list[tuple[str, str]] = []

    def record(model: Any, params: dict[str, Any], **_: Any) -> None:
        calls.extend(to_permissions(model.service_model.endpoint_prefix, model.name, params))
        request = getattr(app_module.app, "current_request", None)
        if request is not None and \
                request.path.endswith("/download"):
            DOWNLOAD_CALLS.append(calls[-1])

    DOWNLOAD_CALLS.clear()
    with mock_aws():
        provision(stage)
        sys.modules.pop("app", None)
        app_module = importlib.import_module("app")
        for client in (app_module.s3, app_module.sqs, app_module.dynamodb, app_module.kinesis):
            client.meta.events.register("before-parameter-build", record)
        _drive_every_path(app_module, stage)
        sys.modules.pop("app", None)
    return request.param, stage, calls, list(DOWNLOAD_CALLS)


def _drive_every_path(app_module: Any, stage: Any) -> None:
    s3 = boto3.client("s3", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    line = json.dumps({"timestamp": "2024-05-01T00:00:00Z", "level": "INFO", "endpoint": "/a",
                       "response_time_ms": 1, "status_code": 200, "user_id": "u"}).encode()
    uploads = {"logs/ok.ndjson": line + b"\n", "logs/z.ndjson.gz": gzip.compress(line)[:-4],
               "logs/skip.png": b"x"}
    reader = StreamReader(REGION, boto3.client("dynamodb", region_name=REGION),
                          stage.results_table)
    with Client(app_module.app) as client:
        for key, body in uploads.items():
            etag = s3.put_object(Bucket=stage.bucket, Key=key, Body=body)["ETag"]
            event = client.events.generate_s3_event(stage.bucket, quote_plus(key))
            event["Records"][0]["s3"]["object"].update(size=len(body), eTag=etag.strip('"'))
            client.lambda_.invoke("trigger", event)
            client.lambda_.invoke("trigger", event)
        url = sqs.get_queue_url(QueueName=stage.jobs_queue)["QueueUrl"]
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                       AttributeNames=["All"])["Messages"]
        records = [{"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"],
                    "body": m["Body"], "attributes": m["Attributes"]} for m in messages]
        records.append(dict(records[0], messageId="poison", body="{}"))
        gone = json.loads(records[0]["body"]) | {"key": "logs/gone.ndjson", "job_id": "g" * 32,
                                                 "version_id": "v1"}
        records.append(dict(records[0], messageId="gone", body=json.dumps(gone)))
        with pytest.raises(BatchFailed):  # the poison message; the others are deleted
            client.lambda_.invoke("worker", {"Records": records})
        _fail_one_read(app_module, client, s3, sqs, stage, url, line)
        records = reader.read()
        client.lambda_.invoke("rollups", {"Records": records})
        client.lambda_.invoke("rollups", {"Records": records})  # a retried batch: skipped
        _call_every_route(client)
        _ingest_events(client, stage, line)


def _call_every_route(client: Client) -> None:
    job_id = json.loads(client.http.get("/jobs?limit=1").body)["jobs"][0]["job_id"]
    for path in ("/", "/favicon.ico", "/jobs?limit=1", "/jobs?status=failed&prefix=logs/",
                 f"/jobs/{job_id}", f"/jobs/{job_id}/download", "/stats", "/endpoints",
                 "/health"):
        assert client.http.get(path).status_code == 200, path
    upload = client.http.post("/uploads", headers={"Content-Type": "application/json"},
                              body=json.dumps({"name": "new.ndjson", "size": 10}))
    assert upload.status_code == 200


def _ingest_events(client: Client, stage: Any, line: bytes) -> None:
    """POST /ingest puts records; the ingest handler writes them, then skips them when the
    batch comes again (listing, and reading the existing object's last sequence)."""
    response = client.http.post("/ingest", headers={"Content-Type": "application/x-ndjson"},
                                body=line + b"\n" + line + b"\n")
    assert response.status_code == 202, response.body
    kinesis = boto3.client("kinesis", region_name=REGION)
    arn = kinesis.describe_stream_summary(
        StreamName=stage.ingest_stream)["StreamDescriptionSummary"]["StreamARN"]
    for shard_id, records in shard_records(kinesis, stage.ingest_stream).items():
        if records:
            event = lambda_event(arn, shard_id, records)
            client.lambda_.invoke("ingest", event)
            client.lambda_.invoke("ingest", event)


class _Unreachable:
    def open(self, job: Any) -> Any:
        raise ConnectionError("S3 unreachable")


def _fail_one_read(app_module: Any, client: Client, s3: Any, sqs: Any, stage: Any, url: str,
                   line: bytes) -> None:
    """An attempt that fails after its claim gives the claim back (an UpdateItem)."""
    etag = s3.put_object(Bucket=stage.bucket, Key="logs/retry.ndjson", Body=line)["ETag"]
    event = client.events.generate_s3_event(stage.bucket, "logs/retry.ndjson")
    event["Records"][0]["s3"]["object"].update(size=len(line), eTag=etag.strip('"'))
    client.lambda_.invoke("trigger", event)
    message = sqs.receive_message(QueueUrl=url, AttributeNames=["All"])["Messages"][0]
    source, app_module.worker_logic.source = app_module.worker_logic.source, _Unreachable()
    try:
        with pytest.raises(BatchFailed):
            client.lambda_.invoke("worker", {"Records": [{
                "messageId": message["MessageId"], "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"], "attributes": message["Attributes"]}]})
    finally:
        app_module.worker_logic.source = source


def test_policy_covers_every_call_the_handlers_make(recorded_calls) -> None:
    stage_name, stage, calls, _ = recorded_calls
    policy = load_policy(stage_name)
    jobs_arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{stage.jobs_queue}"
    results_stream = (f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{stage.results_table}/stream/"
                      "2026-12-06T00:00:00.000")
    ingest_stream = f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{stage.ingest_stream}"
    needed = (set(calls) | {(action, jobs_arn) for action in ESM_ACTIONS}
              | {(action, results_stream) for action in DYNAMODB_ESM_ACTIONS}
              | {(action, ingest_stream) for action in KINESIS_ESM_ACTIONS})
    operations = {action for action, _ in calls}
    assert {"s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "s3:ListBucket",
            "sqs:SendMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes",
            "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:GetItem", "dynamodb:Query",
            "dynamodb:BatchGetItem", "dynamodb:BatchWriteItem", "kinesis:PutRecords"
            } <= operations
    missing = sorted(p for p in needed if not allowed(policy, *p))
    assert missing == []


def test_policy_grants_nothing_broader_than_needed(recorded_calls) -> None:
    stage_name, stage, calls, _ = recorded_calls
    policy = load_policy(stage_name)
    granted = {a for s in policy["Statement"] for a in s["Action"]}
    used = ({action for action, _ in calls} | set(ESM_ACTIONS) | set(KINESIS_ESM_ACTIONS)
            | set(DYNAMODB_ESM_ACTIONS))
    logs = {"logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"}
    assert granted - used - logs == set()
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        assert all("*" not in action for action in statement["Action"])
        assert all(resource != "*" and stage_name in resource
                   for resource in statement["Resource"])
    assert not allowed(policy, "s3:GetObject", f"arn:aws:s3:::{stage.bucket}/other/x.ndjson")
    assert allowed(policy, "s3:ListBucket", f"arn:aws:s3:::{stage.bucket}")
    assert not allowed(policy, "dynamodb:DeleteTable",
                       f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{stage.results_table}")
    assert not allowed(policy, "s3:PutObject", f"arn:aws:s3:::{stage.bucket}/other/x.ndjson")
    assert not allowed(policy, "dynamodb:GetRecords",
                       f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{stage.stats_table}/stream/x")
    assert not allowed(policy, "kinesis:PutRecords",
                       f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/another-stream")
    assert not allowed(policy, "kinesis:DeleteStream",
                       f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{stage.ingest_stream}")
    for operation in ("Scan", "Query"):
        assert not allowed(policy, f"dynamodb:{operation}",
                           f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{stage.results_table}")


def test_a_download_is_a_read_of_one_uploaded_object_version(recorded_calls) -> None:
    stage_name, stage, _, download = recorded_calls
    policy = load_policy(stage_name)
    reads = [(action, resource) for action, resource in download if action.startswith("s3:")]
    assert len(reads) == 1
    action, resource = reads[0]
    # moto's events carry no versionId, so this job's URL names none (see test_api_errors)
    assert action in ("s3:GetObject", "s3:GetObjectVersion")
    assert resource.startswith(f"arn:aws:s3:::{stage.bucket}/logs/")
    assert allowed(policy, action, resource)
    assert not allowed(policy, action, f"arn:aws:s3:::{stage.bucket}/other/x.ndjson")
    assert not allowed(policy, "s3:GetObjectVersion", f"arn:aws:s3:::{stage.bucket}-other/logs/x")
