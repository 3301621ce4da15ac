"""Job ids, accepted names, S3 event parsing and the up-front size checks."""

from __future__ import annotations

import pytest

from chalicelib.core.errors import BadMessage
from chalicelib.core.jobs import Job, job_id_for, jobs_from_s3_event, unsupported_reason
from chalicelib.pipeline import Settings


def s3_record(key: str, size: int = 10, etag: str = "abc", event: str = "ObjectCreated:Put",
              version: str | None = None) -> dict:
    obj = {"key": key, "size": size, "eTag": etag}
    if version:
        obj["versionId"] = version
    return {"eventName": event, "eventTime": "2024-05-01T00:00:00.000Z",
            "s3": {"bucket": {"name": "b"}, "object": obj}}


def test_job_id_is_deterministic_and_depends_on_object_version() -> None:
    a = job_id_for("b", "logs/a.ndjson", etag='"abc"')
    assert a == job_id_for("b", "logs/a.ndjson", etag="abc")
    assert a != job_id_for("b", "logs/a.ndjson", etag="abd")
    assert a != job_id_for("b", "logs/b.ndjson", etag="abc")
    assert a != job_id_for("c", "logs/a.ndjson", etag="abc")
    assert job_id_for("b", "k", etag="e", version_id="v") == job_id_for("b", "k", version_id="v")
    assert len(a) == 32


@pytest.mark.parametrize("key", ["logs/a.ndjson", "logs/a.JSONL", "logs/x/y.log", "logs/a.json",
                                 "logs/a.ndjson.gz", "logs/A.LOG.GZ"])
def test_supported_names(key: str) -> None:
    assert unsupported_reason(key) is None


@pytest.mark.parametrize("key", ["logs/a.csv", "logs/a.gz", "logs/a.ndjson.zip", "logs/",
                                 "logs/a.tar.gz", "logs/ndjson"])
def test_unsupported_names(key: str) -> None:
    assert key in unsupported_reason(key)


def test_s3_event_keys_are_url_decoded_and_other_events_skipped() -> None:
    event = {"Records": [
        s3_record("logs/my+file%C3%A9+%2B1.ndjson", size=5, etag="e1"),
        s3_record("logs/removed.ndjson", event="ObjectRemoved:Delete"),
        s3_record("logs/v.ndjson", version="v9"),
    ]}
    jobs = jobs_from_s3_event(event, "2024-05-02T00:00:00.000Z")
    assert [j.key for j in jobs] == ["logs/my fileé +1.ndjson", "logs/v.ndjson"]
    assert jobs[0].size == 5 and jobs[0].etag == "e1" and jobs[0].bucket == "b"
    assert jobs[0].job_id == job_id_for("b", "logs/my fileé +1.ndjson", etag="e1")
    assert jobs[1].version_id == "v9"
    assert jobs[0].uploaded_at == "2024-05-01T00:00:00.000Z"
    assert jobs_from_s3_event({"Event": "s3:TestEvent"}, "t") == []


def test_job_round_trips_through_a_message_and_rejects_garbage() -> None:
    job = jobs_from_s3_event({"Records": [s3_record("logs/a.log")]}, "2024-05-02T00:00:00Z")[0]
    assert Job.from_message(job.to_message()) == job
    for body in ("", "null", "[]", '{"job_id": "x"}', "{not json"):
        with pytest.raises(BadMessage):
            Job.from_message(body)


def test_size_checks_use_the_configured_limit_and_the_worker_time_budget() -> None:
    settings = Settings(bucket="b", jobs_queue="q", results_table="t", max_file_bytes=1000,
                        worker_timeout_seconds=10, worker_min_bytes_per_second=50)
    assert settings.time_limited_bytes() == 400
    assert settings.check_object("logs/a.ndjson", 400) is None
    over_time = settings.check_object("logs/a.ndjson", 401)
    assert over_time.code == "too_large" and "400-byte" in over_time.message
    assert "10 s" in over_time.message
    assert settings.check_object("logs/a.ndjson", 1001).message.startswith("1001 bytes exceeds")
    assert settings.check_object("logs/a.ndjson.gz", 50) is None
    assert settings.check_object("logs/a.ndjson.gz", 51).code == "too_large"
    assert settings.check_object("logs/a.txt", 1).code == "unsupported_type"


def test_settings_from_env_names_what_is_missing() -> None:
    from chalicelib.core.errors import ConfigurationError
    with pytest.raises(ConfigurationError, match="LOG_BUCKET, RESULTS_TABLE"):
        Settings.from_env({"JOBS_QUEUE": "q"})
    with pytest.raises(ConfigurationError, match="invalid numeric"):
        Settings.from_env({"LOG_BUCKET": "b", "JOBS_QUEUE": "q", "RESULTS_TABLE": "t",
                           "MAX_FILE_BYTES": "lots"})


def test_a_null_version_id_is_no_version_so_each_upload_keeps_its_own_job() -> None:
    first = jobs_from_s3_event({"Records": [s3_record("logs/a.ndjson", etag="e1",
                                                      version="null")]}, "now")[0]
    second = jobs_from_s3_event({"Records": [s3_record("logs/a.ndjson", etag="e2",
                                                       version="null")]}, "now")[0]
    assert first.version_id is None and first.job_id != second.job_id
