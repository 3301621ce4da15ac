"""Locust load test: each user uploads log files under `logs/` and waits for their results.

    locust -f loadtest/upload.py                                  # web UI, stage `local`
    locust -f loadtest/upload.py --headless -u 8 -r 8 -t 60s --sizes 1000 --pace 0.375
    LOG_STAGE=aws locust -f loadtest/upload.py --headless -u 4 -t 2m

Run it from the repository root (Locust puts the working directory on sys.path).
Every file is one Locust request of type `E2E` named after its size ("1000 lines"):
its response time is the end-to-end latency, upload start to final result record, so
Locust's tables, CSV files and percentiles are per file size. A `failed` result, a
timeout and an upload error are Locust failures carrying the reason. One raw CSV row per
file, with the result record's timestamps, goes to `--results-csv`
(default `results/raw/load-<stage>-<UTC stamp>.csv`) for `python -m analysis`.

Clients: Locust runs users as gevent greenlets in one process and patches the socket
module, which urllib3 (and so boto3) uses, so boto3 calls yield while they wait. Each
user owns its S3 and DynamoDB clients (own connection pools, so users never queue for a
connection); all clients come from one boto3 Session, whose cached service models and
credentials make creating a user cheap. Payloads are generated once per size before the
first user starts.
"""

from __future__ import annotations

import itertools
import random
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import gevent
from locust import User, events, task
from locust.env import Environment

from loadtest.preflight import TargetError, check_target
from loadtest.samples import (
    RAW_RESULTS_DIR,
    RunContext,
    SampleWriter,
    results_path,
    sample_row,
)
from localruntime.gcpolicy import keep_full_collections_short
from logctl.stage import Stage, StageError, client, load_stage, session_for
from measure.host import update_host_file
from measure.payloads import DEFAULT_SIZES, Payload, build_payloads, parse_sizes
from measure.probe import Backoff, PipelineProbe


class PipelineFailure(Exception):
    """A file that did not reach `completed`: the message is the reason."""


@events.init_command_line_parser.add_listener
def _add_options(parser: Any) -> None:
    group = parser.add_argument_group("log pipeline")
    group.add_argument("--stage", env_var="LOG_STAGE", default="local",
                       help="stage in .chalice/config.json (local or aws)")
    group.add_argument("--sizes", env_var="LOADTEST_SIZES",
                       default=",".join(map(str, DEFAULT_SIZES)),
                       help="file sizes in lines, comma separated")
    group.add_argument("--large", env_var="LOADTEST_LARGE", action="store_true",
                       help="also upload large files (10k and 100k lines)")
    group.add_argument("--gzip-files", env_var="LOADTEST_GZIP", action="store_true",
                       help="upload gzip-compressed files (.ndjson.gz)")
    group.add_argument("--result-timeout", env_var="LOADTEST_RESULT_TIMEOUT", type=float,
                       default=30.0, help="seconds to wait for a file's final result")
    group.add_argument("--results-csv", env_var="LOADTEST_OUTPUT", default="",
                       help="raw CSV, one row per file "
                       "(default results/raw/load-<stage>-<stamp>.csv)")
    group.add_argument("--pace", env_var="LOADTEST_PACE", type=float, default=0.0,
                       help="seconds between the starts of a user's files (0: back to back)")
    group.add_argument("--run-kind", env_var="LOADTEST_KIND", default="load",
                       choices=("load", "sweep"), help="run kind recorded in the CSV")


class _Run:
    """What every user of one test run shares: stage, payloads, session, raw CSV."""

    def __init__(self, options: Any) -> None:
        self.stage: Stage = load_stage(options.stage)
        if options.result_timeout <= 0:
            raise ValueError("--result-timeout must be a positive number of seconds")
        check_target(self.stage)
        sizes = parse_sizes(options.sizes, large=options.large)
        self.payloads: list[Payload] = list(
            build_payloads(sizes, gzip=options.gzip_files).values())
        self.timeout = float(options.result_timeout)
        if options.pace < 0:
            raise ValueError("--pace must be 0 or a positive number of seconds")
        self.pace = float(options.pace)
        self.session = session_for(self.stage)
        self.session.get_credentials()
        self.client_lock = threading.Lock()
        kind = options.run_kind
        path = (Path(options.results_csv) if options.results_csv
                else results_path(RAW_RESULTS_DIR, kind, self.stage.name))
        self.context = RunContext(run_id=path.stem, kind=kind, env=self.stage.name)
        self.writer = SampleWriter(path)
        self.sequence = itertools.count(1)
        self.user_numbers = itertools.count(0)

    def new_probe(self) -> PipelineProbe:
        with self.client_lock:
            s3 = client(self.stage, "s3", self.session)
            ddb = client(self.stage, "dynamodb", self.session)
        return PipelineProbe(s3, ddb, bucket=self.stage.bucket, table=self.stage.results_table,
                             timeout=self.timeout, backoff=Backoff())


_run: _Run | None = None


@events.init.add_listener
def _on_init(environment: Environment, **_: Any) -> None:
    global _run
    if environment.parsed_options is None:
        return
    try:
        _run = _Run(environment.parsed_options)
    except (StageError, TargetError, ValueError, OSError) as exc:
        print(f"loadtest: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    keep_full_collections_short()
    sizes = ", ".join(f"{p.label} ({len(p.body):,} B)" for p in _run.payloads)
    print(f"loadtest: stage {_run.stage.name}, bucket {_run.stage.bucket}, "
          f"files: {sizes}; raw rows -> {_run.writer.path}", flush=True)


@events.quitting.add_listener
def _on_quitting(environment: Environment, **_: Any) -> None:
    if _run is not None:
        wrote = _run.writer.rows_written
        _run.writer.close()
        if wrote:
            update_host_file(_run.writer.path, {"pace_seconds": _run.pace})
        print(f"loadtest: raw results in {_run.writer.path}" if wrote
              else "loadtest: no file was measured", flush=True)


class UploadUser(User):
    """Uploads a file, waits for its result record, repeats: back to back, or one file
    every `--pace` seconds (a file that takes longer is followed at once)."""

    _last_start = 0.0

    def wait_time(self) -> float:
        return max(0.0, self.run.pace - (time.monotonic() - self._last_start))

    def on_start(self) -> None:
        if _run is None:
            raise RuntimeError("loadtest/upload.py runs under the locust command")
        self.run = _run
        self.number = next(_run.user_numbers)
        self.probe = _run.new_probe()
        start = self.number % len(_run.payloads)
        self.payload_cycle = itertools.cycle(_run.payloads[start:] + _run.payloads[:start])
        self.prefix = f"logs/loadtest/{_run.context.run_id}/u{self.number}-{uuid.uuid4().hex[:8]}"
        if _run.pace:
            # Users begin at random points of the pace, so files arrive steadily from the
            # first second rather than all users' first files at once.
            gevent.sleep(random.uniform(0.0, _run.pace))

    @task
    def upload_and_wait(self) -> None:
        self._last_start = time.monotonic()
        payload = next(self.payload_cycle)
        seq = next(self.run.sequence)
        runner = self.environment.runner
        users = runner.target_user_count if runner is not None else 1
        key = f"{self.prefix}/{seq:07d}-{payload.lines}{payload.suffix}"
        m = self.probe.measure(payload, key)
        self.environment.events.request.fire(
            request_type="E2E", name=payload.label, response_time=m.e2e_ms,
            response_length=m.bytes, exception=None if m.ok else PipelineFailure(m.reason),
            context={"job_id": m.job_id, "key": key},
        )
        self.run.writer.write(sample_row(self.run.context, m, label=payload.label,
                                         users=users, seq=seq))
