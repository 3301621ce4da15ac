"""S3's rules for presigned URLs, through the runtime's real endpoint: URLs made by botocore's
own signer pass; each way S3 refuses one is refused with S3's status, code and XML body."""

from __future__ import annotations

import datetime
import importlib
import json
import re
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import boto3
import botocore.auth
import pytest
import requests
from botocore.config import Config
from chalice.test import Client

from localruntime.endpoint.presigned import CREDENTIALS
from logctl.provision import provision
from logctl.stage import Stage, load_stage
from tests.integration.endpointprocess import running_endpoint

BUCKET = "presigned-test"
KEY = "logs/team/a b+c.ndjson"
BODY = b'{"level": "INFO"}\n' * 10
ORIGIN = "http://127.0.0.1:8000"


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("endpoint") / "endpoint.log"
    with running_endpoint(log) as url:
        s3 = client(url)
        s3.create_bucket(Bucket=BUCKET)
        s3.put_bucket_cors(Bucket=BUCKET, CORSConfiguration={"CORSRules": [
            {"AllowedOrigins": [ORIGIN], "AllowedMethods": ["PUT"], "AllowedHeaders": ["*"]}]})
        yield url


def client(endpoint: str, *, access_key: str = "test", signature: str = "s3v4") -> Any:
    """An S3 client as the app builds one (app.py: signature_version s3v4)."""
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id=access_key, aws_secret_access_key="test",
                        config=Config(signature_version=signature,
                                      retries={"max_attempts": 1}))


def upload_url(endpoint: str, key: str = KEY, size: int = len(BODY), **options: Any) -> str:
    """A presigned PUT holding its body to `size`, as POST /uploads makes one."""
    return client(endpoint, **options).generate_presigned_url(
        "put_object", ExpiresIn=900,
        Params={"Bucket": BUCKET, "Key": key, "ContentLength": size})


def error(response: requests.Response) -> tuple[int, str, str]:
    code = re.search(r"<Code>(.*?)</Code>", response.text)
    message = re.search(r"<Message>(.*?)</Message>", response.text)
    return (response.status_code, code.group(1) if code else "",
            message.group(1) if message else "")


def stored(endpoint: str, key: str) -> bytes | None:
    try:
        return client(endpoint).get_object(Bucket=BUCKET, Key=key)["Body"].read()
    except client(endpoint).exceptions.NoSuchKey:
        return None


@pytest.mark.parametrize("key", ["logs/ok/a b+c~!.ndjson", "logs/ok/données été=1&x.ndjson"])
def test_a_presigned_put_of_the_signed_size_is_stored(endpoint: str, key: str) -> None:
    response = requests.put(upload_url(endpoint, key), data=BODY)
    assert response.status_code == 200, response.text
    assert stored(endpoint, key) == BODY


def test_a_body_of_another_size_than_signed_is_refused_and_not_stored(endpoint: str) -> None:
    key = "logs/size/big.ndjson"
    url = upload_url(endpoint, key, size=len(BODY))
    for body in (BODY * 100, BODY[:-1]):
        status, code, _ = error(requests.put(url, data=body))
        assert (status, code) == (403, "SignatureDoesNotMatch")
    assert stored(endpoint, key) is None


def test_a_tampered_signature_is_refused(endpoint: str) -> None:
    url = upload_url(endpoint, "logs/tamper.ndjson")
    signature = url.rsplit("=", 1)[1]
    forged = url[: -len(signature)] + ("0" if signature[0] != "0" else "1") + signature[1:]
    status, code, message = error(requests.put(forged, data=BODY))
    assert (status, code) == (403, "SignatureDoesNotMatch")
    assert message.startswith("The request signature we calculated does not match")
    assert stored(endpoint, "logs/tamper.ndjson") is None


@pytest.mark.parametrize("change", [
    ("logs/team/", "elsewhere/"),             # another key
    (f"/{BUCKET}/", "/other-bucket/"),        # another bucket
    ("X-Amz-Expires=900", "X-Amz-Expires=9000"),  # a longer life
])
def test_the_key_bucket_and_lifetime_are_part_of_the_signature(endpoint: str,
                                                               change: tuple[str, str]) -> None:
    url = upload_url(endpoint)
    assert change[0] in url
    status, code, _ = error(requests.put(url.replace(*change), data=BODY))
    assert (status, code) == (403, "SignatureDoesNotMatch")
    assert stored(endpoint, "elsewhere/a b+c.ndjson") is None


