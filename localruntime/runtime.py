"""The runtime: endpoint, provisioning, event sources, handler pools, reload and shutdown."""

from __future__ import annotations

import dataclasses
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import IO, Any
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from localruntime.children import spawn
from localruntime.console.apiserver import ApiServer, ApiServerError
from localruntime.console.dlqwatch import DeadLetterWatch
from localruntime.console.stagewatch import StageWatch
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
    s3_source_connected,
)
from localruntime.statefolder import (
    RESTORE_TIMEOUT_SECONDS,
    StateFolder,
    StateFolderError,
    stop_line,
    unfinished,
)
from logctl.provision import provision
from logctl.stage import (
    RuntimeRecord,
    Stage,
    read_runtime_record,
    remove_endpoint_file,
    write_endpoint_file,
)

READY_TIMEOUT_SECONDS = 30.0
READY_POLL_SECONDS = 0.05
RELOAD_POLL_SECONDS = 1.0
RELOAD_SETTLE_SECONDS = 0.3
STREAM_ARN_CHECK_SECONDS = 2.0
# The results table's stream, which the app's DynamoDB stream handler reads at import.
RESULTS_STREAM_VARIABLE = "RESULTS_STREAM_ARN"
# moto's default account; the runtime's functions and roles live in it.
ACCOUNT_ID = "123456789012"


