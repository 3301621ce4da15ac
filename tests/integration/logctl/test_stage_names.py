"""Every logctl helper that takes a stage takes its name ("local") or a Stage alike."""

from __future__ import annotations

from pathlib import Path

import pytest

from logctl import dlq, results, upload
from logctl.generate import write_log_file
from logctl.provision import provision
from logctl.stage import Stage, client
from tests.integration.logctl.support import put_record, result_record


@pytest.fixture
def by_name(stage: Stage, monkeypatch: pytest.MonkeyPatch) -> str:
    """The name "local", resolving to the same moto server as `stage`."""
    assert stage.endpoint_url is not None
    monkeypatch.setenv("AWS_ENDPOINT_URL", stage.endpoint_url)
    return "local"


def test_upload_and_wait_take_a_stage_name(stage: Stage, by_name: str, tmp_path: Path) -> None:
    path = write_log_file(tmp_path / "app.ndjson", 3, seed=1)
    put_record(stage, result_record("job-named", "completed", line_count=3))

    done = upload.upload_file(by_name, path)
    record = upload.wait_for_result(by_name, "job-named", timeout=5)

    assert client(stage, "s3").head_object(Bucket=stage.bucket, Key=done.key)
    assert record["line_count"] == 3


def test_results_take_a_stage_name(stage: Stage, by_name: str) -> None:
    put_record(stage, result_record("job-listed", "failed"))

    assert results.list_results(by_name) == results.list_results(stage)
    assert [r["job_id"] for r in results.list_results(by_name, status="failed")] == [
        "job-listed"]
    assert results.get_result(by_name, "job-listed") == results.get_result(stage, "job-listed")


def test_the_dead_letter_queue_helpers_take_a_stage_name(stage: Stage, by_name: str) -> None:
    sqs = client(stage, "sqs")
    url = sqs.get_queue_url(QueueName=stage.dead_letter_queue)["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody='{"job_id": "job-dead"}')

    depth, peeked = dlq.peek(by_name)
    moved = dlq.redrive(by_name)

    assert [m.body for m in peeked] == ['{"job_id": "job-dead"}']
    assert depth.visible == 1 and moved.moved == 1


def test_provision_and_clients_take_a_stage_name(stage: Stage, by_name: str) -> None:
    provision(by_name)  # again: provisioning is idempotent

    assert client(by_name, "s3").head_bucket(Bucket=stage.bucket)
