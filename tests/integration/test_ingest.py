"""Streamed events, against moto: POST /ingest, and the ingest handler writing every event once
however Lambda delivers the batches; the trigger and worker then count each event once."""

from __future__ import annotations

import gzip
import json
from typing import Any

import boto3
import pytest
from chalice.test import Client

from chalicelib.adapters import StreamObjects, from_item
from chalicelib.core.jobs import STREAM_PREFIX
from chalicelib.core.stream import MAX_RECORD_BYTES
from chalicelib.ingest import MAX_INGEST_BODY_BYTES
from tests.integration.kinesis_events import lambda_event, shard_records
from tests.integration.test_api import get
from tests.integration.test_handlers import receive_jobs, run_pipeline

NDJSON = {"Content-Type": "application/x-ndjson"}


def event_line(i: int, level: str = "INFO") -> bytes:
    return json.dumps({"timestamp": "2026-12-06T08:00:00Z", "level": level,
                       "endpoint": f"/e{i % 7}", "response_time_ms": i % 300,
                       "status_code": 200, "user_id": f"u{i % 11}"}).encode()


@pytest.fixture
def kinesis(stage):
    return boto3.client("kinesis", region_name=stage.region)


def stream_arn(kinesis, stage) -> str:
    return kinesis.describe_stream_summary(
        StreamName=stage.ingest_stream)["StreamDescriptionSummary"]["StreamARN"]


def streamed_lines(s3, stage) -> list[bytes]:
    """Every line of every object under logs/stream/ (each object read whole)."""
    lines: list[bytes] = []
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=stage.bucket,
                                                                  Prefix=STREAM_PREFIX):
        for version in page.get("Versions", []):
            body = s3.get_object(Bucket=stage.bucket, Key=version["Key"],
                                 VersionId=version["VersionId"])["Body"].read()
            lines += gzip.decompress(body).splitlines()
    return lines


# ---- POST /ingest ------------------------------------------------------------------------

def test_post_ingest_puts_the_lines_on_the_stream_unchanged(app_module, kinesis, stage) -> None:
    body = event_line(1) + b"\n\n" + b'{"not utf-8": "\xff"}\r\n' + event_line(2)
    with Client(app_module.app) as client:
        response = client.http.post("/ingest", headers=NDJSON, body=body)
    assert response.status_code == 202
    assert json.loads(response.body) == {"accepted": 3, "records": 1}
    [records] = shard_records(kinesis, stage.ingest_stream).values()
    assert b"".join(r["Data"] for r in records) == (
        event_line(1) + b"\n" + b'{"not utf-8": "\xff"}\r\n' + event_line(2) + b"\n")


@pytest.mark.parametrize("content_type", ["application/json", "text/plain", None])
def test_post_ingest_refuses_other_content_types(app_module, content_type) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    with Client(app_module.app) as client:
        response = client.http.post("/ingest", headers=headers, body=event_line(1))
    assert response.status_code == 400
    assert json.loads(response.body)["error"]["field"] == "Content-Type"


