"""Failures on the running local runtime: poisoned messages, redrive, a killed worker."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.core.jobs import job_id_for
from chalicelib.pipeline import MAX_RECEIVE_COUNT
from logctl.generate import generate_lines
from tests.e2e.conftest import (
    ROOT,
    Runtime,
    get_record,
    queue_depth,
    running,
    runtime_environment,
    wait_for_final,
    wait_until,
)

pytestmark = pytest.mark.e2e

WORKER_TIMEOUT = 5
# ~0.4 s of work on a quiet machine: long enough to be killed in, ten times short of the
# worker's time limit when the machine is busy.
LINES = 300_000


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    # A short worker timeout keeps the jobs queue's visibility timeout (6x) short, so a
    # crashed invocation's batch comes back within the test's patience.
    with running(tmp_path_factory.mktemp("runtime"),
                 "--timeout", f"worker={WORKER_TIMEOUT}",
                 "--set", f"WORKER_TIMEOUT_SECONDS={WORKER_TIMEOUT}",
                 "--set", "WORKER_MIN_BYTES_PER_SECOND=100000000",
                 "--set", "RETRY_BASE_SECONDS=0.05") as rt:
        yield rt


def poison_failures(runtime: Runtime, marker: str) -> int:
    """How many times the worker reported the poisoned message as a failed item."""
    return sum(1 for line in runtime.log().splitlines()
               if '"job_error"' in line and marker in line)


def dead_letter_bodies(runtime: Runtime) -> list[str]:
    stage = runtime.stage()
    sqs = runtime.client("sqs")
    url = sqs.get_queue_url(QueueName=stage.dead_letter_queue)["QueueUrl"]
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0,
                                   WaitTimeSeconds=1).get("Messages", [])
    return [m["Body"] for m in messages]


def test_poisoned_message_reaches_the_dlq_after_five_receives_and_redrive_returns_it(
        runtime: Runtime) -> None:
    # GIVEN a message the worker can never process
    stage = runtime.stage()
    marker = f"poison-{uuid.uuid4()}"
    sqs = runtime.client("sqs")
    jobs_url = sqs.get_queue_url(QueueName=stage.jobs_queue)["QueueUrl"]
    sqs.send_message(QueueUrl=jobs_url, MessageBody=marker)
    # WHEN the event source mapping keeps receiving it
    wait_until(lambda: queue_depth(runtime, stage.dead_letter_queue) >= 1, 60,
               "the poisoned message in the dead-letter queue")
    # THEN it was received (and failed) exactly maxReceiveCount times, then moved
    assert poison_failures(runtime, marker) == MAX_RECEIVE_COUNT
    assert queue_depth(runtime, stage.jobs_queue) == 0
    assert marker in dead_letter_bodies(runtime)

    # WHEN an operator redrives the dead-letter queue
    done = subprocess.run(
        [sys.executable, "-m", "logctl.dlq", "redrive", "--stage", "local",
         "--endpoint-url", runtime.endpoint, "--max", "1"],
        cwd=ROOT, env=runtime_environment(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    # THEN the message is back in the pipeline: received again five times, then dead again
    wait_until(lambda: poison_failures(runtime, marker) == 2 * MAX_RECEIVE_COUNT, 60,
               "the redriven message to be retried")
    wait_until(lambda: queue_depth(runtime, stage.dead_letter_queue) >= 1, 60,
               "the message back in the dead-letter queue")
    assert poison_failures(runtime, marker) == 2 * MAX_RECEIVE_COUNT


def test_worker_killed_mid_file_loses_nothing(runtime: Runtime) -> None:
    # GIVEN a file that takes a while to process but is quick to upload: gzip of a
    # repeated 100-line block (about 50 MB of lines in well under 1 MB)
    stage = runtime.stage()
    block = b"".join(generate_lines(100, seed=3))
    body = gzip.compress(block * (LINES // 100), compresslevel=1)
    key = "logs/e2e/big.ndjson.gz"
    response = runtime.client("s3").put_object(Bucket=stage.bucket, Key=key, Body=body)
    job_id = job_id_for(stage.bucket, key, etag=response["ETag"],
                        version_id=response.get("VersionId"))
    # WHEN every worker process is killed by pid while the file is being processed
    def started() -> dict[str, Any] | None:
        record = get_record(runtime, job_id)
        if record and record["status"] not in ("queued", "processing"):
            pytest.fail(f"the job ended before the worker could be killed: {record}")
        return record if record and record["status"] == "processing" else None
    wait_until(started, 60, "the worker to start on the file", interval=0.01)
    victims = runtime.handler_pids("worker")
    assert victims
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    # THEN the runtime reports the crashed invocation, replaces the processes, and the
    # job completes when its message comes back after the visibility timeout
    wait_until(lambda: [r for r in runtime.log_records() if r["outcome"] == "crash"], 30,
               "the runtime to report the crashed invocation")
    record = wait_for_final(runtime, job_id, timeout=6 * WORKER_TIMEOUT + 60)
    assert record["status"] == "completed", record
    assert record["line_count"] == LINES
    assert record["attempts"] == 2
    crashes = [r for r in runtime.log_records() if r["outcome"] == "crash"]
    assert len(crashes) == 1
    assert crashes[0]["function"] == "worker" and crashes[0]["pid"] in victims
    survivors = runtime.handler_pids("worker")
    assert survivors and not set(survivors) & set(victims)
