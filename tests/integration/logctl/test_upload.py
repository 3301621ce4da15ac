"""logctl.upload against a moto server: keys, job ids, waiting for results, exit codes."""

from __future__ import annotations

import hashlib
import json
import socket
from pathlib import Path
from typing import Any

import pytest

from chalicelib.core.jobs import job_id_for, jobs_from_s3_event
from logctl import upload
from logctl.generate import write_log_file
from logctl.stage import Stage, client
from tests.integration.logctl.support import put_record, result_record


@pytest.fixture
def log_file(tmp_path: Path) -> Path:
    return write_log_file(tmp_path / "app.ndjson", 200, seed=7)


def expected_job_id(stage: Stage, key: str, path: Path) -> str:
    """The job id of a single-part, unversioned upload: its ETag is the MD5 of the body."""
    etag = '"' + hashlib.md5(path.read_bytes()).hexdigest() + '"'
    return job_id_for(stage.bucket, key, etag=etag)


def cli(stage: Stage, *args: str) -> int:
    return upload.main(["--endpoint-url", stage.endpoint_url or "", *args])


class ProcessingThenFinished:
    """A DynamoDB client twin: the record reads `processing` until the Nth GetItem."""

    def __init__(self, real: Any, stage: Stage, job_id: str, finish_on_call: int) -> None:
        self.real, self.stage, self.job_id = real, stage, job_id
        self.finish_on_call = finish_on_call
        self.calls = 0

    def get_item(self, **kwargs: Any) -> Any:
        self.calls += 1
        status = "completed" if self.calls >= self.finish_on_call else "processing"
        put_record(self.stage, result_record(self.job_id, status), self.real)
        return self.real.get_item(**kwargs)


def test_upload_file_keeps_the_name_under_logs_and_derives_the_trigger_job_id(
        stage: Stage, log_file: Path) -> None:
    done = upload.upload_file(stage, log_file)

    assert done.key == "logs/app.ndjson"
    head = client(stage, "s3").head_object(Bucket=stage.bucket, Key=done.key)
    assert done.etag == head["ETag"]
    assert done.version_id is None
    assert done.job_id == job_id_for(stage.bucket, done.key, etag=head["ETag"])
    assert done.job_id == expected_job_id(stage, done.key, log_file)
    assert done.started <= done.finished
    body = client(stage, "s3").get_object(Bucket=stage.bucket, Key=done.key)["Body"].read()
    assert body == log_file.read_bytes()


def test_versioned_bucket_job_id_uses_the_version_and_changes_per_upload(
        stage: Stage, tmp_path: Path) -> None:
    s3 = client(stage, "s3")
    s3.put_bucket_versioning(Bucket=stage.bucket,
                             VersioningConfiguration={"Status": "Enabled"})
    path = write_log_file(tmp_path / "same.ndjson", 10, seed=1)

    first = upload.upload_file(stage, path, client=s3)
    second = upload.upload_file(stage, path, client=s3)

    assert first.version_id and second.version_id and first.version_id != second.version_id
    assert first.job_id == job_id_for(stage.bucket, first.key, etag=first.etag,
                                      version_id=first.version_id)
    assert first.job_id != second.job_id


