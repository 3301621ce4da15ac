"""The app's HTTP routes (results API and dashboard) served by `chalice local`.

The runtime starts `chalice local --stage <stage>` on its own port, with the endpoint in
AWS_ENDPOINT_URL, exactly as a user could start it by hand. Chalice reads the stage's
variables from .chalice/config.json itself, so `--set` overrides reach the handlers and
provisioning but not the routes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO

from localruntime.log import Console

READY_TIMEOUT_SECONDS = 60.0
CHALICE = Path(sys.executable).parent / "chalice"


class ApiServerError(Exception):
    """`chalice local` exited or did not answer."""


def _forward(stream: IO[bytes], console: Console) -> None:
    with stream:
        for line in stream:
            console.raw("api: " + line.decode("utf-8", "replace").rstrip("\n"))


class ApiServer:
    def __init__(self, project: Path, stage_name: str, host: str, port: int,
                 env: dict[str, str], console: Console) -> None:
        self.url = f"http://{host}:{port}/"
        self.console = console
        self.process = subprocess.Popen(
            [str(CHALICE), "local", "--stage", stage_name, "--host", host, "--port", str(port)],
            cwd=project, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, start_new_session=True)
        assert self.process.stdout is not None
        threading.Thread(target=_forward, args=(self.process.stdout, console), daemon=True,
                         name="api-log").start()

    def wait_ready(self, timeout: float = READY_TIMEOUT_SECONDS) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise ApiServerError(f"chalice local exited with status "
                                     f"{self.process.returncode}")
            try:
                with urllib.request.urlopen(self.url + "health", timeout=5):
                    return
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline:
                    raise ApiServerError(f"chalice local did not answer on {self.url} within "
                                         f"{timeout:g} s") from None
                time.sleep(0.2)

    def stop(self) -> None:
        """SIGTERM to its process group (chalice's reloader runs the server in a child)."""
        if self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        except ProcessLookupError:
            pass
