"""A file uploaded to the running local runtime becomes one correct result record."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest

from chalicelib.core.jobs import job_id_for
from chalicelib.core.schema import INTERNAL_FIELDS
from logctl.generate import write_log_file
from tests.e2e.conftest import (
    ROOT,
    Runtime,
    queue_depth,
    running,
    runtime_environment,
    wait_for_final,
    wait_until,
)

pytestmark = pytest.mark.e2e

TRIGGER_QUEUE = "__runtime-trigger-s3"
METADATA_FIELDS = {"job_id", "bucket", "key", "status", "failure_reason", "file_size_bytes",
                   "etag", "version_id", "source", "uploaded_at", "created_at", "created_day",
                   "started_at", "completed_at", "expires_at", "processing_time_ms", "attempts",
                   *INTERNAL_FIELDS}


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    with running(tmp_path_factory.mktemp("runtime"), "--set", "RETRY_BASE_SECONDS=0.1") as rt:
        yield rt


def summarize(path: Path) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "chalicelib.summarize", str(path)],
                          cwd=ROOT, env=runtime_environment(), capture_output=True, text=True,
                          check=True)
    stats = json.loads(done.stdout)
    assert stats.pop("file") == str(path)
    return stats


def upload(runtime: Runtime, path: Path, key: str) -> tuple[str, dict[str, Any]]:
    stage = runtime.stage()
    response = runtime.client("s3").put_object(Bucket=stage.bucket, Key=key,
                                               Body=path.read_bytes())
    return job_id_for(stage.bucket, key, etag=response["ETag"],
                      version_id=response.get("VersionId")), response


def timestamp(text: str) -> float:
    assert text.endswith("Z"), text
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@pytest.mark.parametrize("gzip", [False, True], ids=["ndjson", "gzip"])
def test_record_matches_summarize_field_by_field(runtime: Runtime, tmp_path: Path,
                                                 gzip: bool) -> None:
    # GIVEN a log file with errors and malformed lines
    name = "mixed.ndjson.gz" if gzip else "mixed.ndjson"
    path = write_log_file(tmp_path / name, 700, error_rate=0.1, malformed_rate=0.03,
                          gzip=gzip, seed=11)
    key = f"logs/e2e/with space+plus/{name}"
    # WHEN it is uploaded
    job_id, response = upload(runtime, path, key)
    record = wait_for_final(runtime, job_id)
    # THEN every statistic equals what the summarize command computes from the same file
    expected = summarize(path)
    assert set(record) == set(expected) | METADATA_FIELDS
    for field, value in expected.items():
        if isinstance(value, float):
            assert record[field] == pytest.approx(value), field
        else:
            assert record[field] == value, field
    # AND the job's own fields describe the object and its processing
    stage = runtime.stage()
    assert record["status"] == "completed"
    assert record["failure_reason"] is None
    assert (record["bucket"], record["key"]) == (stage.bucket, key)
    assert record["file_size_bytes"] == path.stat().st_size
    assert record["etag"] == response["ETag"].strip('"')
    assert record["attempts"] == 1
    uploaded, created, started, completed = (timestamp(record[f]) for f in (
        "uploaded_at", "created_at", "started_at", "completed_at"))
    millisecond = 0.001
    assert uploaded <= created + millisecond
    assert created <= started + millisecond
    assert started <= completed + millisecond
    assert record["expires_at"] == int(completed) + 7 * 24 * 3600  # written + 7 days
    assert 0 <= record["processing_time_ms"] <= (completed - started) * 1000 + 1


def test_each_invocation_is_logged_as_one_json_line(runtime: Runtime, tmp_path: Path) -> None:
    # GIVEN a processed upload
    job_id, _ = upload(runtime, write_log_file(tmp_path / "log.ndjson", 5, seed=4),
                       "logs/e2e/log.ndjson")
    wait_for_final(runtime, job_id)
    # THEN both handlers' invocations were logged, the first of each process as a cold start
    invocations = runtime.log_records()
    # (the rollups handler runs too, on the results table's changes, as its stream delivers them)
    assert {"trigger", "worker"} <= {r["function"] for r in invocations} <= {
        "trigger", "worker", "rollups"}
    for record in invocations:
        assert {"function", "request_id", "duration_ms", "outcome", "cold_start",
                "batch_size"} <= set(record)
    assert all(r["outcome"] == "ok" for r in invocations)
    assert any(r["cold_start"] and r["init_ms"] > 0 for r in invocations)


def test_duplicate_notifications_make_one_job(runtime: Runtime, tmp_path: Path) -> None:
    # GIVEN an uploaded file
    stage = runtime.stage()
    path = write_log_file(tmp_path / "dup.ndjson", 200, seed=5)
    key = "logs/e2e/dup.ndjson"
    job_id, response = upload(runtime, path, key)
    # WHEN S3 delivers its notification twice more (at-least-once delivery)
    sqs = runtime.client("sqs")
    queue_url = sqs.get_queue_url(QueueName=TRIGGER_QUEUE)["QueueUrl"]
    event = {"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": stage.region,
        "eventTime": "2024-05-01T12:00:00.000Z", "eventName": "ObjectCreated:Put",
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "localruntime-trigger",
               "bucket": {"name": stage.bucket, "arn": f"arn:aws:s3:::{stage.bucket}"},
               "object": {"key": quote_plus(key, safe="/"), "size": path.stat().st_size,
                          "eTag": response["ETag"].strip('"'),
                          "versionId": response["VersionId"]}}}]}
    for _ in range(2):
        sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(event))
    first = wait_for_final(runtime, job_id)
    wait_until(lambda: queue_depth(runtime, TRIGGER_QUEUE) == 0, 30, "the notifications")
    wait_until(lambda: queue_depth(runtime, stage.jobs_queue) == 0, 30, "the jobs queue")
    # THEN there is one record for the object, processed once
    items = runtime.client("dynamodb").scan(
        TableName=stage.results_table, FilterExpression="#k = :k",
        ExpressionAttributeNames={"#k": "key"},
        ExpressionAttributeValues={":k": {"S": key}})["Items"]
    assert len(items) == 1
    final = wait_for_final(runtime, job_id)
    assert final == first
    assert final["status"] == "completed" and final["attempts"] == 1
    done = [r for r in runtime.log().splitlines()
            if '"job_done"' in r and job_id in r]
    assert len(done) == 1


def test_non_log_objects_and_other_prefixes(runtime: Runtime, tmp_path: Path) -> None:
    # GIVEN an object outside logs/ and an unsupported file under logs/
    stage = runtime.stage()
    s3 = runtime.client("s3")
    outside = s3.put_object(Bucket=stage.bucket, Key="other/x.ndjson", Body=b"{}\n")
    rejected_id, _ = upload(runtime, write_log_file(tmp_path / "a.ndjson", 3, seed=1),
                            "logs/e2e/picture.png")
    # THEN the unsupported one fails with a reason, and the other never becomes a job
    record = wait_for_final(runtime, rejected_id)
    assert record["status"] == "failed"
    assert record["failure_reason"].startswith("unsupported_type")
    outside_id = job_id_for(stage.bucket, "other/x.ndjson", etag=outside["ETag"],
                            version_id=outside.get("VersionId"))
    assert runtime.client("dynamodb").get_item(
        TableName=stage.results_table, Key={"job_id": {"S": outside_id}}).get("Item") is None



def metric_lines(runtime: Runtime) -> list[dict[str, Any]]:
    """The CloudWatch Embedded Metric Format lines in the runtime's log."""
    found = []
    for line in runtime.log().splitlines():
        if line.startswith('{"_aws"'):
            found.append(json.loads(line))
    return found