def test_job_id_equals_the_one_the_trigger_derives_from_the_s3_event(
        stage: Stage, log_file: Path) -> None:
    s3, sqs = client(stage, "s3"), client(stage, "sqs")
    events = sqs.create_queue(QueueName="s3-events")["QueueUrl"]
    events_arn = sqs.get_queue_attributes(
        QueueUrl=events, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(Bucket=stage.bucket, NotificationConfiguration={
        "QueueConfigurations": [{"QueueArn": events_arn, "Events": ["s3:ObjectCreated:*"]}]})

    done = upload.upload_file(stage, log_file, key="logs/with space+plus.ndjson")

    bodies = [json.loads(m["Body"]) for m in sqs.receive_message(
        QueueUrl=events, MaxNumberOfMessages=10, WaitTimeSeconds=5).get("Messages", [])]
    jobs = [job for body in bodies for job in jobs_from_s3_event(body, "2030-01-01T00:00:00Z")]
    assert [(job.key, job.job_id) for job in jobs] == [(done.key, done.job_id)]


def test_gzip_file_is_uploaded_byte_for_byte(stage: Stage, tmp_path: Path) -> None:
    path = write_log_file(tmp_path / "app.ndjson.gz", 50, gzip=True, seed=3)

    done = upload.upload_file(stage, path, key="logs/nested/app.ndjson.gz")

    obj = client(stage, "s3").get_object(Bucket=stage.bucket, Key=done.key)
    assert obj["Body"].read() == path.read_bytes()
    assert obj["ContentType"] == "application/gzip"


def test_wait_for_result_returns_a_finished_record(stage: Stage) -> None:
    put_record(stage, result_record("job-done", "completed", line_count=7))

    record = upload.wait_for_result(stage, "job-done", timeout=5)

    assert record["status"] == "completed"
    assert record["line_count"] == 7


def test_wait_for_result_polls_until_the_job_finishes(stage: Stage) -> None:
    twin = ProcessingThenFinished(client(stage, "dynamodb"), stage, "job-slow", 3)

    record = upload.wait_for_result(stage, "job-slow", timeout=120, client=twin)

    assert record["status"] == "completed"
    assert twin.calls == 3


def test_wait_for_result_times_out_with_the_last_status(stage: Stage) -> None:
    put_record(stage, result_record("job-stuck", "processing"))

    with pytest.raises(upload.WaitTimeout, match=r"job-stuck.*status processing"):
        upload.wait_for_result(stage, "job-stuck", timeout=0.2)


def test_wait_for_result_times_out_when_no_record_appears(stage: Stage) -> None:
    with pytest.raises(upload.WaitTimeout, match="no record yet"):
        upload.wait_for_result(stage, "job-never", timeout=0)


def test_cli_prints_key_and_job_id_per_file(stage: Stage, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    a = write_log_file(tmp_path / "a.ndjson", 5, seed=1)
    b = write_log_file(tmp_path / "b.ndjson", 5, seed=2)

    assert cli(stage, str(a), str(b), "--prefix", "logs/batch") == 0

    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in lines] == [
        ["logs/batch/a.ndjson", expected_job_id(stage, "logs/batch/a.ndjson", a)],
        ["logs/batch/b.ndjson", expected_job_id(stage, "logs/batch/b.ndjson", b)],
    ]


def test_cli_wait_prints_the_completed_outcome(stage: Stage, log_file: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    job_id = expected_job_id(stage, "logs/app.ndjson", log_file)
    put_record(stage, result_record(job_id, "completed", line_count=200, malformed_count=0))

    assert cli(stage, str(log_file), "--wait", "--timeout", "10") == 0

    out = capsys.readouterr().out
    assert "logs/app.ndjson  completed  lines=200 malformed=0" in out
    assert "p50/p95/p99=120/480.5/910ms" in out


def test_cli_wait_on_a_failed_job_prints_the_reason_and_exits_1(
        stage: Stage, log_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    job_id = expected_job_id(stage, "logs/app.ndjson", log_file)
    put_record(stage, result_record(job_id, "failed",
                                    failure_reason="unreadable: not valid gzip"))

    assert cli(stage, str(log_file), "--wait") == 1

    captured = capsys.readouterr()
    assert "logs/app.ndjson  failed  unreadable: not valid gzip" in captured.out
    assert "1 of 1 jobs failed" in captured.err


def test_cli_wait_timeout_exits_1_with_a_message(stage: Stage, log_file: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(stage, str(log_file), "--wait", "--timeout", "0.2") == 1

    err = capsys.readouterr().err
    assert ("logs/app.ndjson: job " + expected_job_id(stage, "logs/app.ndjson", log_file)
            + " did not finish within --timeout 0.2s (no record yet)") in err
    assert "Traceback" not in err


def test_cli_missing_file_exits_2_and_uploads_nothing(stage: Stage, log_file: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(stage, str(log_file), "/nonexistent/x.ndjson") == 2

    assert "no such file: /nonexistent/x.ndjson" in capsys.readouterr().err
    listed = client(stage, "s3").list_objects_v2(Bucket=stage.bucket)
    assert listed.get("KeyCount", 0) == 0


def test_cli_refuses_two_files_that_would_share_a_key(
        stage: Stage, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = write_log_file(tmp_path / "a" / "app.ndjson", 5, seed=1)
    second = write_log_file(tmp_path / "b" / "app.ndjson", 5, seed=2)

    assert cli(stage, str(first), str(second)) == 2

    assert "would overwrite each other: logs/app.ndjson" in capsys.readouterr().err
    listed = client(stage, "s3").list_objects_v2(Bucket=stage.bucket)
    assert listed.get("KeyCount", 0) == 0


def test_cli_directory_is_refused(stage: Stage, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(stage, str(tmp_path)) == 2
    assert "not a regular file" in capsys.readouterr().err


def test_cli_unreachable_endpoint_is_a_clear_error(log_file: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    assert upload.main(["--endpoint-url", f"http://127.0.0.1:{port}", str(log_file)]) == 1

    err = capsys.readouterr().err
    assert f"cannot reach http://127.0.0.1:{port}" in err
    assert "Traceback" not in err


def test_cli_unknown_stage_exits_2(log_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert upload.main(["--stage", "nope", str(log_file)]) == 2
    assert "stage 'nope' is not in .chalice/config.json" in capsys.readouterr().err


def test_cli_missing_bucket_suggests_provisioning(stage: Stage, log_file: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    s3 = client(stage, "s3")
    s3.delete_bucket(Bucket=stage.bucket)

    assert cli(stage, str(log_file)) == 1

    err = capsys.readouterr().err
    assert "NoSuchBucket" in err
    assert "logctl.provision" in err


def test_upload_file_accepts_a_stage_name(stage: Stage, log_file: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", stage.endpoint_url or "")

    done = upload.upload_file("local", log_file)

    assert done.key == "logs/app.ndjson"
    assert done.job_id == expected_job_id(stage, done.key, log_file)


def test_a_large_file_goes_up_in_parts_and_reports_every_byte(stage: Stage,
                                                              tmp_path: Path) -> None:
    big = tmp_path / "big.ndjson"
    big.write_bytes(b'{"level":"INFO"}\n' * (9 * 1024 * 1024 // 17))  # over the 8 MiB threshold
    chunks: list[int] = []

    done = upload.upload_file(stage, big, callback=chunks.append)

    head = client(stage, "s3").head_object(Bucket=stage.bucket, Key=done.key)
    assert done.etag == head["ETag"] and done.etag.endswith('-2"')  # two parts
    assert done.job_id == job_id_for(stage.bucket, done.key, etag=head["ETag"])
    assert sum(chunks) == big.stat().st_size and len(chunks) > 1
    body = client(stage, "s3").get_object(Bucket=stage.bucket, Key=done.key)["Body"].read()
    assert body == big.read_bytes()


def test_cli_shows_progress_while_it_waits(stage: Stage, log_file: Path,
                                           monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("logctl.progress.PLAIN_INTERVAL_SECONDS", 0.0)
    job_id = expected_job_id(stage, "logs/app.ndjson", log_file)
    put_record(stage, result_record(job_id, "processing"))

    assert cli(stage, str(log_file), "--wait", "--timeout", "2") == 1

    captured = capsys.readouterr()
    assert "upload: logs/app.ndjson  0.0 of 0.0 MiB (100%)" in captured.err
    assert ("upload: waiting for results, 0 of 1 final; logs/app.ndjson: processing after "
            in captured.err)
    assert "did not finish within --timeout 2s (status processing)" in captured.err
    assert "upload:" not in captured.out


def test_cli_refuses_a_name_the_trigger_would_reject_before_uploading(
        stage: Stage, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = write_log_file(tmp_path / "notes.txt", 5, seed=1)

    assert cli(stage, str(text), "--wait") == 2

    err = capsys.readouterr().err
    assert "nothing was uploaded" in err and "notes.txt" in err and ".ndjson" in err
    listed = client(stage, "s3").list_objects_v2(Bucket=stage.bucket)
    assert listed.get("KeyCount", 0) == 0
