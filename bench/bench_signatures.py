"""What checking signatures costs the endpoint, in CPU per request, one core.

    python bench/bench_signatures.py [--repeat 2000]      (or: make bench-signatures)

Times, in this process: the endpoint's presigned-URL check of a presigned PUT (what
`localruntime.endpoint.presigned` does for each one), its test of whether a request is
presigned at all (what every other request pays), and what checking a header-signed
request would cost (botocore's SigV4 signer recomputing the signature of a DynamoDB
UpdateItem like the worker's final write, body hash included). The last is set against the
endpoint's CPU per file in `make bench-e2e` (about 14 requests a file).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import ReadOnlyCredentials

from localruntime.endpoint.presigned import check, is_presigned

ENDPOINT = "http://127.0.0.1:4566"
REQUESTS_PER_FILE = 14
ENDPOINT_CPU_MS_PER_FILE = 32.5  # docs/local-runtime.md, "What each speed-up gains" (all on)


def presigned_put_environ() -> dict[str, Any]:
    s3 = boto3.client("s3", endpoint_url=ENDPOINT, region_name="us-east-1",
                      aws_access_key_id="test", aws_secret_access_key="test",
                      config=Config(signature_version="s3v4"))
    url = urlsplit(s3.generate_presigned_url(
        "put_object", ExpiresIn=900,
        Params={"Bucket": "log-pipeline-local-logs", "Key": "logs/web/app.ndjson",
                "ContentLength": 35204}))
    return {"REQUEST_METHOD": "PUT", "RAW_URI": f"{url.path}?{url.query}",
            "PATH_INFO": url.path, "QUERY_STRING": url.query, "HTTP_HOST": url.netloc,
            "CONTENT_LENGTH": "35204", "CONTENT_TYPE": "application/x-ndjson"}


def update_item_request() -> AWSRequest:
    values = {f":v{i}": {"N": str(i * 1.5)} for i in range(30)}
    body = json.dumps({
        "TableName": "log-pipeline-local-results", "Key": {"job_id": {"S": "f" * 32}},
        "UpdateExpression": "SET " + ", ".join(f"#a{i} = :v{i}" for i in range(30)),
        "ExpressionAttributeNames": {f"#a{i}": f"attribute_{i}" for i in range(30)},
        "ExpressionAttributeValues": values}).encode()
    return AWSRequest(method="POST", url=ENDPOINT + "/", data=body, headers={
        "X-Amz-Target": "DynamoDB_20120810.UpdateItem",
        "Content-Type": "application/x-amz-json-1.0", "User-Agent": "Boto3/1.44"})


def per_call_us(action: Callable[[], Any], repeat: int) -> float:
    action()
    started = time.process_time()
    for _ in range(repeat):
        action()
    return (time.process_time() - started) / repeat * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=2000)
    args = parser.parse_args(argv)

    environ = presigned_put_environ()
    other = {"REQUEST_METHOD": "POST", "QUERY_STRING": "", "HTTP_AUTHORIZATION": "AWS4-..."}
    signer = SigV4Auth(ReadOnlyCredentials("test", "test", None), "dynamodb", "us-east-1")
    request = update_item_request()
    rows = [
        ("presigned PUT: the check", per_call_us(
            lambda: check(environ, {"test": "test"}), args.repeat)),
        ("any other request: is it presigned?", per_call_us(
            lambda: is_presigned(other), args.repeat * 10)),
        ("header-signed UpdateItem: recompute its SigV4", per_call_us(
            lambda: signer.add_auth(request), args.repeat)),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"{'':{width}}  CPU per request")
    for name, micros in rows:
        print(f"{name:{width}}  {micros:9.1f} us")
    header_ms = rows[2][1] * REQUESTS_PER_FILE / 1000
    print(f"\nchecking every header-signed request: {REQUESTS_PER_FILE} requests a file x "
          f"{rows[2][1]:.0f} us = {header_ms:.2f} ms a file, "
          f"{header_ms / ENDPOINT_CPU_MS_PER_FILE:.1%} of the endpoint's "
          f"{ENDPOINT_CPU_MS_PER_FILE} ms a file")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