def test_post_ingest_refuses_a_body_over_the_limit_and_puts_nothing(app_module, kinesis,
                                                                      stage) -> None:
    line = event_line(1) + b"\n"
    body = line * (MAX_INGEST_BODY_BYTES // len(line) + 1)
    with Client(app_module.app) as client:
        response = client.http.post("/ingest", headers=NDJSON, body=body)
    assert response.status_code == 413
    assert json.loads(response.body)["error"]["code"] == "too_large"
    assert all(not r for r in shard_records(kinesis, stage.ingest_stream).values())


def test_post_ingest_names_the_line_that_cannot_fit_a_record(app_module, kinesis,
                                                               stage) -> None:
    body = event_line(1) + b"\n" + b"x" * MAX_RECORD_BYTES + b"\n" + event_line(3)
    with Client(app_module.app) as client:
        response = client.http.post("/ingest", headers=NDJSON, body=body)
    error = json.loads(response.body)["error"]
    assert response.status_code == 413
    assert "line 2 " in error["message"] and error["field"] == "body"
    assert all(not r for r in shard_records(kinesis, stage.ingest_stream).values())


class FailingPuts:
    """A Kinesis client whose PutRecords fails the first `failures` records of each call."""

    def __init__(self, client: Any, calls_failing: int) -> None:
        self.client = client
        self.calls_failing = calls_failing
        self.calls = 0

    def put_records(self, **kwargs: Any) -> dict[str, Any]:
        self.calls += 1
        if self.calls > self.calls_failing:
            return self.client.put_records(**kwargs)
        records = kwargs["Records"]
        answer = (self.client.put_records(**{**kwargs, "Records": records[1:]})["Records"]
                  if len(records) > 1 else [])
        failed = {"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "slow"}
        return {"FailedRecordCount": 1, "Records": [failed, *answer]}


def test_failed_records_are_put_again_and_a_lasting_failure_names_the_lines(
        app_module, kinesis, stage) -> None:
    lines = b"".join(event_line(i) + b"\n" for i in range(6000))  # several records
    producer = app_module.ingest_api.producer
    producer.sleep = lambda seconds: None
    producer.client = FailingPuts(kinesis, calls_failing=3)
    with Client(app_module.app) as client:
        retried = client.http.post("/ingest", headers=NDJSON, body=lines)
        producer.client = FailingPuts(kinesis, calls_failing=10**6)
        lasting = client.http.post("/ingest", headers=NDJSON, body=event_line(1) + b"\n")
    assert retried.status_code == 202 and json.loads(retried.body)["accepted"] == 6000
    assert sum(len(r) for r in shard_records(kinesis, stage.ingest_stream).values()) == (
        json.loads(retried.body)["records"])
    assert lasting.status_code == 503
    assert "0 of 1 lines" in json.loads(lasting.body)["error"]["message"]
    assert "lines 1 were not" in json.loads(lasting.body)["error"]["message"]


# ---- every event written once, however the batches come -----------------------------------

class Crash(Exception):
    """The handler's process died."""


class FaultyS3:
    """The handler's S3 client, with one PutObject that fails, or that succeeds and then
    the process dies before the handler returns."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.exceptions = client.exceptions
        self.fault: str | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def put_object(self, **kwargs: Any) -> Any:
        fault, self.fault = self.fault, None
        if fault == "fail":
            raise ConnectionError("S3 unreachable")
        answer = self.client.put_object(**kwargs)
        if fault == "crash":
            raise Crash("died right after PutObject")
        return answer


def test_every_event_is_written_once_and_counted_once(app_module, kinesis, s3, sqs, dynamodb,
                                                      stage) -> None:
    # GIVEN N events, some identical lines on purpose: single-line records put directly and
    # multi-line records from POST /ingest
    singles = [event_line(i % 40) for i in range(230)]
    batch_body = b"".join(event_line(i % 3, "ERROR") + b"\n" for i in range(170))
    for start in range(0, len(singles), 100):
        kinesis.put_records(StreamName=stage.ingest_stream, Records=[
            {"Data": line + b"\n", "PartitionKey": str(i)}
            for i, line in enumerate(singles[start:start + 100])])
    with Client(app_module.app) as client:
        posted = client.http.post("/ingest", headers=NDJSON, body=batch_body)
    assert posted.status_code == 202
    singles += [event_line(i) for i in range(30)]
    kinesis.put_records(StreamName=stage.ingest_stream, Records=[
        {"Data": line + b"\n", "PartitionKey": "p"} for line in singles[230:]])
    expected = sorted(singles + batch_body.splitlines())
    assert len(expected) == 430

    [(shard_id, records)] = shard_records(kinesis, stage.ingest_stream).items()
    arn = stream_arn(kinesis, stage)
    faulty = FaultyS3(s3)
    app_module.ingest_logic.objects = StreamObjects(faulty, stage.bucket)

    def deliver(client: Client, start: int, size: int, fault: str | None = None) -> bool:
        """One invocation with records[start:start+size], as Lambda sends it."""
        faulty.fault = fault
        try:
            client.lambda_.invoke("ingest", lambda_event(arn, shard_id,
                                                         records[start:start + size]))
        except (Crash, ConnectionError):
            return False
        return True

    with Client(app_module.app) as client:
        # WHEN the batches come as Lambda may send them:
        assert deliver(client, 0, 50)
        assert deliver(client, 0, 50)  # delivered again
        assert not deliver(client, 50, 40, fault="crash")  # written, then the process died
        assert deliver(client, 50, 15)  # retried with a smaller batch size: inside the object
        assert deliver(client, 65, 60)  # starts inside it, goes beyond it
        assert not deliver(client, 125, 30, fault="fail")  # the write failed
        assert deliver(client, 125, 30)  # retried
        assert deliver(client, 155, 7)
        assert deliver(client, 162, len(records))
        # and a replay of the whole shard from TRIM_HORIZON, cut differently again
        for start in range(0, len(records), 45):
            assert deliver(client, start, 45)

    # THEN the objects under logs/stream/ hold exactly the N events, each once
    assert sorted(streamed_lines(s3, stage)) == expected

    # AND the trigger and worker count each event once, in records marked `stream`
    keys = [obj["Key"] for obj in s3.list_objects_v2(Bucket=stage.bucket,
                                                     Prefix=STREAM_PREFIX)["Contents"]]
    with Client(app_module.app) as client:
        for key in keys:
            head = s3.head_object(Bucket=stage.bucket, Key=key)
            event = client.events.generate_s3_event(stage.bucket, key)
            event["Records"][0]["s3"]["object"].update(
                size=head["ContentLength"], eTag=head["ETag"].strip('"'),
                versionId=head["VersionId"])
            client.lambda_.invoke("trigger", event)
        while messages := receive_jobs(sqs, stage):
            client.lambda_.invoke("worker", {"Records": messages})
        run_pipeline(app_module, s3, sqs, stage, "logs/upload.ndjson", event_line(1) + b"\n")
        _, streamed = get(client, "/jobs", source="stream")
        _, uploaded = get(client, "/jobs", source="upload")
    items = dynamodb.scan(TableName=stage.results_table)["Items"]
    results = [from_item(i) for i in items if from_item(i)["key"].startswith(STREAM_PREFIX)]
    assert len(results) == len(keys)
    assert {r["status"] for r in results} == {"completed"}
    assert {r["source"] for r in results} == {"stream"}
    assert sum(r["line_count"] for r in results) == 430
    assert sum(r["malformed_count"] for r in results) == 0
    assert sum(r["error_count"] for r in results) == 170
    assert sorted(j["key"] for j in streamed["jobs"]) == sorted(keys)
    assert {j["source"] for j in streamed["jobs"]} == {"stream"}
    assert [(j["key"], j["source"]) for j in uploaded["jobs"]] == [
        ("logs/upload.ndjson", "upload")]
