"""The results API's routes through Chalice's test client, against moto."""

from __future__ import annotations

import importlib
import json
import re
import sys
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from chalice import IAMAuthorizer
from chalice.test import Client

from chalicelib.apimodels import Stats
from chalicelib.core.errors import JobRejected
from chalicelib.core.jobs import Job, job_id_for
from chalicelib.core.results import (
    completed_record,
    failed_record,
    iso,
    queued_record,
)
from chalicelib.core.schema import empty_statistics
from tests.integration.streams import StreamReader
from tests.integration.test_handlers import receive_jobs, run_pipeline, s3_event, upload
from tests.integration.test_rollups import run_pipeline as run_now

HOUR = 3600.0
LINE = {"timestamp": "2024-05-01T00:00:00Z", "level": "INFO", "endpoint": "/a",
        "response_time_ms": 5, "status_code": 200, "user_id": "u"}


def put_job(app_module: Any, key: str, created: float, status: str = "queued") -> str:
    """A job created at `created` (epoch seconds), stored the way the handlers store it."""
    job = Job(job_id=job_id_for(app_module.settings.bucket, key, etag=key),
              bucket=app_module.settings.bucket, key=key, size=10, etag=key, version_id=None,
              uploaded_at=None, created_at=iso(created))
    app_module.results.create(queued_record(job))
    if status == "completed":
        app_module.results.finish(completed_record(
            job, {**empty_statistics(), "line_count": 3, "info_count": 3}, created, created + 1, 1))
    elif status == "failed":
        app_module.results.finish(failed_record(
            job, JobRejected("unreadable", "bad gzip"), created, created + 1, 1))
    return job.job_id


def get(client: Client, path: str, **params: Any) -> tuple[int, dict[str, Any]]:
    response = client.http.get(path + ("?" + urlencode(params) if params else ""))
    return response.status_code, json.loads(response.body)


def walk(client: Client, **params: Any) -> list[list[str]]:
    """Every page of GET /jobs, as lists of keys."""
    pages, cursor = [], None
    while True:
        status, body = get(client, "/jobs", **params, **({"cursor": cursor} if cursor else {}))
        assert status == 200, body
        pages.append([job["key"] for job in body["jobs"]])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages


@pytest.fixture
def spread(app_module) -> dict[str, float]:
    """Seven jobs over three days, and one expired; key -> created."""
    now = time.time()
    created = {"logs/a/1.ndjson": now - 60, "logs/b/2.ndjson": now - 2 * HOUR,
               "logs/a/3.ndjson": now - 3 * HOUR, "logs/b/4.ndjson": now - 26 * HOUR,
               "logs/a/5.ndjson": now - 27 * HOUR, "logs/b/6.ndjson": now - 50 * HOUR,
               "logs/a/7.ndjson": now - 51 * HOUR}
    statuses = ["completed", "failed", "queued", "completed", "failed", "completed", "queued"]
    for (key, moment), status in zip(created.items(), statuses, strict=True):
        put_job(app_module, key, moment, status)
    put_job(app_module, "logs/a/expired.ndjson", now - 8 * 24 * HOUR, "completed")
    return created


def newest_first(created: dict[str, float], keep: Any = lambda key: True) -> list[str]:
    return [k for k in sorted(created, key=created.__getitem__, reverse=True) if keep(k)]


def test_pages_list_every_live_job_once_newest_first_across_days(app_module, spread) -> None:
    with Client(app_module.app) as client:
        pages = walk(client, limit=2)
    assert [key for page in pages for key in page] == newest_first(spread)
    assert all(len(page) <= 2 for page in pages)


def test_status_and_prefix_filters_use_the_indexes(app_module, spread) -> None:
    with Client(app_module.app) as client:
        failed = walk(client, status="failed", limit=1)
        under_a = walk(client, prefix="logs/a/", limit=2)
        queued_a = walk(client, status="queued", prefix="logs/a/")
    assert [k for page in failed for k in page] == ["logs/b/2.ndjson", "logs/a/5.ndjson"]
    assert [k for page in under_a for k in page] == newest_first(
        spread, lambda k: k.startswith("logs/a/"))
    assert queued_a == [["logs/a/3.ndjson", "logs/a/7.ndjson"]]


def test_since_and_until_bound_the_creation_time(app_module, spread) -> None:
    since, until = iso(spread["logs/b/6.ndjson"]), iso(spread["logs/a/3.ndjson"])
    with Client(app_module.app) as client:
        pages = walk(client, since=since, until=until, limit=3)
    assert [k for page in pages for k in page] == newest_first(
        spread, lambda k: spread["logs/b/6.ndjson"] <= spread[k] <= spread["logs/a/3.ndjson"])


