"""Streamed events through the running local runtime, as a user sends them: `logctl send` and
POST /ingest into Kinesis, the ingest handler, then the trigger and worker; each event is
counted once, in records marked `stream`."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chalicelib.adapters import from_item
from chalicelib.core.jobs import STREAM_PREFIX
from chalicelib.core.summary import summarize_file
from localruntime.background import free_port
from logctl.generate import write_log_file
from tests.e2e.conftest import ROOT, Runtime, running, runtime_environment, wait_until

pytestmark = pytest.mark.e2e

SENT_LINES = 20_000
POSTED_LINES = 3_000
RESULT_TIMEOUT_SECONDS = 120.0


@pytest.fixture(scope="module")
def api_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory, api_port: int) -> Iterator[Runtime]:
    with running(tmp_path_factory.mktemp("runtime"), "--api-port", str(api_port)) as rt:
        yield rt


def stream_records(runtime: Runtime) -> list[dict[str, Any]]:
    stage = runtime.stage()
    items = runtime.client("dynamodb").scan(
        TableName=stage.results_table, FilterExpression="begins_with(#k, :p)",
        ExpressionAttributeNames={"#k": "key"},
        ExpressionAttributeValues={":p": {"S": STREAM_PREFIX}})["Items"]
    return [from_item(item) for item in items]


def test_sent_and_posted_events_are_counted_once(runtime: Runtime, api_port: int,
                                                  tmp_path: Path) -> None:
    # GIVEN a file of events sent with logctl send, and more posted to POST /ingest
    sent = write_log_file(tmp_path / "events.ndjson", SENT_LINES, malformed_rate=0.01, seed=11)
    posted = write_log_file(tmp_path / "posted.ndjson", POSTED_LINES, seed=12)
    done = subprocess.run(
        [sys.executable, "-m", "logctl", "send", "--endpoint-url", runtime.endpoint, str(sent)],
        cwd=ROOT, env=runtime_environment(), capture_output=True, text=True, timeout=300,
        stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    assert f"sent {SENT_LINES:,} lines" in done.stdout
    request = urllib.request.Request(
        f"http://127.0.0.1:{api_port}/ingest", data=posted.read_bytes(), method="POST",
        headers={"Content-Type": "application/x-ndjson"})
    with urllib.request.urlopen(request, timeout=60) as answer:
        assert answer.status == 202
        assert json.loads(answer.read())["accepted"] == POSTED_LINES

    # WHEN the runtime's Kinesis poller runs the ingest handler, and the files pipeline the rest
    def all_counted() -> list[dict[str, Any]] | None:
        records = stream_records(runtime)
        done = [r for r in records if r["status"] in ("completed", "failed")]
        if done and len(done) == len(records) and sum(
                r["line_count"] for r in done) >= SENT_LINES + POSTED_LINES:
            return done
        return None

    records = wait_until(all_counted, RESULT_TIMEOUT_SECONDS,
                         "every streamed event counted in a completed record")

    # THEN every event is counted exactly once, malformed lines among them, as stream records
    assert {r["status"] for r in records} == {"completed"}
    assert {r["source"] for r in records} == {"stream"}
    assert sum(r["line_count"] for r in records) == SENT_LINES + POSTED_LINES
    assert sum(r["malformed_count"] for r in records) == summarize_file(sent)["malformed_count"]
    assert {job["key"] for job in listed_jobs(api_port, "stream")} == {r["key"] for r in records}
    assert not [job for job in listed_jobs(api_port, "upload")
                if job["key"].startswith(STREAM_PREFIX)]


def listed_jobs(api_port: int, source: str) -> list[dict[str, Any]]:
    """Every page of GET /jobs?source=..."""
    jobs, cursor = [], None
    while True:
        query = f"source={source}&limit=200" + (f"&cursor={cursor}" if cursor else "")
        with urllib.request.urlopen(f"http://127.0.0.1:{api_port}/jobs?{query}",
                                    timeout=30) as answer:
            page = json.loads(answer.read())
        jobs += page["jobs"]
        cursor = page["next_cursor"]
        if cursor is None:
            return jobs