def test_the_method_is_part_of_the_signature(endpoint: str) -> None:
    client(endpoint).put_object(Bucket=BUCKET, Key="logs/read.ndjson", Body=BODY)
    put_url = upload_url(endpoint, "logs/read.ndjson")
    status, code, _ = error(requests.get(put_url))
    assert (status, code) == (403, "SignatureDoesNotMatch")
    get_url = client(endpoint).generate_presigned_url(
        "get_object", ExpiresIn=60, Params={"Bucket": BUCKET, "Key": "logs/read.ndjson"})
    assert requests.get(get_url).content == BODY
    assert error(requests.delete(get_url))[:2] == (403, "SignatureDoesNotMatch")
    assert stored(endpoint, "logs/read.ndjson") == BODY


def test_a_download_url_serves_that_version_as_an_attachment(endpoint: str) -> None:
    s3 = client(endpoint)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    first = s3.put_object(Bucket=BUCKET, Key="logs/dl.ndjson", Body=BODY)["VersionId"]
    s3.put_object(Bucket=BUCKET, Key="logs/dl.ndjson", Body=b"newer\n")
    url = s3.generate_presigned_url("get_object", ExpiresIn=300, Params={
        "Bucket": BUCKET, "Key": "logs/dl.ndjson", "VersionId": first,
        "ResponseContentDisposition": 'attachment; filename="dl.ndjson"'})
    response = requests.get(url)
    assert response.content == BODY
    assert response.headers["Content-Disposition"] == 'attachment; filename="dl.ndjson"'
    assert error(requests.get(url.replace(first, "other-version")))[:2] == (
        403, "SignatureDoesNotMatch")


def test_an_expired_url_is_refused_with_request_has_expired(
        endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    signed_at = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: signed_at)
    url = upload_url(endpoint, "logs/expired.ndjson")
    response = requests.put(url, data=BODY)
    assert error(response) == (403, "AccessDenied", "Request has expired")
    assert "<X-Amz-Expires>900</X-Amz-Expires>" in response.text
    assert "<ServerTime>" in response.text
    assert stored(endpoint, "logs/expired.ndjson") is None


def test_another_access_key_is_refused_as_unknown(endpoint: str) -> None:
    assert "AKIAEXAMPLEOTHERKEY" not in CREDENTIALS
    url = upload_url(endpoint, "logs/other-key.ndjson", access_key="AKIAEXAMPLEOTHERKEY")
    response = requests.put(url, data=BODY)
    assert error(response)[:2] == (403, "InvalidAccessKeyId")
    assert "<AWSAccessKeyId>AKIAEXAMPLEOTHERKEY</AWSAccessKeyId>" in response.text


def test_an_unsigned_amz_header_is_refused(endpoint: str) -> None:
    url = upload_url(endpoint, "logs/meta.ndjson")
    response = requests.put(url, data=BODY, headers={"x-amz-meta-owner": "mallory"})
    assert error(response) == (403, "AccessDenied", "There were headers present in the "
                                                     "request which were not signed")
    assert "<HeadersNotSigned>x-amz-meta-owner</HeadersNotSigned>" in response.text


def test_missing_or_out_of_range_parameters_are_refused(endpoint: str) -> None:
    url = upload_url(endpoint)
    without_date = re.sub(r"&X-Amz-Date=[^&]*", "", url)
    assert error(requests.put(without_date, data=BODY))[:2] == (
        400, "AuthorizationQueryParametersError")
    too_long = client(endpoint).generate_presigned_url(
        "put_object", ExpiresIn=604801, Params={"Bucket": BUCKET, "Key": KEY})
    status, code, message = error(requests.put(too_long, data=BODY))
    assert (status, code) == (400, "AuthorizationQueryParametersError")
    assert "604800" in message


def test_a_url_signed_for_another_region_than_the_buckets_is_refused(endpoint: str) -> None:
    elsewhere = boto3.client("s3", endpoint_url=endpoint, region_name="eu-west-1",
                             aws_access_key_id="test", aws_secret_access_key="test",
                             config=Config(signature_version="s3v4"))
    url = elsewhere.generate_presigned_url("put_object", ExpiresIn=60,
                                           Params={"Bucket": BUCKET, "Key": KEY})
    response = requests.put(url, data=BODY)
    assert error(response) == (400, "AuthorizationQueryParametersError",
                               "Error parsing the X-Amz-Credential parameter; the region "
                               "'eu-west-1' is wrong; expecting 'us-east-1'")


