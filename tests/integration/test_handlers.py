"""Both handlers through Chalice's test client, against moto."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest
from chalice.test import Client

from chalicelib.adapters import from_item
from chalicelib.core.jobs import job_id_for
from chalicelib.core.schema import STATISTICS_FIELDS
from chalicelib.core.summary import summarize_file
from chalicelib.pipeline import BatchFailed
from logctl.generate import write_log_file


def upload(s3, stage, key: str, body: bytes) -> dict[str, Any]:
    response = s3.put_object(Bucket=stage.bucket, Key=key, Body=body)
    return {"key": key, "etag": response["ETag"].strip('"'), "size": len(body)}


def s3_event(client: Client, stage, obj: dict[str, Any]) -> dict[str, Any]:
    event = client.events.generate_s3_event(stage.bucket, quote_plus(obj["key"]))
    event["Records"][0]["s3"]["object"].update(size=obj["size"], eTag=obj["etag"])
    return event


def receive_jobs(sqs, stage) -> list[dict[str, Any]]:
    url = sqs.get_queue_url(QueueName=stage.jobs_queue)["QueueUrl"]
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                   AttributeNames=["All"]).get("Messages", [])
    return [{
        "messageId": m["MessageId"],
        "receiptHandle": m["ReceiptHandle"],
        "body": m["Body"],
        "attributes": m["Attributes"],
        "eventSource": "aws:sqs",
    } for m in messages]


def record(dynamodb, stage, job_id: str) -> dict[str, Any] | None:
    item = dynamodb.get_item(TableName=stage.results_table,
                             Key={"job_id": {"S": job_id}}).get("Item")
    return from_item(item) if item else None


def run_pipeline(app_module, s3, sqs, stage, key: str, body: bytes) -> dict[str, Any]:
    obj = upload(s3, stage, key, body)
    with Client(app_module.app) as client:
        client.lambda_.invoke("trigger", s3_event(client, stage, obj))
        messages = receive_jobs(sqs, stage)
        assert len(messages) == 1
        response = client.lambda_.invoke("worker", {"Records": messages})
        assert response.payload == {"batchItemFailures": []}
    return obj


def test_upload_to_completed_result_with_every_field(app_module, s3, sqs, dynamodb, stage,
                                                     tmp_path: Path) -> None:
    path = write_log_file(tmp_path / "app.ndjson", 500, malformed_rate=0.05, seed=7)
    body = path.read_bytes()
    obj = run_pipeline(app_module, s3, sqs, stage, "logs/2024/app server.ndjson", body)

    job_id = job_id_for(stage.bucket, obj["key"], etag=obj["etag"])
    result = record(dynamodb, stage, job_id)
    assert result is not None
    assert result["status"] == "completed"
    assert result["key"] == "logs/2024/app server.ndjson"
    assert result["bucket"] == stage.bucket
    assert result["file_size_bytes"] == len(body)
    expected = summarize_file(path)
    assert {k: result[k] for k in STATISTICS_FIELDS} == json.loads(json.dumps(expected))
    assert result["malformed_count"] > 0
    assert result["expires_at"] - int(_epoch(result["completed_at"])) == 7 * 24 * 3600
    assert result["processing_time_ms"] >= 0
    assert result["created_at"] <= result["started_at"] <= result["completed_at"]
    assert result["failure_reason"] is None
    assert result["attempts"] == 1


def test_gzip_upload_is_decompressed(app_module, s3, sqs, dynamodb, stage, tmp_path) -> None:
    plain = write_log_file(tmp_path / "a.ndjson", 300, seed=3)
    body = gzip.compress(plain.read_bytes())
    obj = run_pipeline(app_module, s3, sqs, stage, "logs/a.ndjson.gz", body)
    result = record(dynamodb, stage, job_id_for(stage.bucket, obj["key"], etag=obj["etag"]))
    assert result["status"] == "completed"
    assert result["line_count"] == 300
    assert result["file_size_bytes"] == len(body)


def test_corrupt_gzip_fails_with_reason(app_module, s3, sqs, dynamodb, stage) -> None:
    body = gzip.compress(b'{"a": 1}\n' * 100)[:-20]
    obj = run_pipeline(app_module, s3, sqs, stage, "logs/broken.log.gz", body)
    result = record(dynamodb, stage, job_id_for(stage.bucket, obj["key"], etag=obj["etag"]))
    assert result["status"] == "failed"
    assert result["failure_reason"].startswith("unreadable:")
    assert result["line_count"] == 0


@pytest.mark.parametrize(("key", "size", "code"), [
    ("logs/picture.png", 10, "unsupported_type"),
    ("logs/huge.ndjson", 2 * 1024**3, "too_large"),
    ("logs/slow.ndjson", 1_000_000_000, "too_large"),
])
def test_trigger_rejects_up_front(app_module, sqs, dynamodb, stage, key, size, code) -> None:
    with Client(app_module.app) as client:
        event = client.events.generate_s3_event(stage.bucket, key)
        event["Records"][0]["s3"]["object"]["size"] = size
        client.lambda_.invoke("trigger", event)
    assert receive_jobs(sqs, stage) == []
    etag = event["Records"][0]["s3"]["object"]["eTag"]
    result = record(dynamodb, stage, job_id_for(stage.bucket, key, etag=etag))
    assert result["status"] == "failed"
    assert result["failure_reason"].startswith(f"{code}:")
    assert "limit" in result["failure_reason"] or code == "unsupported_type"


def test_duplicate_notification_makes_one_job_and_one_result(app_module, s3, sqs, dynamodb,
                                                             stage) -> None:
    obj = upload(s3, stage, "logs/dup.jsonl", b"\n".join(_lines(20)) + b"\n")
    job_id = job_id_for(stage.bucket, obj["key"], etag=obj["etag"])
    with Client(app_module.app) as client:
        event = s3_event(client, stage, obj)
        client.lambda_.invoke("trigger", event)
        client.lambda_.invoke("trigger", event)
        messages = receive_jobs(sqs, stage)
        client.lambda_.invoke("worker", {"Records": messages})
        first = record(dynamodb, stage, job_id)
        client.lambda_.invoke("trigger", event)
        assert receive_jobs(sqs, stage) == []
    assert first["status"] == "completed" and first["line_count"] == 20
    items = dynamodb.scan(TableName=stage.results_table)["Items"]
    assert [from_item(i)["job_id"] for i in items] == [job_id]
    assert record(dynamodb, stage, job_id) == first


def test_redelivered_message_does_not_overwrite_completed_result(app_module, s3, sqs, dynamodb,
                                                                 stage) -> None:
    obj = run_pipeline(app_module, s3, sqs, stage, "logs/once.ndjson",
                       b"\n".join(_lines(10)) + b"\n")
    job_id = job_id_for(stage.bucket, obj["key"], etag=obj["etag"])
    done = record(dynamodb, stage, job_id)
    s3.delete_object(Bucket=stage.bucket, Key=obj["key"])
    with Client(app_module.app) as client:
        message = _job_message(job_id, stage, obj)
        response = client.lambda_.invoke("worker", {"Records": [message]})
    assert response.payload == {"batchItemFailures": []}
    assert record(dynamodb, stage, job_id) == done


def test_a_poison_message_fails_alone_and_its_handled_neighbour_is_deleted(
        app_module, s3, sqs, dynamodb, stage) -> None:
    obj = upload(s3, stage, "logs/good.ndjson", b"\n".join(_lines(5)) + b"\n")
    with Client(app_module.app) as client:
        client.lambda_.invoke("trigger", s3_event(client, stage, obj))
        good = receive_jobs(sqs, stage)
        poison = dict(good[0], messageId="poison-1", body="not a job", receiptHandle="")
        with pytest.raises(BatchFailed, match="poison-1: BadMessage"):
            client.lambda_.invoke("worker", {"Records": [poison, *good]})
    result = record(dynamodb, stage, job_id_for(stage.bucket, obj["key"], etag=obj["etag"]))
    assert result["status"] == "completed"
    url = sqs.get_queue_url(QueueName=stage.jobs_queue)["QueueUrl"]
    counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert (counts["ApproximateNumberOfMessages"],
            counts["ApproximateNumberOfMessagesNotVisible"]) == ("0", "0")


def test_missing_object_fails_not_found(app_module, dynamodb, stage) -> None:
    obj = {"key": "logs/gone.ndjson", "etag": "0" * 32, "size": 10}
    job_id = job_id_for(stage.bucket, obj["key"], etag=obj["etag"])
    with Client(app_module.app) as client:
        response = client.lambda_.invoke("worker", {"Records": [_job_message(job_id, stage, obj)]})
    assert response.payload == {"batchItemFailures": []}
    result = record(dynamodb, stage, job_id)
    assert result["status"] == "failed"
    assert result["failure_reason"].startswith("not_found:")


def _job_message(job_id: str, stage, obj: dict[str, Any]) -> dict[str, Any]:
    body = json.dumps({"job_id": job_id, "bucket": stage.bucket, "key": obj["key"],
                       "size": obj["size"], "etag": obj["etag"], "version_id": None,
                       "uploaded_at": None, "created_at": "2024-05-01T00:00:00.000Z"})
    return {"messageId": "m-1", "receiptHandle": "", "body": body,
            "attributes": {"ApproximateReceiveCount": "2"}}


def _lines(n: int) -> list[bytes]:
    return [json.dumps({"timestamp": f"2024-05-01T00:00:{i % 60:02d}Z", "level": "info",
                        "endpoint": "/a", "response_time_ms": i, "status_code": 200,
                        "user_id": f"u{i % 3}"}).encode() for i in range(n)]


def _epoch(text: str) -> float:
    from chalicelib.core.results import epoch
    return epoch(text)
