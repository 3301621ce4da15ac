"""The runtime: endpoint, provisioning, event sources, handler pools, reload and shutdown."""

from __future__ import annotations

import dataclasses
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
from localruntime.faults import POLLER_APP_ID, FaultSwitch, follow
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
    DynamoDBStreamSource,
    KinesisSource,
    S3Source,
    Source,
    SqsSource,
    StreamSource,
    discover,
)
from localruntime.sources.mapping import MappingReader, StreamMappingReader
from localruntime.sources.notificationfaults import NotificationFaults
from localruntime.sources.pollers import Poller, S3NotificationPoller, SqsPoller
from localruntime.sources.sqs_json import LocalSqsClient
from localruntime.sources.streams import (
    BatchSettler,
    DynamoDBReader,
    KinesisReader,
    QueueDestination,
    StreamOptions,
    StreamPoller,
    StreamReader,
)
from localruntime.sources.wiring import (
    connect_s3_source,
    disconnect_s3_source,
    resolve_sqs_source,
)
from logctl.provision import provision
from logctl.stage import Stage

READY_TIMEOUT_SECONDS = 30.0
READY_POLL_SECONDS = 0.05
STOP_GRACE_SECONDS = 10.0
RELOAD_POLL_SECONDS = 1.0
RELOAD_SETTLE_SECONDS = 0.3
STREAM_ARN_CHECK_SECONDS = 2.0
# The results table's stream, which the app's DynamoDB stream handler reads at import.
RESULTS_STREAM_VARIABLE = "RESULTS_STREAM_ARN"
# moto's default account; the runtime's functions and roles live in it.
ACCOUNT_ID = "123456789012"


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
    poller: Poller | StreamPoller


