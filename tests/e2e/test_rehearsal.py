"""Rehearse the AWS path: the `aws` stage's configuration, deployed with a plain
`chalice deploy` (no post-deploy step) to a local runtime's endpoint, loses no job when one
message of a batch fails, with and without ReportBatchItemFailures; then it is destroyed.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chalicelib.core.jobs import Job, job_id_for
from chalicelib.pipeline import MAX_RECEIVE_COUNT
from localruntime.sources.mapping import REFRESH_SECONDS
from logctl.generate import generate_lines
from logctl.stage import Stage
from tests.e2e.conftest import (
    ROOT,
    Runtime,
    project_copy,
    queue_depth,
    running,
    runtime_environment,
    stage_resources,
    wait_for_final,
    wait_until,
)

pytestmark = pytest.mark.e2e

COMMAND_TIMEOUT_SECONDS = 600
GOOD_JOBS = 3


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return project_copy(tmp_path_factory.mktemp("project"))


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory, project: Path) -> Iterator[Runtime]:
    # Retries come back at once (RETRY_BASE_SECONDS), so five receives take seconds.
    with running(tmp_path_factory.mktemp("runtime"), "--no-reload", "--stage", "aws",
                 "--set", "RETRY_BASE_SECONDS=0.05", project=project) as rt:
        yield rt


def logctl(module: str, runtime: Runtime, project: Path,
           *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", f"logctl.{module}", "--stage", "aws", "--endpoint-url",
         runtime.endpoint, *args],
        cwd=ROOT, env=runtime_environment(), capture_output=True, text=True,
        timeout=COMMAND_TIMEOUT_SECONDS, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, f"logctl {module}:\n{done.stdout}\n{done.stderr}"
    return done


def job_errors(runtime: Runtime, marker: str) -> int:
    return sum(1 for line in runtime.log().splitlines()
               if '"job_error"' in line and marker in line)


def done_lines(runtime: Runtime, job_id: str) -> int:
    return sum(1 for line in runtime.log().splitlines()
               if '"job_done"' in line and job_id in line)


def batch_with_one_poisoned_message(runtime: Runtime, stage: Stage, marker: str) -> list[str]:
    """Three real jobs and one message no worker can read, sent in one batch call."""
    s3, sqs = runtime.client("s3"), runtime.client("sqs")
    jobs: list[Job] = []
    for n in range(GOOD_JOBS):
        key = f"rehearsal/{marker}-{n}.ndjson"  # outside logs/: no trigger, no second job
        body = b"".join(generate_lines(20, seed=n))
        put = s3.put_object(Bucket=stage.bucket, Key=key, Body=body)
        etag, version = put["ETag"].strip('"'), put.get("VersionId")
        jobs.append(Job(job_id=job_id_for(stage.bucket, key, etag=etag, version_id=version),
                        bucket=stage.bucket, key=key, size=len(body), etag=etag,
                        version_id=version, uploaded_at=None,
                        created_at="2026-11-26T12:00:00Z"))
    url = sqs.get_queue_url(QueueName=stage.jobs_queue)["QueueUrl"]
    entries: list[dict[str, Any]] = [
        {"Id": str(n), "MessageBody": job.to_message()} for n, job in enumerate(jobs)]
    entries.insert(1, {"Id": "poison", "MessageBody": marker})
    response = sqs.send_message_batch(QueueUrl=url, Entries=entries)
    assert not response.get("Failed")
    return [job.job_id for job in jobs]


def dead_letters(runtime: Runtime, stage: Stage) -> list[str]:
    sqs = runtime.client("sqs")
    url = sqs.get_queue_url(QueueName=stage.dead_letter_queue)["QueueUrl"]
    return [m["Body"] for m in sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0,
        WaitTimeSeconds=1).get("Messages", [])]


def upload_completes(runtime: Runtime, stage: Stage, key: str) -> None:
    put = runtime.client("s3").put_object(Bucket=stage.bucket, Key=key,
                                          Body=b"".join(generate_lines(50, seed=9)))
    record = wait_for_final(runtime, job_id_for(stage.bucket, key, etag=put["ETag"],
                                                version_id=put["VersionId"]))
    assert record["status"] == "completed" and record["line_count"] == 50


def no_job_is_lost(runtime: Runtime, stage: Stage) -> None:
    marker = f"poison-{uuid.uuid4()}"
    dead_before = queue_depth(runtime, stage.dead_letter_queue)
    alarms_before = runtime.log().count("ALARM log-pipeline-aws-jobs-dlq-not-empty")
    # WHEN one message of a batch cannot be processed
    job_ids = batch_with_one_poisoned_message(runtime, stage, marker)
    # THEN it is retried until it reaches the dead-letter queue, and the runtime says so
    wait_until(lambda: queue_depth(runtime, stage.dead_letter_queue) > dead_before, 90,
               "the poisoned message in the dead-letter queue")
    # (a handler's log lines reach the runtime's log through a pipe: they may trail)
    wait_until(lambda: job_errors(runtime, marker) >= MAX_RECEIVE_COUNT, 30,
               "the worker's log line for each attempt")
    assert job_errors(runtime, marker) == MAX_RECEIVE_COUNT
    assert marker in dead_letters(runtime, stage)
    wait_until(lambda: runtime.log().count("ALARM log-pipeline-aws-jobs-dlq-not-empty")
               > alarms_before, 30, "the runtime's dead-letter line")
    # AND the batch it failed in held the other jobs too
    failed = [r for r in runtime.log_records() if r["function"] == "worker"
              and r["outcome"] == "error" and marker in r.get("error", "")]
    assert failed and failed[0]["batch_size"] > 1, [
        (r["ts"], r["batch_size"], r["outcome"], r.get("error", "")[:400])
        for r in runtime.log_records() if r["function"] == "worker"]
    # AND its neighbours completed, each once, in their first attempt
    for job_id in job_ids:
        record = wait_for_final(runtime, job_id)
        assert record["status"] == "completed" and record["line_count"] == 20
        assert record["attempts"] == 1
        wait_until(lambda job_id=job_id: done_lines(runtime, job_id) >= 1, 30,
                   "the worker's log line for the job")
        assert done_lines(runtime, job_id) == 1
    assert queue_depth(runtime, stage.jobs_queue) == 0


def test_a_plain_chalice_deploy_of_the_aws_stage_loses_nothing_then_is_destroyed(
        runtime: Runtime, project: Path) -> None:
    stage = runtime.stage()
    assert stage.name == "aws"
    # GIVEN the aws stage deployed with a plain `chalice deploy`: no post-deploy step
    deployed = logctl("deploy", runtime, project, "--project", str(project), "--no-post-deploy")
    assert "chalice deploy --stage aws" in deployed.stdout
    [mapping] = runtime.client("lambda").list_event_source_mappings(
        FunctionName="log-pipeline-aws-worker")["EventSourceMappings"]
    assert not mapping.get("FunctionResponseTypes")
    # WHEN a file is uploaded, THEN it is completed, the runtime following that mapping
    upload_completes(runtime, stage, "logs/rehearsal/first.ndjson")
    assert "ReportBatchItemFailures off" in runtime.log()
    # AND a failing message loses none of its batch, without ReportBatchItemFailures
    no_job_is_lost(runtime, stage)

    # GIVEN the mapping then reports batch item failures (the post-deploy step)
    logctl("provision", runtime, project, "--post-deploy")
    time.sleep(REFRESH_SECONDS + 0.5)
    upload_completes(runtime, stage, "logs/rehearsal/second.ndjson")
    assert "ReportBatchItemFailures on" in runtime.log()
    # THEN a failing message loses none of its batch either
    no_job_is_lost(runtime, stage)

    # WHEN the stage is destroyed, uploads and all
    logctl("destroy", runtime, project, "--yes", "--purge", "--project", str(project))
    # THEN the endpoint lists none of its resources
    assert stage_resources(runtime, stage) == []
