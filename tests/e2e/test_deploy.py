"""`make deploy-local` into the running runtime, which keeps running the handlers itself;
`make destroy-local` takes everything away again."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from chalicelib.core.jobs import job_id_for
from tests.e2e.conftest import (
    ROOT,
    Runtime,
    project_copy,
    running,
    runtime_environment,
    stage_resources,
    wait_for_final,
    wait_until,
)

pytestmark = pytest.mark.e2e

DEPLOY_TIMEOUT_SECONDS = 600


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return project_copy(tmp_path_factory.mktemp("project"))


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory, project: Path) -> Iterator[Runtime]:
    with running(tmp_path_factory.mktemp("runtime"), "--no-reload", project=project) as rt:
        yield rt


def logctl(command: str, runtime: Runtime, project: Path,
           *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", f"logctl.{command}", "--stage", "local", "--project",
         str(project), "--port", str(runtime.port), *args],
        cwd=ROOT, env=runtime_environment(), capture_output=True, text=True,
        timeout=DEPLOY_TIMEOUT_SECONDS, stdin=subprocess.DEVNULL)


def deploy(runtime: Runtime, project: Path) -> subprocess.CompletedProcess[str]:
    return logctl("deploy", runtime, project)


def test_deploy_and_redeploy_succeed_and_files_are_processed_once(runtime: Runtime,
                                                                   project: Path) -> None:
    # WHEN the app is deployed with chalice-local, twice (create, then update)
    for attempt in range(2):
        done = deploy(runtime, project)
        assert done.returncode == 0, f"deploy {attempt + 1}:\n{done.stdout}\n{done.stderr}"
    assert "Resources deployed" in done.stdout
    assert "ReportBatchItemFailures already enabled" in done.stdout
    # THEN the functions, the REST API, the SQS mapping (with partial batch responses) and
    # the bucket's Lambda notification exist next to the runtime's own queue notification
    stage = runtime.stage()
    functions = {f["FunctionName"] for f in runtime.client("lambda").list_functions()["Functions"]}
    assert functions == {"log-pipeline-local-trigger", "log-pipeline-local-worker",
                         "log-pipeline-local-ingest", "log-pipeline-local-rollups",
                         "log-pipeline-local"}
    apis = runtime.client("apigateway").get_rest_apis()["items"]
    assert [api["name"] for api in apis] == ["log-pipeline"]
    resources = runtime.client("apigateway").get_resources(restApiId=apis[0]["id"])["items"]
    assert {"/jobs", "/jobs/{job_id}", "/stats", "/health", "/uploads"} <= {
        r["path"] for r in resources}
    mappings = runtime.client("lambda").list_event_source_mappings(
        FunctionName="log-pipeline-local-worker")["EventSourceMappings"]
    assert [m["FunctionResponseTypes"] for m in mappings] == [["ReportBatchItemFailures"]]
    [stream_mapping] = runtime.client("lambda").list_event_source_mappings(
        FunctionName="log-pipeline-local-ingest")["EventSourceMappings"]
    assert stream_mapping["EventSourceArn"].endswith(f":stream/{stage.ingest_stream}")
    assert (stream_mapping["StartingPosition"], stream_mapping["BatchSize"]) == (
        "TRIM_HORIZON", 10000)
    notifications = runtime.client("s3").get_bucket_notification_configuration(
        Bucket=stage.bucket)
    assert len(notifications["LambdaFunctionConfigurations"]) == 1
    assert [q["Id"] for q in notifications["QueueConfigurations"]] == ["localruntime-trigger"]
    # AND an upload is still processed, by the runtime, exactly once
    key = "logs/after-deploy.ndjson"
    body = (b'{"timestamp":"2024-05-01T12:00:00Z","level":"INFO","endpoint":"/a",'
            b'"response_time_ms":5,"status_code":200,"user_id":"u"}\n')
    response = runtime.client("s3").put_object(Bucket=stage.bucket, Key=key, Body=body)
    job_id = job_id_for(stage.bucket, key, etag=response["ETag"],
                        version_id=response.get("VersionId"))
    record = wait_for_final(runtime, job_id)
    assert record["status"] == "completed" and record["line_count"] == 1
    assert record["attempts"] == 1
    def done_lines() -> list[str]:  # the handler's log line may trail the record
        return [line for line in runtime.log().splitlines()
                if '"job_done"' in line and job_id in line]

    assert len(wait_until(done_lines, 30, "the worker's log line for the job")) == 1


def test_destroy_refuses_uploads_then_purges_everything_and_is_idempotent(
        runtime: Runtime, project: Path) -> None:
    # GIVEN a deployed stage whose bucket holds an upload
    assert deploy(runtime, project).returncode == 0
    stage = runtime.stage()
    runtime.client("s3").put_object(Bucket=stage.bucket, Key="logs/kept.ndjson", Body=b"\n")
    # WHEN it is destroyed without --purge, THEN nothing is deleted
    refused = logctl("destroy", runtime, project, "--yes")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "--purge" in refused.stderr and "nothing was deleted" in refused.stderr
    # AND without --yes and no terminal to ask in, nothing is deleted either
    unconfirmed = logctl("destroy", runtime, project, "--purge")
    assert unconfirmed.returncode == 2 and "not confirmed" in unconfirmed.stderr
    assert len(stage_resources(runtime, stage)) >= 15
    # WHEN it is destroyed with --yes --purge
    done = logctl("destroy", runtime, project, "--yes", "--purge")
    assert done.returncode == 0, done.stdout + done.stderr
    # THEN the endpoint lists none of the stage's resources, and Chalice's state is gone
    assert stage_resources(runtime, stage) == []
    state = json.loads((project / ".chalice" / "deployed" / "local.json").read_text())
    assert state["resources"] == []
    # AND a second run finds nothing to do
    again = logctl("destroy", runtime, project, "--yes", "--purge")
    assert again.returncode == 0 and "nothing to delete" in again.stdout
