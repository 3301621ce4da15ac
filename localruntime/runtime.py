"""The runtime: endpoint, provisioning, event sources, handler pools, reload and shutdown."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from types import FrameType
from typing import IO, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from localruntime.console.apiserver import ApiServer, ApiServerError
from localruntime.console.dlqwatch import DeadLetterWatch
from localruntime.console.status import StatusBoard
from localruntime.endpoint import motoguard
from localruntime.functions.invoker import Invoker
from localruntime.functions.pool import FunctionPool
from localruntime.functions.reload import SourceWatcher
from localruntime.gcpolicy import keep_full_collections_short
from localruntime.log import Console
from localruntime.settings import (
    FunctionSettings,
    RuntimeSettings,
    SettingsError,
)
from localruntime.sources.app import (
    AppDescription,
    DiscoveryError,
    S3Source,
    Source,
    SqsSource,
    discover,
)
from localruntime.sources.mapping import MappingReader
from localruntime.sources.notificationfaults import NotificationFaults
from localruntime.sources.pollers import Poller, S3NotificationPoller, SqsPoller
from localruntime.sources.sqs_json import LocalSqsClient
from localruntime.sources.wiring import (
    connect_s3_source,
    disconnect_s3_source,
    resolve_sqs_source,
)
from localruntime.statefolder import (
    RESTORE_TIMEOUT_SECONDS,
    StateFolder,
    StateFolderError,
    stop_line,
    unfinished,
)
from logctl.provision import provision
from logctl.stage import Stage

READY_TIMEOUT_SECONDS = 30.0
READY_POLL_SECONDS = 0.05
RELOAD_POLL_SECONDS = 1.0
RELOAD_SETTLE_SECONDS = 0.3


class RuntimeStartError(Exception):
    """The runtime cannot start or keep running; the message says why."""


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def _forward(stream: IO[bytes], console: Console) -> None:
    with stream:
        for line in stream:
            console.raw(line.decode("utf-8", "replace").rstrip("\n"))


@dataclass
class _Running:
    """A source being served: its poller, and what it was built from."""

    source: Source
    function: FunctionSettings
    poller: Poller


class Runtime:
    """Raises SettingsError when the stage cannot be read."""

    def __init__(self, settings: RuntimeSettings, console: Console) -> None:
        self.settings = settings
        self.console = console
        self.stage: Stage = settings.stage()
        self.shutdown = threading.Event()
        self.invoker = Invoker(console)
        self.endpoint: subprocess.Popen[bytes] | None = None
        self.api: ApiServer | None = None
        self.generation = 0
        self.running: dict[str, _Running] = {}
        self.retired: list[FunctionPool] = []
        self._clients: dict[str, Any] = {}
        self._reload_lock = threading.Lock()
        self.state_folder = (StateFolder(settings.state_dir, settings.fresh, console)
                             if settings.state_dir is not None else None)

    # ---- AWS clients against the endpoint ------------------------------------------------

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = boto3.session.Session(
                aws_access_key_id="test", aws_secret_access_key="test",
                region_name=self.stage.region,
            ).client(service, endpoint_url=self.settings.endpoint_url, config=Config(
                retries={"max_attempts": 3, "mode": "standard"}, max_pool_connections=64,
                read_timeout=60, connect_timeout=5, tcp_keepalive=True))
        return self._clients[service]

    # ---- endpoint --------------------------------------------------------------------

    def start_endpoint(self) -> None:
        host, port = self.settings.host, self.settings.port
        try:
            motoguard.check_version()
        except motoguard.MotoMismatch as exc:
            raise RuntimeStartError(str(exc)) from exc
        if port_in_use(host, port):
            raise RuntimeStartError(
                f"{host}:{port} is already in use (another local runtime, or LocalStack?): "
                "stop it, or pick another port with --port")
        state_args, state_fds = self._state_folder_args()
        self.endpoint = subprocess.Popen(
            [sys.executable, "-m", "localruntime.endpoint.server", "--host", host,
             "--port", str(port),
             "--exit-with-parent", *self._endpoint_fault_args(), *state_args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True, pass_fds=state_fds)
        assert self.endpoint.stdout is not None
        threading.Thread(target=_forward, args=(self.endpoint.stdout, self.console),
                         daemon=True, name="endpoint-log").start()
        self._wait_for_endpoint()
        if self.state_folder is not None:
            try:
                self.state_folder.started(self.settings.endpoint_url, self.shutdown)
            except StateFolderError as exc:
                raise RuntimeStartError(f"state: {exc}") from None

    def _state_folder_args(self) -> tuple[list[str], tuple[int, ...]]:
        """With --state: the endpoint's arguments, and the folder's lock for it to hold."""
        if self.state_folder is None:
            return [], ()
        try:
            descriptor = self.state_folder.acquire()
        except StateFolderError as exc:
            raise RuntimeStartError(f"{exc}, or give this runtime a folder of its own "
                                    "(--state DIR)") from None
        return self.state_folder.endpoint_args(), (descriptor,)

    def _endpoint_fault_args(self) -> list[str]:
        plan = self.settings.faults
        return ["--faults", plan.to_json()] if plan.endpoint_active() else []

    def _wait_for_endpoint(self) -> None:
        assert self.endpoint is not None
        probe = boto3.session.Session(
            aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1",
        ).client("sqs", endpoint_url=self.settings.endpoint_url, config=Config(
            retries={"max_attempts": 1}, connect_timeout=1, read_timeout=5))
        waits = READY_TIMEOUT_SECONDS + (RESTORE_TIMEOUT_SECONDS if self.state_folder else 0)
        deadline = time.monotonic() + waits
        while True:
            if self.endpoint.poll() is not None:
                raise RuntimeStartError(
                    f"the endpoint exited with status {self.endpoint.returncode}")
            try:
                probe.list_queues()
                return
            except (BotoCoreError, ClientError):
                if time.monotonic() > deadline:
                    raise RuntimeStartError(f"the endpoint did not answer on "
                                        f"{self.settings.endpoint_url} within "
                                        f"{waits:g} s") from None
                time.sleep(READY_POLL_SECONDS)

    def stop_endpoint(self) -> None:
        if self.endpoint is None or self.endpoint.poll() is not None:
            return
        self.endpoint.terminate()
        try:
            self.endpoint.wait(5)
        except subprocess.TimeoutExpired:
            self.endpoint.kill()
            self.endpoint.wait()

    def start_api(self) -> None:
        """The app's routes under `chalice local`, when --api-port asks for them."""
        port = self.settings.api_port
        if port is None:
            return
        if port_in_use(self.settings.host, port):
            raise RuntimeStartError(f"--api-port {port} is already in use: pick another")
        self.api = ApiServer(self.settings.project, self.stage.name, self.settings.host, port,
                             self.settings.app_environment(self.stage), self.console)
        try:
            self.api.wait_ready()
        except ApiServerError as exc:
            raise RuntimeStartError(str(exc)) from None
        self.console.info(f"dashboard and results API on {self.api.url}")

    # ---- event sources and handler pools ---------------------------------------------

    def load(self) -> None:
        """Provision the stage, read the app, and serve every event source it declares."""
        stage = self.settings.stage()
        for action in provision(stage).actions:
            self.console.info(f"provision[{stage.name}]: {action}")
        description = discover(self.settings.project, self.settings.app_environment(stage))
        self.settings.check_functions(source.function for source in description.sources)
        self.stage = stage
        self._apply(description)

    def _apply(self, description: AppDescription) -> None:
        self.generation += 1
        for name in description.unsupported:
            self.console.info(f"event source {name} is not run by the local runtime")
        wanted: dict[str, tuple[Source, FunctionSettings]] = {}
        for source in description.sources:
            declared = source.maximum_concurrency if isinstance(source, SqsSource) else None
            function = self.settings.function(source.function, self.stage, declared)
            wanted[function.name] = (source, function)
        self._replace_pools(wanted)
        for name in list(self.running):
            current = self.running[name]
            if wanted.get(name) == (current.source, current.function):
                continue
            current.poller.stop()
            del self.running[name]
            if name in wanted:
                continue
            if isinstance(current.source, S3Source):
                disconnect_s3_source(self.client("s3"), current.source)
            pool = self.invoker.remove_pool(name)
            if pool is not None:
                self._retire(pool)
            self.console.info(f"{name}: removed")
        for name, (source, function) in wanted.items():
            if name not in self.running:
                self.running[name] = _Running(source, function,
                                              self._start_poller(source, function))

    def _replace_pools(self, wanted: dict[str, tuple[Source, FunctionSettings]]) -> None:
        """New warm processes for every function (importing in parallel), then the swap."""
        pools = {name: FunctionPool(function, source.handler, self.settings.project,
                                    self.settings.handler_environment(self.stage, function),
                                    self.console, self.generation,
                                    faults=self.settings.faults,
                                    enforce_memory=self.settings.enforce_memory)
                 for name, (source, function) in wanted.items()}
        for name, pool in pools.items():
            init_times = pool.warm()
            previous = self.invoker.set_pool(name, pool)
            if previous is not None:
                self._retire(previous)
            cold = ", ".join(f"{t:.0f}" for t in init_times) or "none ready"
            self.console.info(f"{name}: {pool.function.concurrency} warm process(es), pids "
                              f"{', '.join(map(str, pool.pids()))}; cold start (import) ms: "
                              f"{cold}")

    def _retire(self, pool: FunctionPool) -> None:
        self.retired = [p for p in self.retired if p.pids()] + [pool]
        threading.Thread(target=pool.retire, daemon=True, name="retire").start()

    def _start_poller(self, source: Source, function: FunctionSettings) -> Poller:
        sqs = self.client("sqs")
        polling = LocalSqsClient(self.settings.endpoint_url, self.stage.region)
        common: dict[str, Any] = {"region": self.stage.region, "lanes": function.concurrency,
                                  "invoker": self.invoker, "console": self.console,
                                  "shutdown": self.shutdown}
        poller: Poller
        if isinstance(source, S3Source):
            queue = connect_s3_source(self.client("s3"), sqs, source, function.timeout_seconds,
                                      self.stage.region)
            faults = (NotificationFaults(self.settings.faults, function.name, polling,
                                         queue.url, self.console)
                      if NotificationFaults.wanted(self.settings.faults) else None)
            poller = S3NotificationPoller(function.name, polling, queue, **common,
                                          faults=faults)
            what = (f"s3://{source.bucket}/{source.prefix or ''}*{source.suffix or ''} "
                    f"{','.join(source.events)} via {queue.url}")
        else:
            queue = resolve_sqs_source(sqs, source)
            mapping = MappingReader(
                self.client("lambda"),
                self.stage.function_name(function.name), queue.arn,
                self.console)
            poller = SqsPoller(function.name, polling, queue, **common,
                               batch_size=source.batch_size,
                               batching_window_seconds=source.batching_window_seconds,
                               reports_item_failures=mapping.reports_batch_item_failures)
            what = (f"sqs {queue.url} (batch {source.batch_size}, window "
                    f"{source.batching_window_seconds} s)")
        poller.start()
        self.console.info(f"{function.name}: {source.handler} <- {what}; concurrency "
                          f"{function.concurrency}, timeout {function.timeout_seconds:g} s")
        return poller

    # ---- hot reload ------------------------------------------------------------------

    def _watch(self) -> None:
        watcher = SourceWatcher(self.settings.project)
        while not self.shutdown.wait(RELOAD_POLL_SECONDS):
            changed = watcher.changes()
            if not changed:
                continue
            self.shutdown.wait(RELOAD_SETTLE_SECONDS)
            changed = sorted({*changed, *watcher.changes()})
            self.reload(changed)

    def reload(self, changed: list[str]) -> None:
        with self._reload_lock:
            if self.shutdown.is_set():
                return
            self.console.info(f"reloading: {', '.join(changed)} changed")
            try:
                self.load()
            except Exception as exc:  # noqa: BLE001 - a broken edit must not stop the runtime
                self.console.info(f"reload failed, still running the previous code: {exc}")
                return
            self.console.info("reloaded")

    # ---- run and stop ------------------------------------------------------------------

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.shutdown.set()

    def run(self) -> int:
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        try:
            self.start_endpoint()
            self.load()
            self.start_api()
        except (RuntimeStartError, SettingsError, DiscoveryError) as exc:
            self.console.info(str(exc))
            self.stop()
            return 1
        except (BotoCoreError, ClientError) as exc:
            self.console.info(f"setting up the stage failed: {exc}")
            self.stop()
            return 1
        if self.settings.reload:
            threading.Thread(target=self._watch, daemon=True, name="reload").start()
        DeadLetterWatch(self.client("sqs"), lambda: self.stage, self.console,
                        self.shutdown).start()
        if self.console.interactive:
            StatusBoard(self.console, self.invoker, self.client("sqs"), self.client("dynamodb"),
                        stage=lambda: self.stage, stop=self.shutdown).start()
        keep_full_collections_short()
        self.console.info(f"ready on {self.settings.endpoint_url} (stage {self.stage.name}; "
                          f"Ctrl-C stops everything)")
        status = 0
        assert self.endpoint is not None
        while not self.shutdown.wait(0.2):
            if self.endpoint.poll() is not None:
                self.console.info(f"the endpoint exited (status {self.endpoint.returncode}); "
                                  "stopping")
                status = 1
                break
            if self.api is not None and self.api.process.poll() is not None:
                self.console.info(f"chalice local exited (status {self.api.process.returncode})"
                                  "; stopping")
                status = 1
                break
        self.stop()
        return status

    def stop(self) -> None:
        """Stop receiving, let in-flight invocations finish, then stop every process."""
        self.shutdown.set()
        self.console.clear_status()
        if self.api is not None:
            self.api.stop()
        for running in self.running.values():
            running.poller.stop()
        grace = self.settings.stop_grace_seconds
        if self.invoker.in_flight:
            self.console.info(f"stopping: waiting up to {grace:g} s for "
                              f"{self.invoker.in_flight} running invocation(s) (--stop-grace)")
        if not self.invoker.wait_idle(grace):
            self.console.info(f"{self.invoker.in_flight} invocation(s) still running after "
                              f"{grace:g} s; stopping them")
        pools = [*self.invoker.pools().values(), *self.retired]
        for pool in pools:
            pool.retire()
        for pool in pools:
            pool.kill_all()
        self._save_and_report()
        self.stop_endpoint()
        if self.state_folder is not None:
            self.state_folder.release()
        self.console.info("stopped")

    def _save_and_report(self) -> None:
        """The last save, and what the stop left unfinished."""
        if self.endpoint is None or self.endpoint.poll() is not None:
            return
        saved = (self.state_folder is not None
                 and self.state_folder.save(final=True) is not None)
        try:
            left = unfinished(self.client("sqs"))
        except (BotoCoreError, ClientError) as exc:
            self.console.info(f"could not count unfinished jobs: {exc}")
            return
        self.console.info(stop_line(left, self.settings.state_dir, saved))
