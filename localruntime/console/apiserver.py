"""The app's HTTP routes (results API and dashboard): the runtime holds the API port and
hands every request to the current `chalice local`.

`chalice local --stage <stage> --no-autoreload` runs on an internal port with the endpoint
in AWS_ENDPOINT_URL, as a user could start it by hand; the runtime does the reloading. At a
reload a new one starts beside the old; once it answers, requests go to it and the old one
stops after its last request. The API port itself never closes, so a reload refuses no
connection, and a `chalice local` that fails to start leaves the previous one serving.
Every `/health` answer carries this run's token (TOKEN_HEADER), so a client can tell
which runtime it reached. Chalice reads the stage's variables from .chalice/config.json
itself, so `--set` overrides reach the handlers and provisioning but not the routes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from werkzeug.middleware.http_proxy import ProxyMiddleware
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from localruntime.children import spawn
from localruntime.log import Console, import_failure

READY_TIMEOUT_SECONDS = 60.0
DRAIN_SECONDS = 30.0
# API Gateway gives an integration 29 s; a request the backend holds longer is cut.
REQUEST_TIMEOUT_SECONDS = 30.0
CHALICE = Path(sys.executable).parent / "chalice"
TOKEN_HEADER = "X-Localruntime-Run"
SERVING_LINE = "Serving on "
BACKEND_LINE = "API: chalice local on "

StartResponse = Callable[..., Any]


class ApiServerError(Exception):
    """`chalice local` exited or did not answer, or the API port cannot be had."""


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _not_proxied(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found\n"]


class ApiBackend:
    """One `chalice local` on an internal port, and the requests it is serving."""

    def __init__(self, project: Path, stage_name: str, host: str, env: dict[str, str],
                 console: Console) -> None:
        self.port = _free_port(host)
        self.url = f"http://{host}:{self.port}/"
        self.console = console
        self.process = spawn(
            [str(CHALICE), "local", "--no-autoreload", "--stage", stage_name, "--host", host,
             "--port", str(self.port)],
            cwd=project, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, start_new_session=True)
        # ProxyMiddleware routes by path prefix and cannot take "/" as one: its per-target
        # application is used directly, for every path.
        proxy = ProxyMiddleware(_not_proxied, {"/all": {"target": self.url, "host": None}},
                                timeout=REQUEST_TIMEOUT_SECONDS)
        self._options = next(iter(proxy.targets.values()))
        self._proxy = proxy
        self._serving = threading.Event()
        self._ready = False
        self._early: list[str] = []
        self._lock = threading.Condition()
        self._in_flight = 0
        assert self.process.stdout is not None
        threading.Thread(target=self._forward, args=(self.process.stdout,), daemon=True,
                         name="api-log").start()

    def _forward(self, stream: IO[bytes]) -> None:
        """Its output, once it serves; before that kept, to say why it did not start."""
        with stream:
            for raw in stream:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                with self._lock:
                    if not self._ready:
                        if line.startswith(SERVING_LINE):
                            self._serving.set()
                        else:
                            self._early.append(line)
                        continue
                self.console.raw("api: " + line)

    def wait_ready(self, project: Path, timeout: float = READY_TIMEOUT_SECONDS) -> None:
        """Until it has bound its port (its own "Serving on" line: the port is its) and
        answers /health with any status."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                self.process.wait()
                with self._lock:
                    output = "\n".join(self._early)
                raise ApiServerError(
                    f"chalice local exited with status {self.process.returncode}: "
                    f"{import_failure(output, project)}")
            if self._serving.is_set() and self._answers():
                break
            if time.monotonic() > deadline:
                raise ApiServerError(f"chalice local did not answer within {timeout:g} s")
            time.sleep(0.05)
        with self._lock:
            self._ready = True
            early, self._early = self._early, []
        for line in early:
            self.console.raw("api: " + line)

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "health", timeout=5):
                return True
        except urllib.error.HTTPError:
            return True
        except (urllib.error.URLError, OSError):
            return False

    def app(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        return self._proxy.proxy_to(self._options, environ["PATH_INFO"], "")(
            environ, start_response)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def enter(self) -> None:
        with self._lock:
            self._in_flight += 1

    def leave(self) -> None:
        with self._lock:
            self._in_flight -= 1
            self._lock.notify_all()

    def drain_and_stop(self, grace: float = DRAIN_SECONDS) -> None:
        """Stop once its requests are answered (or after `grace`)."""
        with self._lock:
            self._lock.wait_for(lambda: self._in_flight == 0, grace)
        self.stop()

    def stop(self) -> None:
        """SIGTERM to its process group; SIGKILL after 10 s."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait()


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """`chalice local` logs each request already."""


class ApiServer:
    """The API port, held by the runtime, in front of the current `chalice local`."""

    def __init__(self, project: Path, stage_name: str, host: str, port: int,
                 console: Console, token: str) -> None:
        self.project = project
        self.stage_name = stage_name
        self.host = host
        self.url = f"http://{host}:{port}/"
        self.console = console
        self.token = token
        self._backend: ApiBackend | None = None
        self._retiring: list[ApiBackend] = []
        self._lock = threading.Lock()
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((host, port))
            listener.listen(128)
        except OSError as exc:
            listener.close()
            raise ApiServerError(f"--api-port {port} is already in use (another local "
                                 f"runtime?): {exc.strerror or exc}; stop it, or pick another "
                                 "port") from None
        self._server: BaseWSGIServer = make_server(
            host, port, self._wsgi, threaded=True, request_handler=_QuietHandler,
            fd=listener.fileno())
        listener.close()
        threading.Thread(target=self._server.serve_forever, daemon=True,
                         name="api-proxy").start()

    def launch(self, env: dict[str, str]) -> ApiBackend:
        """Start a `chalice local` with the app as it is now (it serves once `take`n)."""
        return ApiBackend(self.project, self.stage_name, self.host, env, self.console)

    def take(self, backend: ApiBackend) -> None:
        """Hand requests to `backend` once it answers; the previous one stops after its
        last request. Raises ApiServerError (and stops `backend`) if it does not answer,
        leaving the previous one serving."""
        try:
            backend.wait_ready(self.project)
        except ApiServerError:
            backend.stop()
            raise
        with self._lock:
            previous, self._backend = self._backend, backend
            if previous is not None:
                self._retiring = [b for b in self._retiring if b.alive] + [previous]
        self.console.info(f"{BACKEND_LINE}{backend.url} (pid {backend.process.pid}) behind "
                          f"{self.url}")
        if previous is not None:
            threading.Thread(target=previous.drain_and_stop, daemon=True,
                             name="api-drain").start()

    def start(self, env: dict[str, str]) -> None:
        self.take(self.launch(env))

    def backend_exited(self) -> int | None:
        """The exit status of the serving `chalice local`, if it has exited."""
        with self._lock:
            backend = self._backend
        return None if backend is None or backend.alive else backend.process.returncode

    def own(self, timeout: float = 5.0) -> bool:
        """Whether the API port answers /health with this run's token."""
        try:
            with urllib.request.urlopen(self.url + "health", timeout=timeout) as response:
                return bool(response.headers.get(TOKEN_HEADER) == self.token)
        except urllib.error.HTTPError as exc:
            return bool(exc.headers.get(TOKEN_HEADER) == self.token)
        except (urllib.error.URLError, OSError):
            return False

    def _wsgi(self, environ: dict[str, Any],
              start_response: StartResponse) -> Iterable[bytes]:
        with self._lock:
            backend = self._backend
            if backend is not None:
                backend.enter()
        if backend is None:
            start_response("503 Service Unavailable", [("Content-Type", "text/plain"),
                                                       ("Retry-After", "1")])
            return [b"the API is starting\n"]
        health = environ.get("PATH_INFO") == "/health"

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            if health:
                headers = [*headers, (TOKEN_HEADER, self.token)]
            return start_response(status, headers, exc_info)

        try:
            body = backend.app(environ, start)
        except BaseException:
            backend.leave()
            raise
        return self._relay(body, backend)

    @staticmethod
    def _relay(body: Iterable[bytes], backend: ApiBackend) -> Iterator[bytes]:
        try:
            yield from body
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()
            backend.leave()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            backends = [*self._retiring, *filter(None, [self._backend])]
            self._backend, self._retiring = None, []
        for backend in backends:
            backend.stop()
