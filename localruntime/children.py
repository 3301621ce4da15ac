"""Every process the runtime starts, started so that it dies with the runtime.

On Linux each child asks the kernel for SIGKILL when its parent goes (PR_SET_PDEATHSIG),
so even a `kill -9` of the runtime leaves nothing behind. The kernel sends that signal
when the parent *thread* that forked the child exits, not the process: a child started
from a short-lived thread (a timer, a retiring pool) would die with that thread. So every
child is forked by one long-lived thread here, whichever thread asks for it. On other
systems the children notice their closed pipes instead (the endpoint's --exit-with-parent,
a handler process's stdin).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

PR_SET_PDEATHSIG = 1


def _parent_death_signal() -> Callable[[], None] | None:
    """A pre-exec function that sets SIGKILL as the parent-death signal (Linux only)."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    prctl = libc.prctl
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                      ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    kill = int(signal.SIGKILL)

    def set_parent_death_signal() -> None:
        prctl(PR_SET_PDEATHSIG, kill, 0, 0, 0)

    return set_parent_death_signal


class _Spawner:
    """One daemon thread that forks every child, for as long as the runtime lives."""

    def __init__(self) -> None:
        self._requests: queue.SimpleQueue[tuple[list[str], dict[str, Any],
                                                Future[subprocess.Popen[bytes]]]] = (
            queue.SimpleQueue())
        self._preexec = _parent_death_signal()
        self._thread = threading.Thread(target=self._run, daemon=True, name="spawner")
        self._thread.start()

    def _run(self) -> None:
        while True:
            args, kwargs, result = self._requests.get()
            if not result.set_running_or_notify_cancel():
                continue
            try:
                result.set_result(self._popen(args, kwargs))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                result.set_exception(exc)

    def _popen(self, args: list[str], kwargs: dict[str, Any]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(args, preexec_fn=self._preexec, **kwargs)

    def spawn(self, args: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        if threading.current_thread() is self._thread:
            return self._popen(args, kwargs)
        result: Future[subprocess.Popen[bytes]] = Future()
        self._requests.put((args, kwargs, result))
        return result.result()


_spawner: _Spawner | None = None
_spawner_lock = threading.Lock()


def spawn(args: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    """subprocess.Popen(args, **kwargs), as a child that dies when the runtime does."""
    global _spawner
    with _spawner_lock:
        if _spawner is None:
            _spawner = _Spawner()
    return _spawner.spawn(args, **kwargs)
