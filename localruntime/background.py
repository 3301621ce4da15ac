"""Start the local runtime in the background (for demos, benchmarks and tests) and stop it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

PROJECT_ROOT = Path(__file__).resolve().parent.parent
READY_LINE = b"localruntime: ready on"
DEFAULT_READY_TIMEOUT_SECONDS = 90.0
STOP_TIMEOUT_SECONDS = 30.0


class BackgroundRuntimeError(Exception):
    """The runtime exited or did not become ready; the message ends with its log."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def clean_environment(tree: Path = PROJECT_ROOT) -> dict[str, str]:
    """This environment without AWS settings (the runtime sets its own) and with the
    project's source tree (`tree`) importable before anything else."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "LOCALSTACK_"))}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(tree), *filter(None, [os.environ.get("PYTHONPATH")])])
    return env


class BackgroundRuntime:
    """`python -m localruntime` on a free 127.0.0.1 port, its output in `log_path`.

    `tree` is the source tree that runs: its localruntime, and (unless `project` names
    another) its app.py and chalicelib; it is the runtime's working directory and first on
    its PYTHONPATH, so another checkout (a `git worktree` of an older commit) runs its own
    code with this interpreter and its packages.
    """

    def __init__(self, log_path: Path, *args: str, project: Path | None = None,
                 tree: Path = PROJECT_ROOT, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.project = project or tree
        self.tree = tree
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "localruntime", "--port", str(self.port), "--no-status",
                 "--project", str(self.project), *args],
                cwd=tree, env={**clean_environment(tree), **(env or {})}, stdout=log,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def wait_ready(self, timeout: float = DEFAULT_READY_TIMEOUT_SECONDS) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise BackgroundRuntimeError(
                    f"the local runtime exited with status {self.process.returncode}:\n"
                    f"{self.log_tail()}")
            if READY_LINE in self.log_path.read_bytes():
                return
            if time.monotonic() > deadline:
                raise BackgroundRuntimeError(
                    f"the local runtime was not ready after {timeout:g} s:\n{self.log_tail()}")
            time.sleep(0.1)

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> int | None:
        """SIGTERM (the runtime then stops its own processes); SIGKILL after `timeout`."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def __enter__(self) -> BackgroundRuntime:
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()