def test_ranges_outside_the_results_lifetime_are_empty_not_errors(app_module, spread) -> None:
    with Client(app_module.app) as client:
        old_status, old = get(client, "/jobs", until="2020-01-01T00:00:00Z")
        future_status, future = get(client, "/jobs", status="failed",
                                    since="2100-01-01T00:00:00Z")
        wide_status, wide = get(client, "/jobs", since="2000-01-01T00:00:00Z", limit=200)
    assert (old_status, old) == (200, {"jobs": [], "next_cursor": None})
    assert (future_status, future) == (200, {"jobs": [], "next_cursor": None})
    assert wide_status == 200 and len(wide["jobs"]) == len(spread)


def test_summary_rows_carry_what_the_dashboard_shows(app_module, spread) -> None:
    with Client(app_module.app) as client:
        _, body = get(client, "/jobs", status="failed", limit=1)
    row = body["jobs"][0]
    assert row["key"] == "logs/b/2.ndjson" and row["status"] == "failed"
    assert row["failure_reason"] == "unreadable: bad gzip"
    assert row["line_count"] == 0 and row["completed_at"] is not None


@pytest.mark.parametrize(("params", "field"), [
    ({"status": "done"}, "status"),
    ({"limit": "201"}, "limit"),
    ({"limit": "0"}, "limit"),
    ({"limit": "ten"}, "limit"),
    ({"since": "yesterday"}, "since"),
    ({"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "until"),
    ({"cursor": "not-a-cursor"}, "cursor"),
    ({"cursor": "eyJmIjoxfQ"}, "cursor"),
    ({"statuss": "failed"}, "statuss"),
])
def test_bad_listing_parameters_get_a_400_naming_the_field(app_module, params, field) -> None:
    with Client(app_module.app) as client:
        status, body = get(client, "/jobs", **params)
    assert status == 400
    assert body["error"]["field"] == field
    assert body["error"]["message"].startswith(f"{field}: ")


def test_a_cursor_only_continues_the_listing_it_came_from(app_module, spread) -> None:
    with Client(app_module.app) as client:
        _, first = get(client, "/jobs", limit=1)
        status, body = get(client, "/jobs", limit=1, status="failed", cursor=first["next_cursor"])
        same_status, _ = get(client, "/jobs", limit=5, cursor=first["next_cursor"])
    assert status == 400 and body["error"]["field"] == "cursor"
    assert same_status == 200


def test_one_job_is_the_whole_record_and_unknown_or_expired_ones_are_404(
        app_module, s3, sqs, stage) -> None:
    body = b"\n".join(json.dumps(LINE).encode() for _ in range(4)) + b"\nnot json\n"
    obj = run_pipeline(app_module, s3, sqs, stage, "logs/one.ndjson", body)
    job_id = job_id_for(stage.bucket, obj["key"], etag=obj["etag"])
    expired = put_job(app_module, "logs/old.ndjson", time.time() - 8 * 24 * HOUR)
    with Client(app_module.app) as client:
        status, record = get(client, f"/jobs/{job_id}")
        missing, missing_body = get(client, "/jobs/" + "0" * 32)
        gone, _ = get(client, f"/jobs/{expired}")
        bad, bad_body = get(client, "/jobs/hour%23x")
    assert status == 200
    assert record["status"] == "completed" and record["line_count"] == 5
    assert record["malformed_count"] == 1 and record["malformed_samples"][0]["line"] == 5
    assert missing == 404 and "0" * 32 in missing_body["error"]["message"]
    assert gone == 404
    assert bad == 404 and bad_body["error"]["field"] == "job_id"


def test_stats_add_up_the_files_finished_in_the_range(app_module, s3, sqs, dynamodb,
                                                      stage) -> None:
    reader = StreamReader(stage.region, dynamodb, stage.results_table)
    now = datetime.now(UTC).isoformat()
    line = dict(LINE, timestamp=now)
    error = dict(line, level="ERROR", status_code=500, response_time_ms=50)
    run_now(app_module, s3, sqs, stage, "logs/s1.ndjson",
            b"\n".join(json.dumps(r).encode() for r in (line, line, error)) + b"\n{\n")
    run_now(app_module, s3, sqs, stage, "logs/s2.ndjson", json.dumps(error).encode())
    with Client(app_module.app) as client:
        rejected = s3_event(client, stage, upload(s3, stage, "logs/s3.png", b"x"))
        rejected["Records"][0]["eventTime"] = now[:23] + "Z"
        client.lambda_.invoke("trigger", rejected)
    with Client(app_module.app) as client:
        client.lambda_.invoke("rollups", {"Records": reader.read()})
        status, stats = get(client, "/stats")
        _, empty = get(client, "/stats", since="2020-01-01T00:10:00Z",
                       until="2020-01-01T01:00:00Z")
        too_long, long_body = get(client, "/stats", since="2020-01-01T00:00:00Z",
                                  until="2020-03-01T00:00:00Z")
        bad_source, bad_body = get(client, "/stats", source="kinesis")
    assert status == 200
    assert Stats.model_validate(stats).model_dump(mode="json") == stats  # rows built as data
    totals = stats["totals"]
    assert totals["files"] == {"received": 3, "completed": 2, "failed": 1}
    assert (totals["records"], totals["malformed"], totals["out_of_range"]) == (4, 1, 0)
    assert totals["levels"] == {"info": 2, "warn": 0, "error": 2, "debug": 0}
    assert totals["status_codes"] == {"200": 2, "500": 2}
    assert totals["error_rate"] == 0.5
    assert totals["response_time_ms"]["max"] == pytest.approx(50, rel=0.01)
    assert totals["response_time_ms"]["mean"] == 27.5
    assert len(stats["hours"]) == 25
    last = stats["hours"][-1]
    assert (last["files"]["completed"], last["records"], last["errors"]) == (2, 4, 2)
    assert empty["since"] == "2020-01-01T00:00:00Z" and empty["until"] == "2020-01-01T02:00:00Z"
    assert [h["records"] for h in empty["hours"]] == [0, 0]
    assert empty["totals"]["response_time_ms"] is None
    assert too_long == 400 and long_body["error"]["field"] == "since"
    assert bad_source == 400 and bad_body["error"]["field"] == "source"


def test_a_redelivered_file_is_counted_once(app_module, s3, sqs, dynamodb, stage) -> None:
    reader = StreamReader(stage.region, dynamodb, stage.results_table)
    obj = upload(s3, stage, "logs/twice.ndjson", json.dumps(LINE).encode())
    with Client(app_module.app) as client:
        event = s3_event(client, stage, obj)
        client.lambda_.invoke("trigger", event)
        client.lambda_.invoke("trigger", event)
        messages = receive_jobs(sqs, stage)
        client.lambda_.invoke("worker", {"Records": messages})
        client.lambda_.invoke("worker", {"Records": messages})
        client.lambda_.invoke("trigger", event)
        records = reader.read()
        client.lambda_.invoke("rollups", {"Records": records})
        client.lambda_.invoke("rollups", {"Records": records})
        # the test client's S3 events say the object was uploaded at 2018-05-22T04:41:23Z
        _, stats = get(client, "/stats", since="2018-05-22T00:00:00Z",
                       until="2018-05-22T23:00:00Z")
    upload_hours = [h for h in stats["hours"] if h["files"]["received"]]
    assert [h["files"] for h in upload_hours] == [{"received": 1, "completed": 1, "failed": 0}]
    assert stats["totals"]["out_of_range"] == 1  # its event, from 2024, is years later


def test_health_reports_queue_depths_and_the_oldest_waiting_job(app_module, sqs, stage) -> None:
    put_job(app_module, "logs/waiting.ndjson", time.time() - 120)
    put_job(app_module, "logs/newer.ndjson", time.time() - 10)
    jobs_url = sqs.get_queue_url(QueueName=stage.jobs_queue)["QueueUrl"]
    dlq_url = sqs.get_queue_url(QueueName=stage.dead_letter_queue)["QueueUrl"]
    for _ in range(3):
        sqs.send_message(QueueUrl=jobs_url, MessageBody="{}")
    sqs.send_message(QueueUrl=dlq_url, MessageBody="{}")
    sqs.receive_message(QueueUrl=jobs_url, MaxNumberOfMessages=1)
    with Client(app_module.app) as client:
        status, health = get(client, "/health")
    assert status == 200
    assert health["jobs_queue"] == {"visible": 2, "in_flight": 1, "delayed": 0}
    assert health["dead_letter_queue"] == {"visible": 1}
    assert 115 <= health["oldest_queued_job_age_seconds"] < 600


def post_upload(client: Client, body: Any) -> tuple[int, dict[str, Any]]:
    response = client.http.post("/uploads", headers={"Content-Type": "application/json"},
                                body=body if isinstance(body, str) else json.dumps(body))
    return response.status_code, json.loads(response.body)


def test_an_upload_gets_a_presigned_put_for_its_key_and_size(app_module, stage) -> None:
    with Client(app_module.app) as client:
        status, ticket = post_upload(client, {"name": "team/app.ndjson.gz", "size": 1234})
    assert status == 200
    url = urlsplit(ticket["url"])
    query = parse_qs(url.query)
    assert url.path.endswith(f"{stage.bucket}/logs/team/app.ndjson.gz") or (
        url.netloc.startswith(stage.bucket) and url.path == "/logs/team/app.ndjson.gz")
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert "content-length" in query["X-Amz-SignedHeaders"][0].split(";")
    assert ticket["key"] == "logs/team/app.ndjson.gz" and ticket["method"] == "PUT"
    assert ticket["job_id"] is None
    assert ticket["jobs_url"] == "/jobs?prefix=logs%2Fteam%2Fapp.ndjson.gz"


@pytest.mark.parametrize(("body", "field", "code"), [
    ({"name": "picture.png", "size": 10}, "name", "unsupported_type"),
    ({"name": "../escape.ndjson", "size": 10}, "name", "bad_request"),
    ({"name": "/abs.ndjson", "size": 10}, "name", "bad_request"),
    ({"name": "big.ndjson", "size": 2 * 1024**3}, "size", "too_large"),
    ({"name": "big.ndjson.gz", "size": 200 * 1024**2}, "size", "too_large"),
    ({"name": "neg.ndjson", "size": -1}, "size", "bad_request"),
    ({"name": "nosize.ndjson"}, "size", "bad_request"),
    ('{"name": ', "body", "bad_request"),
])
def test_uploads_the_trigger_would_reject_are_refused_up_front(app_module, body, field,
                                                               code) -> None:
    with Client(app_module.app) as client:
        status, answer = post_upload(client, body)
    assert status == 400
    assert answer["error"]["field"] == field and answer["error"]["code"] == code


def test_the_dashboard_is_one_self_contained_page(app_module) -> None:
    with Client(app_module.app) as client:
        response = client.http.get("/")
    page = response.body.decode()
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    assert "<script src" not in page and "https://" not in page
    links = re.findall(r"<link[^>]*>", page)
    assert links == ['<link rel="icon" href="favicon.ico" type="image/svg+xml">']
    assert len(response.body) < 40_000
    assert page.count("http://") == page.count("http://www.w3.org/2000/svg") == 1


def test_on_aws_every_route_needs_iam_auth_and_sends_no_cors(stage, monkeypatch) -> None:
    monkeypatch.setenv("API_AUTH", "iam")
    sys.modules.pop("app", None)
    try:
        app = importlib.import_module("app").app
        routes = [(path, method, entry) for path, methods in app.routes.items()
                  for method, entry in methods.items()]
    finally:
        sys.modules.pop("app", None)
    assert {path for path, _, _ in routes} == {
        "/", "/favicon.ico", "/jobs", "/jobs/{job_id}", "/jobs/{job_id}/download", "/stats",
        "/endpoints", "/health", "/uploads", "/ingest"}
    for path, method, entry in routes:
        assert isinstance(entry.authorizer, IAMAuthorizer), (path, method)
        assert not entry.cors, (path, method)


def test_status_counts_come_from_the_status_index(app_module, spread, dynamodb, stage) -> None:
    from localruntime.console.status import _statuses

    counts = _statuses(dynamodb, stage.results_table)

    assert counts == {"queued": 2, "processing": 0, "completed": 3, "failed": 2}


@pytest.mark.parametrize("value", ["IAM", "off", ""])
def test_an_unknown_auth_mode_stops_the_app_instead_of_opening_it(value) -> None:
    from chalicelib.api import ApiSettings
    from chalicelib.core.errors import ConfigurationError

    env = {"DEAD_LETTER_QUEUE": "d", "STATS_TABLE": "s", "API_AUTH": value}
    with pytest.raises(ConfigurationError, match="API_AUTH"):
        ApiSettings.from_env(env)
    assert ApiSettings.from_env({**env, "API_AUTH": "none"}).auth == "none"
    assert ApiSettings.from_env({"DEAD_LETTER_QUEUE": "d", "STATS_TABLE": "s"}).auth == "iam"


@pytest.mark.parametrize(("path", "params", "suggested"), [
    ("/jobs", {"stauts": "failed"}, "status"),
    ("/jobs", {"limt": "5"}, "limit"),
    ("/stats", {"sinse": "2026-01-01T00:00:00Z"}, "since"),
])
def test_a_misspelt_parameter_is_answered_with_the_name_it_resembles(
        app_module, path, params, suggested) -> None:
    with Client(app_module.app) as client:
        status, body = get(client, path, **params)
    assert status == 400
    message = body["error"]["message"]
    assert f"did you mean {suggested!r}?" in message
    assert "accepted: " in message and suggested in message.split("accepted: ")[1]