def test_the_dashboards_browser_upload_passes_preflight_and_put(endpoint: str) -> None:
    key = "logs/browser.ndjson"
    url = upload_url(endpoint, key)
    preflight = requests.options(url, headers={"Origin": ORIGIN,
                                               "Access-Control-Request-Method": "PUT"})
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == ORIGIN
    put = requests.put(url, data=BODY, headers={"Origin": ORIGIN,
                                                "Content-Type": "application/x-ndjson"})
    assert put.status_code == 200 and put.headers["Access-Control-Allow-Origin"] == ORIGIN
    refused = requests.put(url, data=BODY * 2, headers={"Origin": ORIGIN})
    assert refused.status_code == 403
    assert refused.headers["Access-Control-Allow-Origin"] == ORIGIN  # the page can read why


def test_sigv2_query_urls_are_checked_alike(endpoint: str) -> None:
    s3 = client(endpoint, signature="s3")
    s3.put_object(Bucket=BUCKET, Key="logs/v2.ndjson", Body=BODY)
    params = {"Bucket": BUCKET, "Key": "logs/v2.ndjson",
              "ResponseContentDisposition": "attachment; filename=v2.ndjson"}
    url = s3.generate_presigned_url("get_object", ExpiresIn=60, Params=params)
    assert "AWSAccessKeyId=test" in url and "X-Amz-Signature" not in url
    response = requests.get(url)
    assert response.content == BODY
    assert response.headers["Content-Disposition"] == "attachment; filename=v2.ndjson"
    assert error(requests.get(url.replace("logs/v2", "logs/v3")))[:2] == (
        403, "SignatureDoesNotMatch")
    assert error(requests.get(url.replace("filename%3Dv2", "filename%3Dv3")))[:2] == (
        403, "SignatureDoesNotMatch")
    expired = s3.generate_presigned_url("get_object", ExpiresIn=-60, Params=params)
    assert error(requests.get(expired)) == (403, "AccessDenied", "Request has expired")
    other = client(endpoint, access_key="AKIAEXAMPLEOTHERKEY", signature="s3")
    assert error(requests.get(other.generate_presigned_url(
        "get_object", ExpiresIn=60, Params=params)))[:2] == (403, "InvalidAccessKeyId")


def test_header_signed_sdk_requests_are_served_as_before(endpoint: str) -> None:
    s3 = client(endpoint, access_key="any-key-the-tools-have")
    s3.put_object(Bucket=BUCKET, Key="logs/sdk.ndjson", Body=BODY)
    assert s3.get_object(Bucket=BUCKET, Key="logs/sdk.ndjson")["Body"].read() == BODY


@pytest.fixture
def app_on_endpoint(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """app.py imported against the endpoint, with stage `local` provisioned there."""
    stage = load_stage("local", endpoint_url=endpoint)
    for name, value in {**stage.environment, **stand_in_environment(endpoint, stage)}.items():
        monkeypatch.setenv(name, value)
    provision(stage)
    sys.modules.pop("app", None)
    yield importlib.import_module("app")
    sys.modules.pop("app", None)


def stand_in_environment(endpoint: str, stage: Stage) -> dict[str, str]:
    return {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": stage.region}


def test_post_uploads_urls_take_their_declared_size_and_nothing_else(
        app_on_endpoint: ModuleType, endpoint: str) -> None:
    with Client(app_on_endpoint.app) as api:
        answer = api.http.post("/uploads", headers={"Content-Type": "application/json"},
                               body=json.dumps({"name": "api/app.ndjson", "size": len(BODY)}))
    ticket = json.loads(answer.body)
    bucket = load_stage("local", endpoint_url=endpoint).bucket
    refused = requests.put(ticket["url"], data=BODY * 100, headers=ticket["headers"])
    assert error(refused)[:2] == (403, "SignatureDoesNotMatch")
    accepted = requests.put(ticket["url"], data=BODY, headers=ticket["headers"])
    assert accepted.status_code == 200, accepted.text
    body = client(endpoint).get_object(Bucket=bucket, Key=ticket["key"])["Body"].read()
    assert body == BODY
