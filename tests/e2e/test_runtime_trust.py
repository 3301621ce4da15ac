"""A runtime you can work in: broken saves, operator commands, a killed runtime and a second
one beside it leave the running one serving, and nothing behind (issue 21, cases 1, 3-5)."""

from __future__ import annotations

import collections
import contextlib
import errno
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from chalicelib.core.jobs import job_id_for
from localruntime.background import free_port
from localruntime.console.apiserver import TOKEN_HEADER
from logctl.stage import ENDPOINT_FILE, read_runtime_record
from tests.e2e.conftest import (
    ROOT,
    Runtime,
    project_copy,
    running,
    runtime_environment,
    wait_for_final,
    wait_until,
)

pytestmark = pytest.mark.e2e

POLLS_PER_SECOND = 20
RELOAD_POLL_SECONDS = 1.0  # localruntime.runtime's: how often saves are looked for
HANG_GUARD_SECONDS = 300


class ApiPoller(threading.Thread):
    """A client asking the API for /health 20 times a second, counting what it got."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True, name="api-poller")
        self.url = url + "health"
        self.outcomes: collections.Counter[str] = collections.Counter()
        self.tokens: set[str] = set()
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            started = time.monotonic()
            self.outcomes[self._ask()] += 1
            self._halt.wait(max(0.0, 1 / POLLS_PER_SECOND - (time.monotonic() - started)))

    def _ask(self) -> str:
        try:
            with urllib.request.urlopen(self.url, timeout=30) as response:
                self.tokens.add(response.headers.get(TOKEN_HEADER, ""))
                return str(response.status)
        except urllib.error.HTTPError as exc:
            self.tokens.add(exc.headers.get(TOKEN_HEADER, ""))
            return str(exc.code)
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, ConnectionRefusedError):
                return "refused"
            return f"error: {reason}"
        except OSError as exc:
            if exc.errno == errno.ECONNREFUSED:
                return "refused"
            return f"error: {exc}"

    def stop(self) -> collections.Counter[str]:
        self._halt.set()
        self.join()
        return self.outcomes


def upload(runtime: Runtime, key: str, lines: int = 20) -> str:
    stage = runtime.stage()
    body = b"".join(
        b'{"timestamp":"2024-05-01T12:00:0%dZ","level":"INFO","endpoint":"/a",'
        b'"response_time_ms":%d,"status_code":200,"user_id":"u%d"}\n' % (i % 10, i, i)
        for i in range(lines))
    response = runtime.client("s3").put_object(Bucket=stage.bucket, Key=key, Body=body)
    return job_id_for(stage.bucket, key, etag=response["ETag"],
                      version_id=response.get("VersionId"))


def api_pids(runtime: Runtime) -> list[int]:
    pids = []
    for child in runtime.descendants():
        with contextlib.suppress(psutil.NoSuchProcess):
            command = child.cmdline()
            if "local" in command and any(part.endswith("chalice") for part in command):
                pids.append(child.pid)
    return pids


def health(api_url: str) -> tuple[int, str | None]:
    try:
        with urllib.request.urlopen(api_url + "health", timeout=30) as response:
            return response.status, response.headers.get(TOKEN_HEADER)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get(TOKEN_HEADER)


def logctl(command: str, project: Path, endpoint: str,
           *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", f"logctl.{command}", "--stage", "local", "--endpoint-url",
         endpoint, "--project", str(project), *args], cwd=ROOT, env=runtime_environment(),
        capture_output=True, text=True, timeout=HANG_GUARD_SECONDS, stdin=subprocess.DEVNULL)


class Editor:
    """Saves to the project copy, and what the runtime said about each."""

    def __init__(self, runtime: Runtime, project: Path) -> None:
        self.runtime = runtime
        self.project = project

    def count(self, text: str) -> int:
        return self.runtime.log().count(text)

    def save(self, relative: str, text: str) -> None:
        path = self.project / relative
        path.write_text(text)

    def bad_save(self, relative: str, broken: str, said: str,
                 failed: str = "localruntime: reload failed") -> str:
        """Save `broken`, wait for the line starting with `failed`, and return it."""
        failures = self.count(failed)
        self.save(relative, broken)
        wait_until(lambda: self.count(failed) > failures, 120,
                   f"the failed reload after saving {relative}")
        line = [line for line in self.runtime.log().splitlines() if line.startswith(failed)][-1]
        assert said in line
        return line

    def good_save(self, relative: str, text: str) -> None:
        reloads = self.count("localruntime: reloaded")
        self.save(relative, text)
        wait_until(lambda: self.count("localruntime: reloaded") > reloads, 120,
                   f"the reload after saving {relative}")
        # the previous `chalice local` stops once the new one serves, moments after the line
        wait_until(lambda: len(api_pids(self.runtime)) == 1, 60,
                   f"one chalice local after saving {relative}")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    copy = tmp_path / "project"
    copy.mkdir()
    return project_copy(copy)


@contextlib.contextmanager
def runtime_with_api(tmp_path: Path, project: Path, *args: str) -> Iterator[Runtime]:
    api_port = free_port()
    with running(tmp_path, "--api-port", str(api_port), "--endpoint-file",
                 str(project / ENDPOINT_FILE.name), *args, project=project) as runtime:
        yield runtime


def test_a_morning_of_editing_refuses_no_connection(tmp_path: Path, project: Path) -> None:
    # GIVEN `make local` on a project, and a client asking its API 20 times a second
    with runtime_with_api(tmp_path, project) as runtime:
        record = read_runtime_record(project / ENDPOINT_FILE.name)
        assert record is not None and record.api_url is not None and record.token
        api = record.api_url
        assert health(api) == (200, record.token)
        poller = ApiPoller(api)
        poller.start()
        editor = Editor(runtime, project)
        try:
            config = (project / ".chalice" / "config.json").read_text()
            app = (project / "app.py").read_text()
            api_module = (project / "chalicelib" / "api.py").read_text()
            serving = api_pids(runtime)
            assert len(serving) == 1

            # WHEN saves break the config, the syntax, an import; each is then fixed
            line = editor.bad_save(".chalice/config.json", config.replace(",", "", 1),
                                   "config.json is not valid JSON")
            assert "the previous code keeps running (handlers and API)" in line
            # THEN the previous code keeps serving handlers and API, on the same processes
            job = upload(runtime, "logs/morning/bad-config.ndjson")
            assert wait_for_final(runtime, job)["status"] == "completed"
            assert health(api) == (200, record.token) and api_pids(runtime) == serving
            editor.good_save(".chalice/config.json", config)

            line = editor.bad_save("app.py", app + "\nbroken = (\n", "app.py, line")
            assert "SyntaxError: '(' was never closed" in line
            job = upload(runtime, "logs/morning/bad-syntax.ndjson")
            assert wait_for_final(runtime, job)["status"] == "completed"
            assert health(api)[0] == 200
            editor.good_save("app.py", app)

            line = editor.bad_save("chalicelib/api.py",
                                   api_module + "\nimport no_such_module_here\n",
                                   "ModuleNotFoundError: No module named 'no_such_module_here'")
            assert "chalicelib/api.py, line" in line
            job = upload(runtime, "logs/morning/bad-import.ndjson")
            assert wait_for_final(runtime, job)["status"] == "completed"
            assert health(api)[0] == 200
            serving = api_pids(runtime)
            editor.good_save("chalicelib/api.py", api_module)
            # a good save puts a new `chalice local` behind the port, and the old one goes
            wait_until(lambda: api_pids(runtime) and not set(api_pids(runtime)) & set(serving),
                       60, "the previous chalice local to stop")

            # WHEN only `chalice local` refuses the new code (a route API Gateway would refuse)
            serving = api_pids(runtime)
            line = editor.bad_save(
                "app.py", app + '\n\n@app.route("/trailing/")\ndef trailing():\n    return {}\n',
                "Route cannot end with a trailing slash",
                failed="localruntime: reload: the handlers run the new code, but the API")
            # THEN the previous `chalice local` keeps serving the API, and the line says so
            assert "the previous code keeps serving the API" in line
            assert api_pids(runtime) == serving and health(api)[0] == 200
            editor.good_save("app.py", app)

            # AND a file written under the project that is not code reloads nothing
            serving, reloads = api_pids(runtime), editor.count("localruntime: reloading")
            (project / "demo-data").mkdir()
            (project / "demo-data" / "app.ndjson").write_text("{}\n")
            time.sleep(3 * RELOAD_POLL_SECONDS)  # the watcher looked at least twice
            assert editor.count("localruntime: reloading") == reloads
            assert api_pids(runtime) == serving

            # WHEN the operator destroys the stage beside the running runtime
            destroyed = logctl("destroy", project, runtime.endpoint, "--yes", "--purge")
            assert destroyed.returncode == 0, destroyed.stderr
            # THEN it says the runtime keeps running, and the runtime says it waits
            assert f"(pid {runtime.process.pid}) keeps running" in destroyed.stdout
            assert "make deploy-local` brings the stage back" in destroyed.stdout
            wait_until(lambda: editor.count("stage local was deleted") == 1, 60,
                       "the runtime to notice its stage is gone")
            # AND the worker's poller says so (its long poll may still be running: wait for it)
            wait_until(lambda: editor.count("failed: SqsCallError: QueueDoesNotExist") >= 1, 60,
                       "the worker's poller to report its queue gone")
            # WHEN deploy-local brings the stage back
            deployed = logctl("deploy", project, runtime.endpoint)
            assert deployed.returncode == 0, deployed.stderr
            # THEN it names the local API, not an execute-api URL nobody serves
            assert f"results API and dashboard: {api}" in deployed.stdout
            assert "execute-api" not in deployed.stdout
            wait_until(lambda: editor.count("stage local is back") == 1, 60,
                       "the runtime to reconnect the stage")
            job = upload(runtime, "logs/morning/after-deploy.ndjson")
            assert wait_for_final(runtime, job)["status"] == "completed"
            cors = runtime.client("s3").get_bucket_cors(Bucket=runtime.stage().bucket)
            assert api.rstrip("/") in cors["CORSRules"][0]["AllowedOrigins"]
            # the worker's pollers said once that the queue was gone (not every second),
            # and once that it is back
            assert editor.count("failed: SqsCallError: QueueDoesNotExist") == 1
            assert editor.count("worker: polling") == 2 and editor.count("works again") == 1
        finally:
            outcomes = poller.stop()
        # AND the client never found the port closed, nor a proxy without a server
        assert outcomes["refused"] == 0, outcomes
        assert not [k for k in outcomes if k.startswith("error") or k in ("502", "503")], \
            outcomes
        assert outcomes["200"] > 0
        assert poller.tokens == {record.token}


def test_kill_9_leaves_no_process_and_the_ports_free(tmp_path: Path, project: Path) -> None:
    # GIVEN a runtime with its endpoint, handlers and `chalice local`
    with runtime_with_api(tmp_path / "first", project, "--no-reload") as runtime:
        children = runtime.descendants()
        assert len(api_pids(runtime)) == 1 and len(children) >= 5
        record = read_runtime_record(project / ENDPOINT_FILE.name)
        assert record is not None and record.api_url is not None
        api_port = int(record.api_url.rstrip("/").rsplit(":", 1)[1])
        # WHEN it is killed outright
        runtime.process.send_signal(signal.SIGKILL)
        runtime.process.wait()
        # THEN every process it started is gone
        _, alive = psutil.wait_procs(children, timeout=15)
        for straggler in alive:
            straggler.kill()
        assert [p.pid for p in alive] == []
    # AND a new runtime starts on the same API port, beside the file the dead one left
    assert read_runtime_record(project / ENDPOINT_FILE.name) == record
    with running(tmp_path / "second", "--no-reload", "--api-port", str(api_port),
                 "--endpoint-file", str(project / ENDPOINT_FILE.name),
                 project=project) as second:
        assert "names a runtime that is gone" in second.log()
        after = read_runtime_record(project / ENDPOINT_FILE.name)
        assert after is not None and after.pid == second.process.pid
        assert health(f"http://127.0.0.1:{api_port}/") == (200, after.token)


def start_beside(tmp_path: Path, project: Path, *args: str) -> Runtime:
    second = Runtime(tmp_path / "second.log", "--no-reload", *args, project=project)
    try:
        second.process.wait(HANG_GUARD_SECONDS)
    finally:
        second.stop_all()
    return second


def test_a_second_runtime_never_crosses_the_first(tmp_path: Path, project: Path) -> None:
    with runtime_with_api(tmp_path, project, "--no-reload") as first:
        path = project / ENDPOINT_FILE.name
        record = read_runtime_record(path)
        assert record is not None and record.api_url is not None
        api_port = record.api_url.rstrip("/").rsplit(":", 1)[1]

        # WHEN a second runtime asks for the same API port
        second = start_beside(tmp_path / "api", project, "--api-port", api_port)
        # THEN it refuses plainly, and the API still answers for the first
        assert second.process.returncode == 1
        assert f"--api-port {api_port} is already in use" in second.log()
        assert "ready on" not in second.log()
        assert health(record.api_url) == (200, record.token)

        # WHEN a second runtime of this checkout (its endpoint file) starts, on free ports
        # or on the first one's endpoint port
        for name, port in (("free", []), ("same", ["--port", str(first.port)])):
            second = start_beside(tmp_path / name, project, *port, "--endpoint-file",
                                  str(path))
            # THEN it refuses, saying which runtime runs, and leaves that one's file alone
            assert second.process.returncode == 1
            assert (f"a local runtime of this checkout is already running "
                    f"(pid {first.process.pid}") in second.log()
            assert read_runtime_record(path) == record

        # WHEN a runtime without the endpoint file fails on the endpoint port
        second = start_beside(tmp_path / "port", project, "--port", str(first.port))
        assert second.process.returncode == 1
        assert f"127.0.0.1:{first.port} is already in use" in second.log()
        # THEN the first one's file is still there, and the tools still reach the first
        assert read_runtime_record(path) == record
        assert first.process.poll() is None


def test_a_chalice_local_that_dies_is_started_again(tmp_path: Path, project: Path) -> None:
    with runtime_with_api(tmp_path, project, "--no-reload") as runtime:
        record = read_runtime_record(project / ENDPOINT_FILE.name)
        assert record is not None and record.api_url is not None
        [dead] = api_pids(runtime)
        # WHEN the `chalice local` behind the API port dies
        psutil.Process(dead).kill()
        # THEN the runtime says so and starts another; the API answers for this run again
        wait_until(lambda: "chalice local exited (status -9); starting it again"
                   in runtime.log(), 60, "the runtime to notice")
        wait_until(lambda: api_pids(runtime) and dead not in api_pids(runtime), 120,
                   "a new chalice local")
        wait_until(lambda: health(record.api_url) == (200, record.token), 120,
                   "the API to answer again")
        assert runtime.process.poll() is None


def test_a_stop_removes_only_the_file_it_wrote(tmp_path: Path, project: Path) -> None:
    path = project / ENDPOINT_FILE.name
    with runtime_with_api(tmp_path, project, "--no-reload"):
        mine = read_runtime_record(path)
        assert mine is not None
        path.write_text("http://127.0.0.1:1\npid=1\n")  # another writer took the file over
    assert path.read_text() == "http://127.0.0.1:1\npid=1\n"
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", int(mine.endpoint_url.rsplit(":", 1)[1]))) != 0