class Runtime:
    """Raises SettingsError when the stage cannot be read."""

    def __init__(self, settings: RuntimeSettings, console: Console) -> None:
        self.settings = settings
        self.console = console
        self.stage: Stage = settings.stage()
        self.shutdown = threading.Event()
        self.invoker = Invoker(console)
        self.faults = FaultSwitch(settings.faults)
        self.endpoint: subprocess.Popen[bytes] | None = None
        self.api: ApiServer | None = None
        self.generation = 0
        self.running: dict[str, _Running] = {}
        self.retired: list[FunctionPool] = []
        self._clients: dict[str, Any] = {}
        self._reload_lock = threading.Lock()
        # Per stream mapping (function and source), the last sequence settled per shard.
        self.checkpoints: dict[str, dict[str, str]] = {}

    # ---- AWS clients against the endpoint ------------------------------------------------

    def client(self, service: str, app_id: str | None = None) -> Any:
        """A client of the endpoint; `app_id` tags its calls (fault injection picks the
        stream pollers' calls by it). botocore's account-id endpoint mode is off: moto
        serves stream calls only on the plain endpoint."""
        key = f"{service}/{app_id}"
        if key not in self._clients:
            self._clients[key] = boto3.session.Session(
                aws_access_key_id="test", aws_secret_access_key="test",
                region_name=self.stage.region,
            ).client(service, endpoint_url=self.settings.endpoint_url, config=Config(
                retries={"max_attempts": 3, "mode": "standard"}, max_pool_connections=64,
                read_timeout=60, connect_timeout=5, tcp_keepalive=True,
                account_id_endpoint_mode="disabled", user_agent_appid=app_id))
        return self._clients[key]

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
        self.endpoint = subprocess.Popen(
            [sys.executable, "-m", "localruntime.endpoint.server", "--host", host,
             "--port", str(port),
             "--exit-with-parent", *self._endpoint_fault_args()],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True)
        assert self.endpoint.stdout is not None
        threading.Thread(target=_forward, args=(self.endpoint.stdout, self.console),
                         daemon=True, name="endpoint-log").start()
        self._wait_for_endpoint()
        follow(self.faults, self.settings.endpoint_url, self.shutdown,
               lambda was, now: self.console.info(f"faults: {now.describe()} (were "
                                                  f"{was.describe()})"))

    def _endpoint_fault_args(self) -> list[str]:
        return ["--faults", self.faults.plan.to_json()]

    def _wait_for_endpoint(self) -> None:
        assert self.endpoint is not None
        probe = boto3.session.Session(
            aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1",
        ).client("sqs", endpoint_url=self.settings.endpoint_url, config=Config(
            retries={"max_attempts": 1}, connect_timeout=1, read_timeout=5))
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
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
                                        f"{READY_TIMEOUT_SECONDS:g} s") from None
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
        stage = self._with_results_stream(stage)
        description = discover(self.settings.project, self.settings.app_environment(stage))
        self.settings.check_functions(source.function for source in description.sources)
        self.stage = stage
        self._apply(description)

    def results_stream_arn(self, stage: Stage) -> str | None:
        """The results table's current stream, if it has one."""
        try:
            table = self.client("dynamodb").describe_table(
                TableName=stage.results_table)["Table"]
        except ClientError:
            return None
        enabled = table.get("StreamSpecification", {}).get("StreamEnabled")
        return str(table["LatestStreamArn"]) if enabled and table.get("LatestStreamArn") else None

    def _with_results_stream(self, stage: Stage) -> Stage:
        """The stage with RESULTS_STREAM_ARN set to the results table's stream (which
        exists only once the table does), for the app's import everywhere it happens."""
        arn = self.results_stream_arn(stage)
        if arn is None or stage.environment.get(RESULTS_STREAM_VARIABLE) == arn:
            return stage
        return dataclasses.replace(
            stage, environment={**stage.environment, RESULTS_STREAM_VARIABLE: arn})

    def _watch_results_stream(self) -> None:
        """Reload when the results table's stream changes (the table created anew, or its
        stream turned on or off), as a deploy would resolve the new ARN."""
        seen = self.stage.environment.get(RESULTS_STREAM_VARIABLE)
        while not self.shutdown.wait(STREAM_ARN_CHECK_SECONDS):
            now = self.results_stream_arn(self.stage)
            if now != seen and now != self.stage.environment.get(RESULTS_STREAM_VARIABLE):
                self.reload([f"the stream of {self.stage.results_table} ({now or 'none'})"])
            seen = now

    def _apply(self, description: AppDescription) -> None:
        self.generation += 1
        for name in description.unsupported:
            self.console.info(f"event source {name} is not run by the local runtime")
        wanted: dict[str, tuple[Source, FunctionSettings]] = {}
        for source in description.sources:
            if isinstance(source, DynamoDBStreamSource) and source.stream_arn is None:
                self.console.info(f"{source.function}: its DynamoDB stream ARN is empty (is "
                                  f"{RESULTS_STREAM_VARIABLE} set? the results table has no "
                                  "stream); not run until it has one")
                continue
            declared = source.maximum_concurrency if isinstance(source, SqsSource) else None
            function = self.settings.function(source.function, self.stage, declared)
            wanted[function.name] = (source, function)
        self._replace_pools(wanted)
        for name in list(self.running):
            current = self.running[name]
            if wanted.get(name) == (current.source, current.function):
                continue
            current.poller.stop()
            if isinstance(current.poller, StreamPoller) and not current.poller.join(
                    current.function.timeout_seconds + STOP_GRACE_SECONDS):
                self.console.info(f"{name}: a shard poller is still invoking; its batch "
                                  "will be read again")
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
                                    faults=self.faults,
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

    def _start_poller(self, source: Source,
                      function: FunctionSettings) -> Poller | StreamPoller:
        if isinstance(source, DynamoDBStreamSource | KinesisSource):
            return self._start_stream_poller(source, function)
        sqs = self.client("sqs")
        polling = LocalSqsClient(self.settings.endpoint_url, self.stage.region)
        common: dict[str, Any] = {"region": self.stage.region, "lanes": function.concurrency,
                                  "invoker": self.invoker, "console": self.console,
                                  "shutdown": self.shutdown}
        poller: Poller
        if isinstance(source, S3Source):
            queue = connect_s3_source(self.client("s3"), sqs, source, function.timeout_seconds,
                                      self.stage.region)
            faults = NotificationFaults(self.faults, function.name, polling, queue.url,
                                        self.console)
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

    def _start_stream_poller(self, source: StreamSource,
                             function: FunctionSettings) -> StreamPoller:
        reader: StreamReader
        if isinstance(source, KinesisSource):
            reader = KinesisReader(self.client("kinesis", POLLER_APP_ID), source.stream,
                                   self.stage.region,
                                   f"arn:aws:iam::{ACCOUNT_ID}:role/"
                                   f"{self.stage.app_name}-{self.stage.name}")
            name = source.stream
        else:
            assert source.stream_arn is not None
            reader = DynamoDBReader(self.client("dynamodbstreams", POLLER_APP_ID),
                                    source.stream_arn)
            name = source.stream_arn
        function_name = self.stage.function_name(function.name)
        declared = StreamOptions(batch_size=source.batch_size,
                                 batching_window_seconds=source.batching_window_seconds)
        mapping = StreamMappingReader(self.client("lambda"), function_name, reader.arn,
                                      declared, self.console)
        sqs = self.client("sqs")
        settler = BatchSettler(
            function.name, f"arn:aws:lambda:{self.stage.region}:{ACCOUNT_ID}:function:"
            f"{function_name}", reader, self.invoker, self.console, mapping.options,
            lambda arn: QueueDestination(sqs, arn), self.shutdown)
        poller = StreamPoller(
            function.name, reader, settler, mapping.options, source.starting_position,
            self.console, self.shutdown,
            checkpoints=self.checkpoints.setdefault(f"{function.name}|{name}", {}))
        poller.start()
        self.console.info(f"{function.name}: {source.handler} <- {source.kind} {name} "
                          f"(batch {source.batch_size}, window "
                          f"{source.batching_window_seconds} s, from "
                          f"{source.starting_position}); timeout "
                          f"{function.timeout_seconds:g} s")
        return poller

    def stream_activity(self) -> dict[str, int]:
        """Shards being read and batches handed over, over every stream source."""
        totals = {"shards": 0, "batches": 0}
        for running in list(self.running.values()):
            if isinstance(running.poller, StreamPoller):
                for key, value in running.poller.activity().items():
                    totals[key] += value
        return totals

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
        threading.Thread(target=self._watch_results_stream, daemon=True,
                         name="results-stream").start()
        DeadLetterWatch(self.client("sqs"), lambda: self.stage, self.console,
                        self.shutdown).start()
        if self.console.interactive:
            StatusBoard(self.console, self.invoker, self.client("sqs"), self.client("dynamodb"),
                        stage=lambda: self.stage, stop=self.shutdown,
                        streams=self.stream_activity).start()
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
        if not self.invoker.wait_idle(STOP_GRACE_SECONDS):
            self.console.info(f"{self.invoker.in_flight} invocation(s) still running after "
                              f"{STOP_GRACE_SECONDS:g} s; killing them")
        pools = [*self.invoker.pools().values(), *self.retired]
        for pool in pools:
            pool.retire()
        for pool in pools:
            pool.kill_all()
        self.stop_endpoint()
        self.console.info("stopped")
