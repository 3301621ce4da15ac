"""Warm handler processes, a bounded number per function, like reserved concurrency.

Each process imports the app once (the cold start, timed) and then serves invocations
over a pipe. An invocation that outlives the function's timeout has its process killed
by pid and counts as failed; so does one whose process goes over the function's memory
size (`localruntime.functions.memory`), or meets an injected SIGKILL (`localruntime.faults`). A dead
process is replaced.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localruntime.children import spawn
from localruntime.faults import KILL_MEAN_SECONDS, Dice, FaultSwitch
from localruntime.functions.memory import SAMPLE_SECONDS, MemoryExceeded, MemoryWatch
from localruntime.log import Console, utc_now
from localruntime.settings import FunctionSettings

INIT_TIMEOUT_SECONDS = 30.0
STOP_GRACE_SECONDS = 5.0
MAX_RESPAWN_DELAY_SECONDS = 5.0


class InvocationFailed(Exception):
    """The invocation produced no answer: timeout, crash, or a failed init."""

    def __init__(self, outcome: str, message: str, max_memory_mb: int | None = None) -> None:
        super().__init__(message)
        self.outcome = outcome
        self.max_memory_mb = max_memory_mb


@dataclass(frozen=True)
class Invocation:
    ok: bool
    result: Any
    error: dict[str, Any] | None
    duration_ms: float
    cold_start: bool
    init_ms: float | None
    pid: int
    max_memory_mb: int


class HandlerProcess:
    """One warm process running one function's handler."""

    def __init__(self, function: FunctionSettings, handler: str, project: Path,
                 env: dict[str, str], console: Console, *, dice: Dice | None = None,
                 enforce_memory: bool = True) -> None:
        self.function = function
        self.console = console
        self.dice = dice
        self._kill_sent = False
        self.process = spawn(
            [sys.executable, "-m", "localruntime.functions.worker", "--function", function.name,
             "--handler", handler, "--timeout", str(function.timeout_seconds),
             "--memory", str(function.memory_mb)],
            cwd=project, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, start_new_session=True)
        self.pid = self.process.pid
        self.memory = MemoryWatch(self.pid, function.memory_mb, enforce_memory)
        self._buffer = b""
        self.init_ms: float | None = None
        self.invocations = 0
        self._log_thread = threading.Thread(target=self._forward_log, args=(console,),
                                            daemon=True, name=f"log-{function.name}-{self.pid}")
        self._log_thread.start()

    def _forward_log(self, console: Console) -> None:
        stderr = self.process.stderr
        assert stderr is not None
        with stderr:
            for line in stderr:
                console.raw(line.decode("utf-8", "replace").rstrip("\n"))

    def _read_line(self, deadline: float,
                   tick: Callable[[], None] | None = None) -> dict[str, Any] | None:
        """The next protocol line, or None on timeout; raises EOFError if the process died.
        `tick` runs every SAMPLE_SECONDS while waiting."""
        stdout = self.process.stdout
        assert stdout is not None
        fd = stdout.fileno()
        while b"\n" not in self._buffer:
            if tick is not None:
                tick()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            wait = min(remaining, SAMPLE_SECONDS) if tick is not None else remaining
            readable, _, _ = select.select([fd], [], [], wait)
            if not readable:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                raise EOFError
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return json.loads(line)

    def ensure_ready(self) -> None:
        if self.init_ms is not None:
            return
        try:
            hello = self._read_line(time.monotonic() + INIT_TIMEOUT_SECONDS)
        except EOFError:
            self._reap()
            raise InvocationFailed("init_error", f"{self.function.name}: the handler process "
                                   f"exited during init (status {self.process.returncode})"
                                   ) from None
        if hello is None:
            self.kill()
            raise InvocationFailed("init_error", f"{self.function.name}: init took longer "
                                   f"than {INIT_TIMEOUT_SECONDS:g} s")
        if not hello.get("ready"):
            self.kill()
            error = hello.get("error", {})
            raise InvocationFailed("init_error", f"{self.function.name}: init failed: "
                                   f"{error.get('errorType')}: {error.get('errorMessage')}")
        self.init_ms = float(hello["init_ms"])

    def invoke(self, request_id: str, event: dict[str, Any]) -> Invocation:
        self.ensure_ready()
        cold = self.invocations == 0
        self.invocations += 1
        stdin = self.process.stdin
        assert stdin is not None
        started = time.monotonic()
        self.memory.start()
        kill_after = (self.dice.exponential(KILL_MEAN_SECONDS)
                      if self.dice is not None and self.dice.roll("kill") else None)
        invoked_at = utc_now() if kill_after is not None else ""
        try:
            stdin.write(json.dumps({"request_id": request_id, "event": event}).encode() + b"\n")
            stdin.flush()
            reply = self._read_line(started + self.function.timeout_seconds,
                                    tick=lambda: self._watch(started, kill_after, invoked_at))
        except MemoryExceeded as exc:
            raise InvocationFailed("oom", str(exc), exc.used_mb) from None
        except (EOFError, OSError):
            self._reap()
            raise InvocationFailed("crash", f"the handler process {self.pid} exited "
                                   f"(status {self.process.returncode}) during the invocation",
                                   self.memory.peak_mb) from None
        duration_ms = (time.monotonic() - started) * 1000
        if reply is None:
            self.kill()
            raise InvocationFailed("timeout", f"Task timed out after "
                                   f"{self.function.timeout_seconds:g} seconds",
                                   self.memory.peak_mb)
        self.memory.sample()
        return Invocation(ok=bool(reply.get("ok")), result=reply.get("result"),
                          error=reply.get("error"), duration_ms=duration_ms, cold_start=cold,
                          init_ms=self.init_ms if cold else None, pid=self.pid,
                          max_memory_mb=self.memory.peak_mb)

    def _watch(self, started: float, kill_after: float | None, invoked_at: str) -> None:
        """While an invocation runs: the memory limit, and an injected SIGKILL when due."""
        if self.memory.over_limit():
            used = self.memory.peak_mb
            self.kill()
            raise MemoryExceeded(used, self.function.memory_mb)
        elapsed = time.monotonic() - started
        if kill_after is not None and elapsed >= kill_after and not self._kill_sent:
            self._kill_sent = True
            self.console.record(type="fault", kind="kill", function=self.function.name,
                                pid=self.pid, invoked_at=invoked_at,
                                after_ms=round(elapsed * 1000, 1))
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def _reap(self, grace: float = 1.0) -> None:
        """A process that closed its pipe is exiting: collect its status, or kill it."""
        try:
            self.process.wait(grace)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """Close stdin (the process exits after its current invocation); kill after `grace`."""
        if self.process.stdin is not None and not self.process.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self.process.stdin.close()
        try:
            self.process.wait(grace)
        except subprocess.TimeoutExpired:
            self.kill()
        self._log_thread.join(grace)  # the process's last lines reach the log before it is gone
        if self.process.stdout is not None:
            self.process.stdout.close()


