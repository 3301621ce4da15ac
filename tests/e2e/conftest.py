"""Start `python -m localruntime` as a user does, on a free port, and drive it with boto3."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import psutil
import pytest
from botocore.config import Config

from chalicelib.adapters import from_item
from logctl.stage import Stage, load_stage

ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT_SECONDS = 90.0
STOP_TIMEOUT_SECONDS = 30.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(condition: Callable[[], Any], timeout: float, what: str,
               interval: float = 0.05) -> Any:
    """Poll `condition` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def runtime_environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "LOCALSTACK_"))}
    env["PYTHONPATH"] = str(ROOT)
    return env


@dataclass
class Runtime:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    project: Path = ROOT

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_records(self, kind: str = "invocation") -> list[dict[str, Any]]:
        records = []
        for line in self.log().splitlines():
            if line.startswith('{"ts"'):
                record = json.loads(line)
                if record.get("type") == kind:
                    records.append(record)
        return records

    def stage(self) -> Stage:
        return load_stage("local", endpoint_url=self.endpoint)

    def client(self, service: str) -> Any:
        return boto3.session.Session(
            aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1",
        ).client(service, endpoint_url=self.endpoint,
                 config=Config(retries={"max_attempts": 3, "mode": "standard"}))

    def handler_pids(self, function: str) -> list[int]:
        """Live warm processes of one function."""
        pids = []
        for child in psutil.Process(self.process.pid).children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                command = child.cmdline()
                if "localruntime.worker" in command and function in command:
                    pids.append(child.pid)
        return pids

    def descendants(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def wait_ready(self) -> None:
        def ready() -> bool:
            if self.process.poll() is not None:
                pytest.fail(f"the runtime exited ({self.process.returncode}):\n{self.log()}")
            return "localruntime: ready on" in self.log()
        wait_until(ready, READY_TIMEOUT_SECONDS, "the runtime to be ready", interval=0.1)

    def stop(self) -> list[int]:
        """SIGTERM, as Ctrl-C or a supervisor would; returns pids still alive afterwards."""
        children = self.descendants()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        _, alive = psutil.wait_procs(children, timeout=5)
        for straggler in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                straggler.kill()
        return [p.pid for p in alive]


def start_runtime(log_dir: Path, *args: str, project: Path = ROOT) -> Runtime:
    port = free_port()
    log_path = log_dir / f"runtime-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "localruntime", "--port", str(port), "--no-status",
             "--project", str(project), *args],
            cwd=ROOT, env=runtime_environment(), stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL)
    runtime = Runtime(process, port, log_path, project)
    try:
        runtime.wait_ready()
    except BaseException:
        runtime.stop()
        raise
    return runtime


@contextlib.contextmanager
def running(log_dir: Path, *args: str, project: Path = ROOT) -> Iterator[Runtime]:
    runtime = start_runtime(log_dir, *args, project=project)
    try:
        yield runtime
    finally:
        runtime.stop()


def get_record(runtime: Runtime, job_id: str) -> dict[str, Any] | None:
    stage = runtime.stage()
    item = runtime.client("dynamodb").get_item(
        TableName=stage.results_table, Key={"job_id": {"S": job_id}},
        ConsistentRead=True).get("Item")
    return from_item(item) if item else None


def wait_for_final(runtime: Runtime, job_id: str, timeout: float = 30.0) -> dict[str, Any]:
    def final() -> dict[str, Any] | None:
        record = get_record(runtime, job_id)
        return record if record and record["status"] in ("completed", "failed") else None
    return wait_until(final, timeout, f"job {job_id} to finish")


def queue_depth(runtime: Runtime, name: str) -> int:
    """Visible, in-flight and delayed messages."""
    sqs = runtime.client("sqs")
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed"])["Attributes"]
    return sum(int(v) for v in attributes.values())