def values(line: dict[str, Any]) -> dict[str, float]:
    [directive] = line["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "LogPipeline"
    assert all(name in line for names in directive["Dimensions"] for name in names)
    return {m["Name"]: line[m["Name"]][0] for m in directive["Metrics"]}


def test_every_finished_file_has_its_metric_line(runtime: Runtime, tmp_path: Path) -> None:
    # GIVEN a file that completes and one that fails (not gzip despite its name)
    good_id, _ = upload(runtime, write_log_file(tmp_path / "m.ndjson", 30, seed=4),
                        "logs/e2e/metrics-good.ndjson")
    corrupt = tmp_path / "m.ndjson.gz"
    corrupt.write_bytes(b"\x1f\x8b not really gzip")
    bad_id, _ = upload(runtime, corrupt, "logs/e2e/metrics-bad.ndjson.gz")
    good_record = wait_for_final(runtime, good_id)
    assert good_record["status"] == "completed"
    assert wait_for_final(runtime, bad_id)["status"] == "failed"
    # THEN the runtime's log holds one metric line for each file, with the stage dimension
    def by_job() -> dict[str, list[dict[str, Any]]]:
        lines: dict[str, list[dict[str, Any]]] = {}
        for line in metric_lines(runtime):
            lines.setdefault(line.get("job_id", ""), []).append(line)
        return lines if good_id in lines and bad_id in lines else {}
    lines = wait_until(by_job, 10, "the metric lines of both files")
    [good], [bad] = lines[good_id], lines[bad_id]
    assert values(good) == {"FilesCompleted": 1, "Lines": 30, "MalformedLines": 0,
                            "ErrorRecords": good_record["error_count"],
                            "ProcessingTime": good["ProcessingTime"][0],
                            "UploadToResultLag": good["UploadToResultLag"][0]}
    assert good["stage"] == "local" and good["UploadToResultLag"][0] > 0
    assert values(bad)["FilesFailed"] == 1 and bad["reason"] == "unreadable"
    # AND the trigger counted the jobs it queued
    assert sum(values(line).get("JobsQueued", 0) for line in metric_lines(runtime)) >= 2
    # AND each log line is written once, as JSON (no second, plain-text handler)
    queued = [line for line in runtime.log().splitlines() if "job_queued" in line]
    assert queued and all(json.loads(line)["message"] == "job_queued" for line in queued)