class FunctionPool:
    """Up to `concurrency` warm processes for one function; one generation of the code."""

    def __init__(self, function: FunctionSettings, handler: str, project: Path,
                 env: dict[str, str], console: Console, generation: int, *,
                 faults: FaultSwitch | None = None, enforce_memory: bool = True) -> None:
        self.function = function
        self.dice = (faults.dice(f"kill:{function.name}:{generation}")
                     if faults is not None else None)
        self.enforce_memory = enforce_memory
        self.handler = handler
        self.project = project
        self.env = env
        self.console = console
        self.generation = generation
        self._idle: queue.Queue[HandlerProcess] = queue.Queue()
        self._lock = threading.Lock()
        self._members: set[HandlerProcess] = set()
        self._retired = False
        self._init_failures = 0
        self.init_error: str | None = None
        for _ in range(function.concurrency):
            self._spawn()

    def _spawn(self) -> None:
        process = HandlerProcess(self.function, self.handler, self.project, self.env,
                                 self.console, dice=self.dice,
                                 enforce_memory=self.enforce_memory)
        with self._lock:
            self._members.add(process)
        self._idle.put(process)

    def warm(self) -> list[float]:
        """Wait for the idle processes to finish importing the app; their init times."""
        taken: list[tuple[HandlerProcess, bool]] = []
        times: list[float] = []
        while True:
            try:
                process = self._idle.get_nowait()
            except queue.Empty:
                break
            try:
                process.ensure_ready()
                times.append(process.init_ms or 0.0)
                taken.append((process, False))
            except InvocationFailed as exc:
                self.init_error = str(exc)
                taken.append((process, True))
        for process, failed in taken:
            self.release(process, init_failed=failed)
        return times

    def pids(self) -> list[int]:
        with self._lock:
            return [p.pid for p in self._members if p.alive]

    def acquire(self, timeout: float) -> HandlerProcess | None:
        """An idle process, or None after `timeout` (or at once when the pool is retired)."""
        deadline = time.monotonic() + timeout
        while not self._retired:
            try:
                process = self._idle.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return None
            if process.alive:
                return process
            self.release(process)
        return None

    def release(self, process: HandlerProcess, *, init_failed: bool = False) -> None:
        """Return a process after an invocation; a dead one is replaced (after a back-off
        when the app keeps failing to import)."""
        if process.alive and not self._retired:
            self._init_failures = 0
            self._idle.put(process)
            return
        with self._lock:
            self._members.discard(process)
        if process.alive:
            process.stop()
            return
        process.kill()
        if self._retired:
            return
        self._init_failures = self._init_failures + 1 if init_failed else 0
        if self._init_failures:
            delay = min(MAX_RESPAWN_DELAY_SECONDS, 0.25 * 2 ** (self._init_failures - 1))
            timer = threading.Timer(delay, self._respawn_unless_retired)
            timer.daemon = True
            timer.start()
        else:
            self._spawn()

    def _respawn_unless_retired(self) -> None:
        if not self._retired:
            self._spawn()

    def retire(self) -> None:
        """Stop idle processes now; busy ones stop when their invocation returns."""
        self._retired = True
        while True:
            try:
                process = self._idle.get_nowait()
            except queue.Empty:
                break
            with self._lock:
                self._members.discard(process)
            process.stop()

    def kill_all(self) -> None:
        self._retired = True
        with self._lock:
            members = list(self._members)
            self._members.clear()
        for process in members:
            process.kill()
