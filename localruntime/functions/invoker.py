"""Invocations: take a warm process from the function's current pool, run, log one line."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from localruntime.functions.pool import FunctionPool, Invocation, InvocationFailed
from localruntime.log import Console

ACQUIRE_POLL_SECONDS = 0.5


@dataclass(frozen=True)
class Outcome:
    """`ok`: the handler returned; `failed_items`: what its response reported as failed
    (None: the whole batch failed)."""

    ok: bool
    result: Any
    outcome: str
    request_id: str
    failed_items: list[str] | None = field(default_factory=list)


Judge = Callable[[Any], list[str] | None]


class Invoker:
    """Routes invocations to the newest pool of each function; counts what is in flight."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._pools: dict[str, FunctionPool] = {}
        self._lock = threading.Lock()
        self._in_flight = 0
        self._idle = threading.Condition(self._lock)
        self.totals = {"invocations": 0, "errors": 0, "cold_starts": 0}

    def set_pool(self, function: str, pool: FunctionPool) -> FunctionPool | None:
        """Install a new pool; returns the one it replaces (for the caller to retire)."""
        with self._lock:
            previous = self._pools.get(function)
            self._pools[function] = pool
        return previous

    def remove_pool(self, function: str) -> FunctionPool | None:
        with self._lock:
            return self._pools.pop(function, None)

    def pools(self) -> dict[str, FunctionPool]:
        with self._lock:
            return dict(self._pools)

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def wait_idle(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    def _acquire(self, function: str) -> tuple[FunctionPool, Any]:
        while True:
            with self._lock:
                pool = self._pools.get(function)
            if pool is None:
                raise InvocationFailed("no_function", f"function {function!r} is not loaded")
            process = pool.acquire(ACQUIRE_POLL_SECONDS)
            if process is not None:
                return pool, process

    def _run(self, function: str, request_id: str, event: dict[str, Any],
             fields: dict[str, Any]) -> Invocation:
        pool, process = self._acquire(function)
        fields["pid"] = process.pid
        init_failed = False
        try:
            return process.invoke(request_id, event)
        except InvocationFailed as failure:
            init_failed = failure.outcome == "init_error"
            raise
        finally:
            pool.release(process, init_failed=init_failed)

    def invoke(self, function: str, event: dict[str, Any], *, batch_size: int,
               source: str, judge: Judge | None = None) -> Outcome:
        """Run one invocation and log it; `judge` reads a result's failed batch items."""
        request_id = str(uuid.uuid4())
        fields: dict[str, Any] = {}
        cold = False
        with self._lock:
            self._in_flight += 1
        started = time.monotonic()
        try:
            invocation = self._run(function, request_id, event, fields)
        except InvocationFailed as failure:
            fields["error"] = str(failure)
            if failure.max_memory_mb is not None:
                fields["max_memory_used_mb"] = failure.max_memory_mb
            outcome = Outcome(False, None, failure.outcome, request_id, None)
            duration_ms = (time.monotonic() - started) * 1000
        else:
            outcome = self._judge(invocation, request_id, judge, fields)
            duration_ms = invocation.duration_ms
            fields["max_memory_used_mb"] = invocation.max_memory_mb
            cold = invocation.cold_start
            if cold:
                fields["init_ms"] = invocation.init_ms
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()
        self.totals["invocations"] += 1
        self.totals["errors"] += 0 if outcome.outcome in ("ok", "partial") else 1
        self.totals["cold_starts"] += 1 if cold else 0
        self.console.record(
            type="invocation", function=function, request_id=request_id, source=source,
            duration_ms=round(duration_ms, 3), outcome=outcome.outcome, cold_start=cold,
            batch_size=batch_size, **fields)
        return outcome

    @staticmethod
    def _judge(invocation: Invocation, request_id: str, judge: Judge | None,
               fields: dict[str, Any]) -> Outcome:
        if not invocation.ok:
            error = invocation.error or {}
            fields["error"] = f"{error.get('errorType')}: {error.get('errorMessage')}"
            return Outcome(False, None, "error", request_id, None)
        failed = judge(invocation.result) if judge else []
        if failed is None:
            fields["error"] = f"unusable batch response: {invocation.result!r:.300}"
            return Outcome(True, invocation.result, "invalid_response", request_id, None)
        if failed:
            fields["failed_items"] = len(failed)
        return Outcome(True, invocation.result, "partial" if failed else "ok", request_id, failed)
