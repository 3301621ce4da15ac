"""The runtime's endpoint as a child process, for the tests that talk to it over HTTP."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from localruntime.background import PROJECT_ROOT, clean_environment, free_port

START_TIMEOUT_SECONDS = 60.0


@contextlib.contextmanager
def running_endpoint(log: Path, *args: str) -> Iterator[str]:
    """`python -m localruntime.endpoint.server ARGS` on a free port; yields its URL."""
    port = free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "localruntime.endpoint.server", "--port", str(port), *args],
            cwd=PROJECT_ROOT, env=clean_environment(), stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while b"listening" not in log.read_bytes():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the endpoint did not start:\n{log.read_text()}")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)
