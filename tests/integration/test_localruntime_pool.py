"""Warm handler processes: cold starts, the Lambda context, errors, timeouts and crashes."""

from __future__ import annotations

import os
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from localruntime.functions.pool import FunctionPool, HandlerProcess, InvocationFailed
from localruntime.log import Console
from localruntime.settings import FunctionSettings

APP = '''
import os, time

def context_echo(event, context):
    return {"request_id": context.aws_request_id, "function_name": context.function_name,
            "memory": context.memory_limit_in_mb,
            "remaining": context.get_remaining_time_in_millis(),
            "arn": context.invoked_function_arn, "event": event, "pid": os.getpid()}

def fail(event, context):
    raise ValueError("bad input")

def sleep(event, context):
    time.sleep(event["seconds"])
    return "slept"

def die(event, context):
    os._exit(3)

def chatty(event, context):
    print("to the log")
    return "quiet"
'''
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    return tmp_path


def environment(project: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(project), str(ROOT)]),
            "AWS_LAMBDA_FUNCTION_NAME": "demo-local-fn"}


@pytest.fixture
def spawn(project: Path, console: Console) -> Iterator:
    started: list[HandlerProcess] = []

    def make(handler: str, timeout: float = 30.0) -> HandlerProcess:
        process = HandlerProcess(FunctionSettings("fn", timeout, 512, 1), f"app.{handler}",
                                 project, environment(project), console)
        started.append(process)
        return process

    yield make
    for process in started:
        process.kill()


def test_first_invocation_is_a_cold_start_and_the_context_is_lambdas(spawn) -> None:
    process = spawn("context_echo", timeout=30)
    first = process.invoke("req-1", {"n": 1})
    second = process.invoke("req-2", {"n": 2})
    assert first.cold_start and first.init_ms is not None and first.init_ms > 0
    assert not second.cold_start and second.init_ms is None
    assert first.ok and first.result["event"] == {"n": 1}
    assert first.result["request_id"] == "req-1"
    assert first.result["function_name"] == "demo-local-fn"
    assert first.result["memory"] == 512
    assert first.result["arn"].endswith(":function:demo-local-fn")
    assert 25_000 < first.result["remaining"] <= 30_000
    assert first.result["pid"] == second.result["pid"] == process.pid


def test_a_handler_error_fails_the_invocation_only(spawn) -> None:
    process = spawn("fail")
    invocation = process.invoke("req", {})
    assert not invocation.ok
    assert invocation.error["errorType"] == "ValueError"
    assert invocation.error["errorMessage"] == "bad input"
    assert process.alive


def test_a_handler_past_its_timeout_is_killed(spawn) -> None:
    process = spawn("sleep", timeout=0.5)
    started = time.monotonic()
    with pytest.raises(InvocationFailed) as failure:
        process.invoke("req", {"seconds": 30})
    assert failure.value.outcome == "timeout"
    assert time.monotonic() - started < 20
    assert not process.alive


def test_a_crashing_handler_is_reported(spawn) -> None:
    process = spawn("die")
    with pytest.raises(InvocationFailed) as failure:
        process.invoke("req", {})
    assert failure.value.outcome == "crash"
    assert "status 3" in str(failure.value)


def test_an_app_that_does_not_import_fails_init(spawn) -> None:
    process = spawn("no_such_handler")
    with pytest.raises(InvocationFailed) as failure:
        process.invoke("req", {})
    assert failure.value.outcome == "init_error"
    assert "AttributeError" in str(failure.value)


def test_handler_output_goes_to_the_log_not_the_protocol(spawn, console: Console) -> None:
    process = spawn("chatty")
    assert process.invoke("req", {}).result == "quiet"
    process.stop()
    assert "to the log" in console.stream.getvalue()


def test_a_pool_replaces_dead_processes_and_retires_cleanly(project: Path,
                                                            console: Console) -> None:
    pool = FunctionPool(FunctionSettings("fn", 30, 128, 2), "app.context_echo", project,
                        environment(project), console, generation=1)
    try:
        assert len(pool.warm()) == 2
        first = pool.acquire(5)
        assert first is not None
        first.kill()
        pool.release(first)
        pids = set()
        for _ in range(4):
            process = pool.acquire(30)
            assert process is not None
            pids.add(process.invoke("req", {}).pid)
            pool.release(process)
        assert first.pid not in pids and len(pool.pids()) == 2
        pool.retire()
        assert pool.acquire(0.1) is None
        assert pool.pids() == []
    finally:
        pool.kill_all()
