"""Start `python -m localruntime` as a user does, on a free port, and drive it with boto3."""

from __future__ import annotations

import contextlib
import functools
import json
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import psutil
import pytest
from botocore.config import Config

from chalicelib.adapters import from_item
from chalicelib.core.schema import FINAL_STATUSES
from localruntime.background import (
    PROJECT_ROOT,
    BackgroundRuntime,
    BackgroundRuntimeError,
    clean_environment,
)
from logctl.stage import Stage, load_stage

ROOT = PROJECT_ROOT


def wait_until(condition: Callable[[], Any], timeout: float, what: str,
               interval: float = 0.05) -> Any:
    """Poll `condition` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what} "
                        f"(last seen: {value!r:.300})")
        time.sleep(interval)


def runtime_environment() -> dict[str, str]:
    return clean_environment()


class Runtime(BackgroundRuntime):
    """A runtime under test, with ways to look at its log, its clients and its processes."""

    def log_records(self, kind: str = "invocation") -> list[dict[str, Any]]:
        records = []
        for line in self.log().splitlines():
            if line.startswith('{"ts"'):
                record = json.loads(line)
                if record.get("type") == kind:
                    records.append(record)
        return records

    def __init__(self, log_path: Path, *args: str, project: Path = ROOT) -> None:
        super().__init__(log_path, *args, project=project)
        self.stage_name = args[args.index("--stage") + 1] if "--stage" in args else "local"

    def stage(self) -> Stage:
        return load_stage(self.stage_name, endpoint_url=self.endpoint)

    @functools.cache  # noqa: B019 - one client per service for the runtime's short life
    def client(self, service: str) -> Any:
        return boto3.session.Session(
            aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1",
        ).client(service, endpoint_url=self.endpoint,
                 config=Config(retries={"max_attempts": 3, "mode": "standard"}))

    def descendants(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def handler_pids(self, function: str) -> list[int]:
        """Live warm processes of one function."""
        pids = []
        for child in self.descendants():
            with contextlib.suppress(psutil.NoSuchProcess):
                command = child.cmdline()
                if "localruntime.functions.worker" in command and function in command:
                    pids.append(child.pid)
        return pids

    def stop_all(self) -> list[int]:
        """Stop the runtime; returns the pids of its processes still alive afterwards
        (which are then killed)."""
        children = self.descendants()
        self.stop()
        _, alive = psutil.wait_procs(children, timeout=5)
        for straggler in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                straggler.kill()
        return [p.pid for p in alive]


@contextlib.contextmanager
def running(log_dir: Path, *args: str, project: Path = ROOT) -> Iterator[Runtime]:
    runtime = Runtime(log_dir / "runtime.log", *args, project=project)
    try:
        runtime.wait_ready()
    except BackgroundRuntimeError as exc:
        runtime.stop_all()
        pytest.fail(str(exc))
    try:
        yield runtime
    finally:
        runtime.stop_all()


def get_record(runtime: Runtime, job_id: str) -> dict[str, Any] | None:
    stage = runtime.stage()
    item = runtime.client("dynamodb").get_item(
        TableName=stage.results_table, Key={"job_id": {"S": job_id}},
        ConsistentRead=True).get("Item")
    return from_item(item) if item else None


def wait_for_final(runtime: Runtime, job_id: str, timeout: float = 30.0) -> dict[str, Any]:
    def final() -> dict[str, Any] | None:
        record = get_record(runtime, job_id)
        return record if record and record["status"] in FINAL_STATUSES else None
    return wait_until(final, timeout, f"job {job_id} to finish")


def queue_depth(runtime: Runtime, name: str) -> int:
    """Visible, in-flight and delayed messages."""
    sqs = runtime.client("sqs")
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed"])["Attributes"]
    return sum(int(v) for v in attributes.values())


def stage_resources(runtime: Runtime, stage: Stage) -> list[str]:
    """Every resource of the stage the endpoint lists, by kind and name."""
    prefix = f"log-pipeline-{stage.name}"
    found = [f"bucket {b['Name']}" for b in runtime.client("s3").list_buckets()["Buckets"]
             if b["Name"] == stage.bucket]
    found += [f"queue {url}" for url in runtime.client("sqs").list_queues().get("QueueUrls", [])
              if url.rsplit("/", 1)[-1] in (stage.jobs_queue, stage.dead_letter_queue)]
    found += [f"table {t}" for t in runtime.client("dynamodb").list_tables()["TableNames"]
              if t in (stage.results_table, stage.stats_table)]
    found += [f"stream {s}" for s in runtime.client("kinesis").list_streams()["StreamNames"]
              if s == stage.ingest_stream]
    found += [f"function {f['FunctionName']}" for f in
              runtime.client("lambda").list_functions()["Functions"]
              if f["FunctionName"].startswith(prefix)]
    found += [f"mapping {m['UUID']}" for m in
              runtime.client("lambda").list_event_source_mappings()["EventSourceMappings"]
              if f":function:{prefix}-" in m["FunctionArn"]]
    found += [f"role {r['RoleName']}" for r in runtime.client("iam").list_roles()["Roles"]
              if r["RoleName"].startswith(prefix)]
    found += [f"topic {t['TopicArn']}" for t in runtime.client("sns").list_topics()["Topics"]
              if t["TopicArn"].endswith(f":{prefix}-alerts")]
    found += [f"alarm {a['AlarmName']}" for a in
              runtime.client("cloudwatch").describe_alarms()["MetricAlarms"]
              if a["AlarmName"].startswith(prefix)]
    found += [f"rest api {api['id']}" for api in
              runtime.client("apigateway").get_rest_apis()["items"]
              if api["name"] == stage.app_name]
    found += [f"log group {g['logGroupName']}" for g in runtime.client("logs").describe_log_groups(
        logGroupNamePrefix=f"/aws/lambda/{prefix}-")["logGroups"]]
    return found


def project_copy(directory: Path) -> Path:
    """A copy of the app to deploy, so deployment state stays out of the repository."""
    for name in ("app.py", "requirements.txt"):
        shutil.copy(ROOT / name, directory / name)
    shutil.copytree(ROOT / "chalicelib", directory / "chalicelib",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (directory / ".chalice").mkdir()
    for config in (ROOT / ".chalice").glob("*.json"):
        shutil.copy(config, directory / ".chalice" / config.name)
    return directory
