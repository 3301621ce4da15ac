"""Carry out a soak plan against a running stage, and wait until the pipeline is quiet."""

from __future__ import annotations

import io
import random
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from chalicelib.ingest import EventProducer
from localruntime.sources.wiring import s3_queue_name
from logctl.cli import LogctlError
from logctl.send import send
from logctl.stage import Stage
from soak.workload import FileSpec, Plan, Step

MAX_BACKLOG = 300
UPLOAD_THREADS = 4
REUPLOAD_AFTER_SECONDS = 8.0
QUIET_CHECKS = 3
CHECK_SECONDS = 3.0
TRIGGER_FUNCTION = "trigger"


@dataclass(frozen=True)
class Version:
    """An object version the soak created and what it must end as.

    It is known by its version id in a versioned bucket (each upload is a version of its
    own, even of the same bytes), else by its ETag.
    """

    key: str
    etag: str
    spec: FileSpec
    action: str
    allowed_failures: frozenset[str]
    record: bool
    version_id: str | None = None

    @property
    def ident(self) -> tuple[str, str]:
        return self.key, self.version_id or self.etag


class Driver:
    def __init__(self, stage: Stage, s3: Any, sqs: Any, log: Callable[[str], None],
                 kinesis: Any = None) -> None:
        self.stage = stage
        self.s3 = s3
        self.sqs = sqs
        self.log = log
        self.versions: list[Version] = []
        self.garbage_sent = 0
        self.uploads = 0
        # Lines the ingest stream accepted, and lines it refused after the producer's retries.
        self.stream_lines = 0
        self.stream_unsent = 0
        self._producer = (EventProducer(kinesis, stage.ingest_stream)
                          if kinesis is not None else None)
        self._lock = threading.Lock()
        self._timers: list[threading.Timer] = []
        self._errors: list[str] = []
        self._jobs_url = sqs.get_queue_url(QueueName=stage.jobs_queue)["QueueUrl"]

    # ---- one step -----------------------------------------------------------------------

    def _put(self, key: str, body: bytes) -> tuple[str, str | None]:
        """The new object's ETag and version id (None in an unversioned bucket)."""
        response = self.s3.put_object(Bucket=self.stage.bucket, Key=key, Body=body)
        with self._lock:
            self.uploads += 1
        version_id = response.get("VersionId")
        return str(response["ETag"]).strip('"'), None if version_id == "null" else version_id

    def _version(self, step: Step, key: str, uploaded: tuple[str, str | None], spec: FileSpec,
                 action: str, allowed: frozenset[str] | None = None) -> None:
        etag, version_id = uploaded
        version = Version(key, etag, spec, action,
                          step.allowed_failures if allowed is None else allowed, step.record,
                          version_id)
        with self._lock:
            self.versions.append(version)

    def _later(self, seconds: float, action: Callable[[], None]) -> None:
        def guarded() -> None:
            try:
                action()
            except Exception as exc:  # noqa: BLE001 - reported with the run
                self._errors.append(f"{type(exc).__name__}: {exc}")
        timer = threading.Timer(seconds, guarded)
        timer.daemon = True
        with self._lock:
            self._timers.append(timer)
        timer.start()

    def _again(self, step: Step, body: bytes, action: str) -> None:
        """The same bytes once more: in a versioned bucket, a version of its own."""
        assert step.spec is not None
        uploaded = self._put(step.key, body)
        if uploaded[1] is not None:
            self._version(step, step.key, uploaded, step.spec, action)

    def _overwrite(self, step: Step) -> None:
        """The key's second version, uploaded while the first one's job may be running."""
        assert step.spec2 is not None
        uploaded = self._put(step.key, step.spec2.content())
        self._version(step, step.key, uploaded, step.spec2, "overwrite", frozenset())

    def _stream(self, spec: FileSpec) -> None:
        if self._producer is None:
            raise RuntimeError("the plan puts events into the ingest stream: the driver "
                               "needs a Kinesis client")
        try:
            sent, unsent = send(io.BytesIO(spec.content()), self._producer)
        except LogctlError as exc:
            raise RuntimeError(f"putting events into the ingest stream: {exc}") from exc
        with self._lock:
            self.stream_lines += sent.lines
            self.stream_unsent += sum(record.lines for record in unsent.failed)

    def run_step(self, step: Step, rng: random.Random) -> None:
        if step.action == "stream":
            assert step.spec is not None
            self._stream(step.spec)
            return
        if step.action == "garbage":
            self.sqs.send_message(QueueUrl=self._jobs_url, MessageBody=step.body)
            with self._lock:
                self.garbage_sent += 1
            return
        assert step.spec is not None
        body = step.spec.content()
        uploaded = self._put(step.key, body)
        if step.action == "upload":
            self._version(step, step.key, uploaded, step.spec, "upload")
        elif step.action == "duplicate":
            self._version(step, step.key, uploaded, step.spec, "duplicate")
            self._later(rng.uniform(0.0, 3.0), lambda: self._again(step, body, "duplicate"))
        elif step.action == "overwrite":
            self._version(step, step.key, uploaded, step.spec, "overwritten")
            self._later(rng.uniform(0.0, 1.5), lambda: self._overwrite(step))
        elif step.action == "delete":
            self.s3.delete_object(Bucket=self.stage.bucket, Key=step.key)
            self._version(step, step.key, uploaded, step.spec, "deleted")
        elif step.action == "reupload":
            self.s3.delete_object(Bucket=self.stage.bucket, Key=step.key)
            self._version(step, step.key, uploaded, step.spec, "reuploaded")
            self._later(REUPLOAD_AFTER_SECONDS, lambda: self._again(step, body, "reuploaded"))
        else:
            raise ValueError(f"unknown action {step.action!r}")

    # ---- the whole plan -----------------------------------------------------------------

    def backlog(self) -> int:
        return sum(sum(queue_depth(self.sqs, name).values()) for name in
                   (self.stage.jobs_queue, s3_queue_name(TRIGGER_FUNCTION)))

    def run(self, plan: Plan, seed: int) -> None:
        rng = random.Random(seed)
        started = time.monotonic()
        with ThreadPoolExecutor(UPLOAD_THREADS, thread_name_prefix="soak-upload") as pool:
            pending = []
            for i, step in enumerate(plan.steps):
                if i % 50 == 0:
                    while self.backlog() > MAX_BACKLOG:
                        time.sleep(1.0)
                    for done in pending:
                        done.result()
                    pending = []
                if i % 500 == 0 and i:
                    self.log(f"soak: {i}/{len(plan.steps)} steps, "
                             f"{time.monotonic() - started:.0f} s")
                pending.append(pool.submit(self.run_step, step, random.Random(rng.random())))
            for done in pending:
                done.result()
        for timer in list(self._timers):
            timer.join()
        if self._errors:
            raise RuntimeError(f"{len(self._errors)} delayed uploads failed: {self._errors[:3]}")

    def wait_quiet(self, timeout: float) -> bool:
        """Until every queue the pipeline feeds is empty (visible, in flight and delayed)
        for QUIET_CHECKS checks in a row; False after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        quiet = 0
        last_report = 0.0
        while time.monotonic() < deadline:
            depth = self.backlog()
            quiet = quiet + 1 if depth == 0 else 0
            if quiet >= QUIET_CHECKS:
                return True
            if time.monotonic() - last_report > 30:
                self.log(f"soak: waiting for the pipeline, {depth} message(s) queued")
                last_report = time.monotonic()
            time.sleep(CHECK_SECONDS)
        return False


def queue_depth(sqs: Any, name: str) -> dict[str, int]:
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed"])["Attributes"]
    return {k: int(v) for k, v in attributes.items()}


def drain_messages(sqs: Any, name: str) -> list[str]:
    """The bodies of every message in a queue (received and hidden, not deleted)."""
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    bodies: list[str] = []
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                       VisibilityTimeout=3600, WaitTimeSeconds=0
                                       ).get("Messages", [])
        if not messages:
            return bodies
        bodies += [m.get("Body", "") for m in messages]


def stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
