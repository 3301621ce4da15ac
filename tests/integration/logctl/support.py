"""A moto server on 127.0.0.1 and helpers shared by the logctl integration tests."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from moto.server import ThreadedMotoServer

from chalicelib.adapters import to_item
from chalicelib.core.results import iso
from chalicelib.jobindex import index_attributes
from logctl.provision import provision
from logctl.stage import Stage, client, load_stage

DAY = 86_400


@contextmanager
def moto_server() -> Iterator[str]:
    """Serve moto on a free 127.0.0.1 port; yield its URL; stop it afterwards."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def fresh_stage(endpoint: str) -> Stage:
    """Empty every moto backend, then provision stage `local` against `endpoint`.

    Its bucket is then made anew without versioning, so a job id follows from a file's
    bytes before it is uploaded (a test that wants versions turns them on)."""
    request = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=30):
        pass
    stage = load_stage("local", endpoint_url=endpoint)
    provision(stage)
    s3 = client(stage, "s3")
    s3.delete_bucket(Bucket=stage.bucket)
    s3.create_bucket(Bucket=stage.bucket)
    return stage


def result_record(job_id: str, status: str = "completed", *, created: float | None = None,
                  key: str = "logs/app.ndjson", **fields: Any) -> dict[str, Any]:
    """A result record as the worker stores it, with plausible statistics."""
    created = time.time() if created is None else created
    record: dict[str, Any] = {
        "job_id": job_id,
        "bucket": "log-pipeline-local-logs",
        "key": key,
        "status": status,
        "created_at": iso(created),
        "expires_at": int(created) + 7 * DAY,
        "line_count": 1000,
        "malformed_count": 3,
        "error_count": 50,
        "p50_response_time_ms": 120,
        "p95_response_time_ms": 480.5,
        "p99_response_time_ms": 910,
        "processing_time_ms": 42,
        "failure_reason": None,
    }
    record.update(fields)
    return record


def put_record(stage: Stage, record: dict[str, Any], ddb: Any = None) -> None:
    """Store a record with the index attributes the handlers add to every record."""
    (ddb or client(stage, "dynamodb")).put_item(
        TableName=stage.results_table, Item=to_item({**record, **index_attributes(record)}))
