"""Locust: users that stream log events into the ingest stream, beside the upload users.

    locust -f loadtest/mixed.py --headless -u 10 -t 60s --stream-users 2   # both kinds
    make loadtest STREAM_USERS=2                                            # the same, locally

A stream user puts `--stream-lines` events at a time (packed into Kinesis records as
`logctl send` packs them, refused records put again), then waits `--stream-pace` seconds.
Each call is one Locust request of type `PutRecords` named after its size, so Locust's
tables show how long puts take while uploads run; the upload users' rows show what the
streamed objects cost the files' end-to-end latency.
"""

from __future__ import annotations

import itertools
import json
import sys
import threading
import time
from typing import Any

from locust import User, events, task
from locust.env import Environment

from chalicelib.core.stream import numbered_lines, pack, put_requests
from chalicelib.ingest import EventProducer, random_partition_key
from loadtest.preflight import TargetError, check_target
from logctl.stage import StageError, client, load_stage, session_for

LEVELS = ("INFO", "INFO", "INFO", "WARN", "ERROR", "DEBUG")


class StreamFailure(Exception):
    """Records Kinesis refused after every retry."""


@events.init_command_line_parser.add_listener
def _add_options(parser: Any) -> None:
    group = parser.add_argument_group("streamed events")
    group.add_argument("--stream-users", env_var="LOADTEST_STREAM_USERS", type=int, default=1,
                       help="users that stream events (the others upload files)")
    group.add_argument("--stream-lines", env_var="LOADTEST_STREAM_LINES", type=int,
                       default=1000, help="events per put")
    group.add_argument("--stream-pace", env_var="LOADTEST_STREAM_PACE", type=float,
                       default=0.1, help="seconds between a stream user's puts")


def event_body(lines: int, start: int) -> bytes:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return b"".join(json.dumps({
        "timestamp": stamp, "level": LEVELS[i % len(LEVELS)],
        "endpoint": f"/api/v1/items/{i % 50}", "response_time_ms": 5 + (i * 37) % 900,
        "status_code": 500 if i % 23 == 0 else 200, "user_id": f"stream-{i % 97}",
    }, separators=(",", ":")).encode() + b"\n" for i in range(start, start + lines))


class _Stream:
    def __init__(self, options: Any) -> None:
        self.stage = load_stage(getattr(options, "stage", "local"))
        check_target(self.stage)
        if options.stream_lines < 1 or options.stream_pace < 0:
            raise ValueError("--stream-lines must be at least 1 and --stream-pace not negative")
        if options.stream_users < 1:
            # Locust reads a fixed_count of 0 as "not fixed": without stream users, run
            # loadtest/upload.py instead.
            raise ValueError("--stream-users must be at least 1 (no stream users: run "
                             "loadtest/upload.py)")
        self.lines = options.stream_lines
        self.pace = options.stream_pace
        self.session = session_for(self.stage)
        self.lock = threading.Lock()
        self.counter = itertools.count(0, self.lines)

    def producer(self) -> EventProducer:
        with self.lock:
            return EventProducer(client(self.stage, "kinesis", self.session),
                                 self.stage.ingest_stream)


_stream: _Stream | None = None


@events.init.add_listener
def _on_init(environment: Environment, **_: Any) -> None:
    global _stream
    options = environment.parsed_options
    if options is None:
        return
    try:
        _stream = _Stream(options)
    except (StageError, TargetError, ValueError, OSError) as exc:
        print(f"loadtest: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    StreamUser.fixed_count = options.stream_users
    print(f"loadtest: {StreamUser.fixed_count} stream user(s), {_stream.lines} events a put "
          f"every {_stream.pace:g} s, into {_stream.stage.ingest_stream}", flush=True)


class StreamUser(User):
    fixed_count = 1

    def wait_time(self) -> float:
        return self.run.pace

    def on_start(self) -> None:
        if _stream is None:
            raise RuntimeError("loadtest/stream.py runs under the locust command")
        self.run = _stream
        self.producer = _stream.producer()

    @task
    def put_events(self) -> None:
        body = event_body(self.run.lines, next(self.run.counter))
        started = time.perf_counter()
        failed, error = 0, None
        for request in put_requests(pack(numbered_lines([body]), random_partition_key)):
            outcome = self.producer.put(request)
            failed += sum(r.lines for r in outcome.failed)
            error = outcome.error or error
        self.environment.events.request.fire(
            request_type="PutRecords", name=f"{self.run.lines} events",
            response_time=(time.perf_counter() - started) * 1000, response_length=len(body),
            exception=StreamFailure(f"{failed} events refused ({error})") if failed else None,
            context={})
