"""Handler processes under Lambda's limits: the memory size, and an injected SIGKILL."""

from __future__ import annotations

import json
import os
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from localruntime.faults import FaultPlan, count_faults
from localruntime.functions.pool import HandlerProcess, InvocationFailed
from localruntime.log import Console
from localruntime.settings import FunctionSettings

APP = '''
import time

def allocate(event, context):
    blob = bytearray(event["mb"] * 1024 * 1024)
    for i in range(0, len(blob), 4096):
        blob[i] = 1
    time.sleep(event.get("hold", 0.3))
    return len(blob)

def sleep(event, context):
    time.sleep(event["seconds"])
    return "slept"
'''
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    return tmp_path


@pytest.fixture
def spawn(project: Path, console: Console) -> Iterator:
    started: list[HandlerProcess] = []

    def make(handler: str, memory_mb: int, **kwargs) -> HandlerProcess:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(project), str(ROOT)])}
        process = HandlerProcess(FunctionSettings("fn", 60.0, memory_mb, 1), f"app.{handler}",
                                 project, env, console, **kwargs)
        started.append(process)
        return process

    yield make
    for process in started:
        process.kill()


def test_a_process_over_its_memory_size_is_killed_like_lambdas_oom(spawn) -> None:
    # GIVEN a function with 128 MB WHEN its handler touches 300 MB THEN the process dies
    # and the invocation fails as out of memory, with the memory it reached.
    process = spawn("allocate", 128)
    with pytest.raises(InvocationFailed) as failure:
        process.invoke("req", {"mb": 300, "hold": 30})
    assert failure.value.outcome == "oom"
    assert "signal: killed" in str(failure.value)
    assert failure.value.max_memory_mb is not None and failure.value.max_memory_mb > 128
    assert not process.alive


def test_a_process_within_its_memory_size_runs_and_reports_its_peak(spawn) -> None:
    process = spawn("allocate", 512)
    invocation = process.invoke("req", {"mb": 100, "hold": 0.5})
    assert invocation.ok and invocation.result == 100 * 1024 * 1024
    assert 100 < invocation.max_memory_mb < 512


def test_without_the_limit_the_same_process_survives(spawn) -> None:
    process = spawn("allocate", 128, enforce_memory=False)
    invocation = process.invoke("req", {"mb": 200, "hold": 0.5})
    assert invocation.ok and invocation.max_memory_mb > 128


def test_an_injected_kill_ends_the_invocation_and_is_logged_once(spawn, console) -> None:
    dice = FaultPlan({"kill": 1.0}, seed=3).dice("kill:fn")
    process = spawn("sleep", 512, dice=dice)
    with pytest.raises(InvocationFailed) as failure:
        process.invoke("req", {"seconds": 30})
    assert failure.value.outcome == "crash"
    assert "status -9" in str(failure.value)
    lines = console.stream.getvalue().splitlines()
    assert count_faults(lines) == {"kill": 1}
    fault = json.loads(next(line for line in lines if '"fault"' in line))
    assert fault["pid"] == process.pid and fault["after_ms"] >= 0