class ReloadError(Exception):
    """The new code did not start; the previous code keeps running."""


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
        self.token = secrets.token_hex(16)
        self._record: RuntimeRecord | None = None
        self._api_exit_seen: int | None = None
        self.state_folder = (StateFolder(settings.state_dir, settings.fresh, console)
                             if settings.state_dir is not None else None)

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
        state_args, state_fds = self._state_folder_args()
        self.endpoint = spawn(
            [sys.executable, "-m", "localruntime.endpoint.server", "--host", host,
             "--port", str(port),
             "--exit-with-parent", *self._endpoint_fault_args(), *state_args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True, pass_fds=state_fds)
        assert self.endpoint.stdout is not None
        threading.Thread(target=_forward, args=(self.endpoint.stdout, self.console),
                         daemon=True, name="endpoint-log").start()
        self._wait_for_endpoint()
        follow(self.faults, self.settings.endpoint_url, self.shutdown,
               lambda was, now: self.console.info(f"faults: {now.describe()} (were "
                                                  f"{was.describe()})"))
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
        return ["--faults", self.faults.plan.to_json()]

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

    def bind_api(self) -> None:
        """Hold the API port (with --api-port); `load` puts `chalice local` behind it."""
        port = self.settings.api_port
        if port is None:
            return
        try:
            self.api = ApiServer(self.settings.project, self.stage.name, self.settings.host,
                                 port, self.console, self.token)
        except ApiServerError as exc:
            raise RuntimeStartError(str(exc)) from None

    # ---- event sources and handler pools ---------------------------------------------

    def load(self) -> None:
        """Read the stage and the app; only if both are sound, provision the stage, serve
        every event source the app declares, and put its routes behind the API port.

        Raises SettingsError (the config), DiscoveryError (the app does not import) before
        anything changes; ApiServerError when only `chalice local` failed to start.
        """
        stage = self._with_results_stream(self.settings.stage())
        description = discover(self.settings.project, self.settings.app_environment(stage))
        self.settings.check_functions(source.function for source in description.sources)
        backend = None
        previous = self.stage
        try:
            for action in provision(stage).actions:
                self.console.info(f"provision[{stage.name}]: {action}")
            resolved = self._with_results_stream(stage)
            if resolved is not stage:  # the table and its stream exist only now
                stage = resolved
                description = discover(self.settings.project,
                                       self.settings.app_environment(stage))
            backend = (self.api.launch(self.settings.app_environment(stage))
                       if self.api is not None else None)
            self.stage = stage
            self._apply(description)
        except BaseException:
            self.stage = previous
            if backend is not None:
                backend.stop()
            raise
        if self.api is not None and backend is not None:
            self.api.take(backend)

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
        """Reload when the results table has a new stream (the table created anew, or its
        stream turned on again), as a deploy would resolve the new ARN. A stream that is gone
        (the stage destroyed) reloads nothing: a reload would provision the stage again,
        and a destroyed stage stays destroyed until it is deployed."""
        seen = self.stage.environment.get(RESULTS_STREAM_VARIABLE)
        while not self.shutdown.wait(STREAM_ARN_CHECK_SECONDS):
            now = self.results_stream_arn(self.stage)
            if (now is not None and now != seen
                    and now != self.stage.environment.get(RESULTS_STREAM_VARIABLE)):
                self.reload([f"the stream of {self.stage.results_table} ({now})"])
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
        replaced: dict[str, StreamPoller] = {}
        for name in list(self.running):
            current = self.running[name]
            if wanted.get(name) == (current.source, current.function):
                continue
            current.poller.stop()
            if isinstance(current.poller, StreamPoller):
                replaced[name] = current.poller
                if not current.poller.join(
                        current.function.timeout_seconds + self.settings.stop_grace_seconds):
                    self.console.info(f"{name}: a shard poller is still invoking; the new "
                                      "one reads its shard once it ends")
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
                self.running[name] = _Running(source, function, self._start_poller(
                    source, function, after=replaced.get(name)))

    def _replace_pools(self, wanted: dict[str, tuple[Source, FunctionSettings]]) -> None:
        """New warm processes for every function, then the swap. At a reload, if a
        function's new processes all fail to import the app (it changed again while they
        started), nothing is swapped: the previous processes keep serving."""
        pools = {name: FunctionPool(function, source.handler, self.settings.project,
                                    self.settings.handler_environment(self.stage, function),
                                    self.console, self.generation,
                                    faults=self.faults,
                                    enforce_memory=self.settings.enforce_memory)
                 for name, (source, function) in wanted.items()}
        init_times = {name: pool.warm() for name, pool in pools.items()}
        broken = [pool for name, pool in pools.items()
                  if not init_times[name] and self.invoker.pools().get(name) is not None]
        if broken:
            for pool in pools.values():
                pool.kill_all()
            raise ReloadError(broken[0].init_error or f"{broken[0].function.name}: no "
                              "process started")
        for name, pool in pools.items():
            previous = self.invoker.set_pool(name, pool)
            if previous is not None:
                self._retire(previous)
            cold = ", ".join(f"{t:.0f}" for t in init_times[name]) or "none ready"
            self.console.info(f"{name}: {pool.function.concurrency} warm process(es), pids "
                              f"{', '.join(map(str, pool.pids()))}; cold start (import) ms: "
                              f"{cold}")

    def _retire(self, pool: FunctionPool) -> None:
        self.retired = [p for p in self.retired if p.pids()] + [pool]
        threading.Thread(target=pool.retire, daemon=True, name="retire").start()

    def _start_poller(self, source: Source, function: FunctionSettings,
                      after: StreamPoller | None = None) -> Poller | StreamPoller:
        """`after`: the stream poller this one replaces (it must end before this one reads)."""
        if isinstance(source, DynamoDBStreamSource | KinesisSource):
            return self._start_stream_poller(source, function, after)
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

    def _start_stream_poller(self, source: StreamSource, function: FunctionSettings,
                             after: StreamPoller | None) -> StreamPoller:
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
            checkpoints=self.checkpoints.setdefault(f"{function.name}|{name}", {}),
            after=after)
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
            except ApiServerError as exc:
                self.console.info(f"reload: the handlers run the new code, but the API did "
                                  f"not start with it ({exc}); the previous code keeps "
                                  "serving the API until the next save")
                return
            except Exception as exc:  # noqa: BLE001 - a broken edit must not stop the runtime
                what = exc.summary if isinstance(exc, DiscoveryError) else str(exc)
                self.console.info(f"reload failed: {what}; the previous code keeps running "
                                  "(handlers" + (" and API)" if self.api else ")"))
                return
            self.console.info("reloaded")

    # ---- the stage under the runtime: deleted and recreated by operator commands ---------

    def _stage_missing(self) -> tuple[list[str], list[str]]:
        """(stage resources missing, the runtime's wiring missing); two calls when all is
        there: the jobs queue, and each S3 source's notification."""
        stage, s3, sqs = self.stage, self.client("s3"), self.client("sqs")
        sources = [r.source for r in self.running.values() if isinstance(r.source, S3Source)]
        try:
            sqs.get_queue_url(QueueName=stage.jobs_queue)
            unwired = [f"the notification of s3://{source.bucket} to {source.function}"
                       for source in sources if not s3_source_connected(s3, source)]
            return [], unwired
        except ClientError:
            pass
        return self._stage_resources_missing(stage), []

    def _stage_resources_missing(self, stage: Stage) -> list[str]:
        s3, sqs, ddb = self.client("s3"), self.client("sqs"), self.client("dynamodb")
        missing = []
        probes: list[tuple[str, Callable[[], Any]]] = [
            (f"bucket {stage.bucket}", lambda: s3.head_bucket(Bucket=stage.bucket)),
            *((f"queue {name}", lambda name=name: sqs.get_queue_url(QueueName=name))
              for name in (stage.jobs_queue, stage.dead_letter_queue)),
            *((f"table {name}", lambda name=name: ddb.describe_table(TableName=name))
              for name in (stage.results_table, stage.stats_table))]
        for what, probe in probes:
            try:
                probe()
            except ClientError:
                missing.append(what)
        return missing

    def _reconnect(self) -> None:
        with self._reload_lock:
            for running in list(self.running.values()):
                if isinstance(running.source, S3Source):
                    connect_s3_source(self.client("s3"), self.client("sqs"), running.source,
                                      running.function.timeout_seconds, self.stage.region)

    # ---- run and stop ------------------------------------------------------------------

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.shutdown.set()

    def run(self) -> int:
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        try:
            self.check_endpoint_file()
            self.bind_api()
            self.start_endpoint()
            self.load()
            if self.api is not None:
                if not self.api.own():
                    raise RuntimeStartError(f"{self.api.url} does not answer with this run's "
                                            "token: another server answers on that port")
                self.console.info(f"dashboard and results API on {self.api.url}")
        except (RuntimeStartError, SettingsError, ApiServerError, DiscoveryError) as exc:
            self.console.info(str(exc))
            self.stop()
            return 1
        except (BotoCoreError, ClientError) as exc:
            self.console.info(f"setting up the stage failed: {exc}")
            self.stop()
            return 1
        self.write_endpoint_file()
        if self.settings.reload:
            threading.Thread(target=self._watch, daemon=True, name="reload").start()
        threading.Thread(target=self._watch_results_stream, daemon=True,
                         name="results-stream").start()
        DeadLetterWatch(self.client("sqs"), lambda: self.stage, self.console,
                        self.shutdown).start()
        StageWatch(self.stage.name, self._stage_missing, self._reconnect, self.console,
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
            self._revive_api()
        self.stop()
        return status

    def _revive_api(self) -> None:
        """A `chalice local` that died is started again, once per death."""
        if self.api is None:
            return
        exited = self.api.backend_exited()
        if exited is None or exited == self._api_exit_seen:
            return
        with self._reload_lock:
            self._api_exit_seen = exited
            self.console.info(f"chalice local exited (status {exited}); starting it again")
            try:
                self.api.start(self.settings.app_environment(self.stage))
            except ApiServerError as exc:
                self.console.info(f"the API did not start again ({exc}); it answers 502 "
                                  "until the next save reloads it")
                return
            self._api_exit_seen = None

    # ---- the endpoint file: which runtime the project's tools reach ----------------------

    def check_endpoint_file(self) -> None:
        """Refuse to start beside this checkout's running runtime (the tools follow its
        endpoint file: a second one would take them over)."""
        path = self.settings.endpoint_file
        if path is None:
            return
        found = read_runtime_record(path)
        if found is None:
            return
        endpoint = urlsplit(found.endpoint_url)
        listening = port_in_use(endpoint.hostname or self.settings.host, endpoint.port or 80)
        if found.alive() and listening and found.pid != os.getpid():
            api = f", API {found.api_url}" if found.api_url else ""
            raise RuntimeStartError(
                f"a local runtime of this checkout is already running (pid {found.pid}, "
                f"endpoint {found.endpoint_url}{api}; see {path.name}): the project's tools "
                "follow it, so a second one would cross them over. Stop it first, or start "
                "this one without --endpoint-file")
        self.console.info(f"{path.name} names a runtime that is gone "
                          f"({found.endpoint_url}); it is replaced once this one is ready")

    def write_endpoint_file(self) -> None:
        """Once the endpoint and the API port are this runtime's: the tools may follow it."""
        path = self.settings.endpoint_file
        if path is None:
            return
        self._record = RuntimeRecord(self.settings.endpoint_url, os.getpid(),
                                     self.api.url if self.api is not None else None,
                                     self.token)
        write_endpoint_file(self._record, path)

    def remove_endpoint_file(self) -> None:
        if self.settings.endpoint_file is not None and self._record is not None:
            remove_endpoint_file(self._record, self.settings.endpoint_file)
            self._record = None

    def stop(self) -> None:
        """Stop receiving, let in-flight invocations finish, then stop every process."""
        self.shutdown.set()
        self.console.clear_status()
        self.remove_endpoint_file()
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
