"""Input the API once answered with a 500: each case is now a 400 or 404 in the error body.

GIVEN the app on moto, WHEN a request carries hostile or malformed input, THEN the answer is
`{"error": {"code", "message", "field"?}}` with a 4xx status naming what is wrong.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from chalice.test import Client

from chalicelib.apimodels import MAX_NAME_BYTES
from chalicelib.core.jobs import Job, job_id_for
from chalicelib.core.results import iso, queued_record
from chalicelib.jobindex import listing
from tests.integration.test_api import HOUR, put_job, walk

JSON = {"Content-Type": "application/json"}


def request(client: Client, method: str, path: str, body: Any = None,
            headers: dict[str, str] | None = None) -> tuple[int, Any, dict[str, str]]:
    response = client.http.request(method, path, headers=headers or {},
                                   body=body if body is not None else b"")
    return response.status_code, json.loads(response.body), response.headers


def get(client: Client, path: str, **params: Any) -> tuple[int, Any]:
    status, body, _ = request(client, "GET", path + ("?" + urlencode(params) if params else ""))
    return status, body


def post_upload(client: Client, body: bytes | str) -> tuple[int, Any]:
    status, answer, _ = request(client, "POST", "/uploads", body, JSON)
    return status, answer


def assert_error(status: int, body: Any, expected: int, field: str | None = None) -> None:
    assert status == expected, body
    assert set(body) == {"error"} and {"code", "message"} <= set(body["error"])
    if field is not None:
        assert body["error"]["field"] == field
        assert body["error"]["message"].startswith(f"{field}: ")


@pytest.mark.parametrize("params", [
    {"until": "0001-01-01T00:00:00Z"},
    {"since": "9999-12-31T23:00:00Z", "until": "9999-12-31T23:59:59Z"},
    {"until": "9999-12-31T23:59:59.999999Z"},
    {"since": "0001-01-01T00:00:00+01:00"},
    {"since": "-1"},
    {"until": "99999999999999999999"},
])
@pytest.mark.parametrize("path", ["/stats", "/jobs"])
def test_moments_datetime_cannot_hold_are_400s(app_module, path, params) -> None:
    with Client(app_module.app) as client:
        status, body = get(client, path, **params)
    assert_error(status, body, 400, next(iter(params)))


def test_since_takes_epoch_seconds_and_says_so_when_given_milliseconds(app_module) -> None:
    with Client(app_module.app) as client:
        seconds, in_seconds = get(client, "/stats", since="1765000000", until="1765003600")
        millis, in_millis = get(client, "/stats", since="1765000000000")
    assert seconds == 200 and in_seconds["since"].startswith("2025-12-06T05:")
    assert_error(millis, in_millis, 400, "since")
    assert "milliseconds" in in_millis["error"]["message"]


@pytest.mark.parametrize("value", ["2026-12-06", "yesterday", "2026-12-06T12:00",
                                   "1e9", "0x10", "2026-12-06T25:00:00Z", "1765000000,5"])
def test_only_rfc3339_date_times_and_epoch_seconds_are_moments(app_module, value) -> None:
    with Client(app_module.app) as client:
        status, body = get(client, "/stats", since=value)
    assert_error(status, body, 400, "since")


def test_a_deeply_nested_body_is_a_400_not_a_recursion_error(app_module) -> None:
    with Client(app_module.app) as client:
        status, body = post_upload(client, "[" * 100_000 + "]" * 100_000)
    assert_error(status, body, 400, "body")


def test_a_name_is_limited_in_utf8_bytes_to_what_s3_allows_for_the_key(app_module) -> None:
    emoji = "\N{GRINNING FACE}"
    with Client(app_module.app) as client:
        too_long, refused = post_upload(client, json.dumps(
            {"name": emoji * 500 + ".ndjson", "size": 1}))
        fits = "a" * (MAX_NAME_BYTES - len(".ndjson")) + ".ndjson"
        at_limit, ticket = post_upload(client, json.dumps({"name": fits, "size": 1}))
        over, _ = post_upload(client, json.dumps({"name": "a" + fits, "size": 1}))
        lone, lone_body = post_upload(client, '{"name": "\\ud800.ndjson", "size": 1}')
    assert_error(too_long, refused, 400, "name")
    assert "2007 bytes" in refused["error"]["message"]
    assert at_limit == 200 and len(ticket["key"].encode()) == 1024
    assert over == 400
    assert_error(lone, lone_body, 400, "name")


@pytest.mark.parametrize("size", [True, False, 1.0, "1", None])
def test_size_must_be_an_integer(app_module, size) -> None:
    with Client(app_module.app) as client:
        status, body = post_upload(client, json.dumps({"name": "a.ndjson", "size": size}))
    assert_error(status, body, 400, "size")


@pytest.mark.parametrize(("path", "params", "misspelt", "meant"), [
    ("/jobs", {"statuss": "failed"}, "statuss", "status"),
    ("/jobs", {"limt": "5"}, "limt", "limit"),
    ("/stats", {"sinse": "1765000000"}, "sinse", "since"),
])
def test_a_misspelt_parameter_gets_did_you_mean(app_module, path, params, misspelt,
                                                meant) -> None:
    with Client(app_module.app) as client:
        status, body = get(client, path, **params)
    assert_error(status, body, 400, misspelt)
    assert f"did you mean '{meant}'?" in body["error"]["message"]


def test_a_misspelt_body_field_gets_did_you_mean(app_module) -> None:
    with Client(app_module.app) as client:
        status, body = post_upload(client, json.dumps({"nme": "a.ndjson", "size": 1}))
    assert status == 400 and "did you mean 'name'?" in body["error"]["message"]


def _cursor(data: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def test_hand_built_cursors_are_400s(app_module) -> None:
    now = time.time()
    put_job(app_module, "logs/c/1.ndjson", now - 60)
    fingerprint = listing(now, limit=1).fingerprint
    today = time.strftime("%Y-%m-%d", time.gmtime(now))
    forged = [
        {"f": fingerprint, "d": today, "k": {"job_id": {"S": "x"}}},
        {"f": fingerprint, "d": "9999-12-31", "k": None},
        {"f": fingerprint, "d": today, "k": {"job_id": {"S": "a" * 32},
                                             "created_day": {"S": today},
                                             "created_at": {"S": "2001-01-01T00:00:00.000Z"}}},
        {"f": fingerprint, "d": today, "k": {"job_id": {"S": "a" * 32},
                                             "created_day": {"S": "2026-01-01"},
                                             "created_at": {"S": today + "T00:00:00.000Z"}}},
        {"f": fingerprint, "d": today, "k": {"job_id": {"S": "a" * 32},
                                             "status": {"S": "failed"},
                                             "created_at": {"S": today + "T00:00:00.000Z"}}},
        {"f": fingerprint, "d": today, "k": {"job_id": {"S": "a" * 32}, "x": {"S": "y"},
                                             "created_day": {"S": today},
                                             "created_at": {"S": today + "T00:00:00.000Z"}}},
    ]
    with Client(app_module.app) as client:
        answers = [get(client, "/jobs", limit=1, cursor=_cursor(data)) for data in forged]
        deep, deep_body = get(client, "/jobs", cursor=_cursor([]).replace(
            "W10", base64.urlsafe_b64encode(b"[" * 5000).decode()))
    for status, body in answers:
        assert_error(status, body, 400, "cursor")
    assert_error(deep, deep_body, 400, "cursor")


def test_a_status_cursor_must_name_that_status(app_module) -> None:
    now = time.time()
    for i in range(3):
        put_job(app_module, f"logs/s/{i}.ndjson", now - 60 * (i + 1), "failed")
    with Client(app_module.app) as client:
        _, first = get(client, "/jobs", status="failed", limit=1)
        fingerprint = listing(now, limit=1, status="queued").fingerprint
        key = json.loads(base64.urlsafe_b64decode(first["next_cursor"] + "=="))["k"]
        status, body = get(client, "/jobs", status="queued", limit=1,
                           cursor=_cursor({"f": fingerprint, "d": None, "k": key}))
    assert_error(status, body, 400, "cursor")


def test_no_next_cursor_when_nothing_follows(app_module) -> None:
    now = time.time()
    with Client(app_module.app) as client:
        empty_status, empty = get(client, "/jobs")
        for i in range(4):
            put_job(app_module, f"logs/n/{i}.ndjson", now - i * 30 * HOUR)
        _, exact = get(client, "/jobs", limit=4)
        _, exact_status = get(client, "/jobs", status="queued", limit=4)
        pages = walk(client, limit=2)
    assert (empty_status, empty) == (200, {"jobs": [], "next_cursor": None})
    assert len(exact["jobs"]) == 4 and exact["next_cursor"] is None
    assert len(exact_status["jobs"]) == 4 and exact_status["next_cursor"] is None
    assert [len(page) for page in pages] == [2, 2]


def test_chalices_own_answers_use_the_error_body(app_module) -> None:
    with Client(app_module.app) as client:
        not_allowed, body_405, headers = request(client, "DELETE", "/jobs")
        media, body_415, _ = request(client, "POST", "/uploads", b"name=a",
                                     {"Content-Type": "application/x-www-form-urlencoded"})
    assert_error(not_allowed, body_405, 405)
    assert body_405["error"]["code"] == "method_not_allowed" and headers["Allow"] == "GET"
    assert_error(media, body_415, 415)
    assert body_415["error"]["code"] == "unsupported_media_type"


def test_an_unhandled_error_is_a_500_in_the_error_body(app_module, monkeypatch) -> None:
    def broken() -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(app_module.api, "health", broken)
    with Client(app_module.app) as client:
        status, body = get(client, "/health")
    assert status == 500 and body["error"]["code"] == "internal_error"
    assert "boom" not in body["error"]["message"]


def test_the_favicon_is_an_icon(app_module) -> None:
    with Client(app_module.app) as client:
        response = client.http.get("/favicon.ico")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "image/svg+xml"
    assert response.body.startswith(b"<svg")


def test_a_download_is_a_presigned_get_of_that_version_as_an_attachment(
        app_module, s3, stage) -> None:
    s3.put_bucket_versioning(Bucket=stage.bucket,
                             VersioningConfiguration={"Status": "Enabled"})
    key = "logs/d/invoice\u202egpj.ndjson"
    first = s3.put_object(Bucket=stage.bucket, Key=key, Body=b"first\n")
    s3.put_object(Bucket=stage.bucket, Key=key, Body=b"newer\n")
    job = Job(job_id=job_id_for(stage.bucket, key, version_id=first["VersionId"]),
              bucket=stage.bucket, key=key, size=6, etag=first["ETag"].strip('"'),
              version_id=first["VersionId"], uploaded_at=None, created_at=iso(time.time()))
    app_module.results.create(queued_record(job))
    with Client(app_module.app) as client:
        status, ticket = get(client, f"/jobs/{job.job_id}/download")
        missing, missing_body = get(client, "/jobs/" + "0" * 32 + "/download")
        bad, bad_body = get(client, "/jobs/nope/download")
    assert status == 200 and ticket["expires_in_seconds"] == 300
    query = parse_qs(urlsplit(ticket["url"]).query)
    assert query["versionId"] == [first["VersionId"]]
    disposition = query["response-content-disposition"][0]
    assert disposition.startswith('attachment; filename="invoice_gpj.ndjson"')
    assert "filename*=UTF-8''invoice%E2%80%AEgpj.ndjson" in disposition
    fetched = requests_get(ticket["url"])
    assert fetched == (b"first\n", disposition)
    assert_error(missing, missing_body, 404, "job_id")
    assert_error(bad, bad_body, 404, "job_id")


def requests_get(url: str) -> tuple[bytes, str]:
    """GET a presigned URL as a browser would (moto answers `requests` inside mock_aws)."""
    response = requests.get(url, timeout=10)
    assert response.status_code == 200, response.text
    return response.content, response.headers.get("Content-Disposition", "")


def test_the_source_filter_splits_streamed_from_uploaded_files(app_module) -> None:
    now = time.time()
    keys = ["logs/stream/2026/12/06/a.ndjson.gz", "logs/up.ndjson", "logs/streamed.ndjson"]
    for i, key in enumerate(keys):
        put_job(app_module, key, now - 60 * (i + 1))
    with Client(app_module.app) as client:
        stream = [k for page in walk(client, source="stream", limit=1) for k in page]
        uploads = [k for page in walk(client, source="upload") for k in page]
        failed_stream = walk(client, source="stream", status="failed")
        status, body = get(client, "/jobs", source="kinesis")
    assert stream == keys[:1]
    assert uploads == keys[1:]
    assert failed_stream == [[]]
    assert_error(status, body, 400, "source")
