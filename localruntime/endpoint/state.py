"""The endpoint's state on disk: every moto backend in one snapshot that the next start restores.

    <state dir>/snapshot         a header line (JSON: stamp, summary, the runtime's own state,
                                 the payload's size and SHA-256), then one pickle of the backends
    <state dir>/bodies/<etag>-<size>   each object body once, written when first saved

moto's backends pickle, except where this module steps in:
- an SQS queue holds a lock (`Condition`): saved without it, it gets a new one;
- an S3 object's body is saved as a file of its own, once, not inside every snapshot;
- a bucket's key store hands pickle only the newest version of each key (the older ones
  would be lost): it is saved with every version;
- a DynamoDB item's attribute map checks the item's size on every key it gets back
  (quadratic: 10,000 records took seconds): it is rebuilt without the check, as moto's own
  deepcopy does; an attribute value is saved as its type and value only;
- Lambda's index of functions by ARN is a `WeakValueDictionary`: saved as the mapping it
  holds; its aliases are a `defaultdict` made by `lambda: {}`: saved with `dict` instead.

A snapshot is written by a forked child of the endpoint, which sees the backends as they
were at the fork, while no request was half done (the fork happens under the endpoint's
request lock): pickling 10,000 records takes about a second, which would otherwise stall
every request. The child writes to a temporary file and renames it, so a snapshot is
whole or absent. Nothing changed since the last one (by requests that can change state)
means nothing is written.

A snapshot is tied to moto's version and to the endpoint's code (`stamp`); a restore
refuses another stamp, or a payload that does not match its checksum, with a message
that says how to start empty instead.

At a restore, messages that an SQS receive had made invisible (held by an invocation of
the runtime that saved them, which is gone) become visible again at once; a visibility
that ChangeMessageVisibility set (a retry delay) and delays keep their wall-clock deadline.
"""

from __future__ import annotations

import copyreg
import gc
import hashlib
import importlib
import importlib.metadata
import io
import json
import os
import pickle
import shutil
import sys
import tempfile
import threading
import time
import weakref
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localruntime.endpoint.motoguard import replaced

FORMAT = 1
SNAPSHOT_NAME = "snapshot"
BODIES_NAME = "bodies"
CONTROL_PATH = "/_localruntime/state"
ENDPOINT_ROOM = Path(__file__).resolve().parent
READ_BLOCK = 8 * 1024 * 1024
# Requests that never change what a snapshot holds (a JSON-protocol action's prefix).
_READ_ONLY_ACTIONS = ("Get", "List", "Describe", "Query", "Scan", "BatchGet")
_HELD_UNTIL = "_localruntime_held_until"
FRESH_HINT = ("start empty with `make local FRESH=1` (`python -m localruntime --fresh`), which "
              "replaces it at the first save, or delete it with `make clean-state`")


class StateError(Exception):
    """The saved state cannot be restored; the message says why and how to start empty."""


def stamp() -> dict[str, Any]:
    """What a snapshot is tied to: its format, moto's version, Python's, the endpoint's code."""
    digest = hashlib.sha256()
    for path in sorted(ENDPOINT_ROOM.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return {"format": FORMAT, "moto": importlib.metadata.version("moto"),
            "python": f"{sys.version_info.major}.{sys.version_info.minor}",
            "endpoint_code": digest.hexdigest()[:16]}


# ---- what pickle cannot do alone ------------------------------------------------------

@dataclass(frozen=True)
class _Body:
    """A reference to an object body file, pickled by name (`persistent_id`)."""

    name: str


def _restore_key(cls: type, state: dict[str, Any], body: Path | None) -> Any:
    key = cls.__new__(cls)
    key.__dict__.update(state)
    key.lock = threading.Lock()
    key._value_buffer = tempfile.SpooledTemporaryFile(  # noqa: SIM115 - the key owns it
        max_size=key._max_buffer_size)
    if body is not None:
        with body.open("rb") as source:
            shutil.copyfileobj(source, key._value_buffer, READ_BLOCK)
    return key


def _restore_queue(cls: type, state: dict[str, Any]) -> Any:
    queue = cls.__new__(cls)
    queue.__dict__.update(state)
    queue._messages_lock = threading.Condition()
    return queue


def _restore_versions(cls: type, lists: dict[str, list[Any]]) -> Any:
    store = cls.__new__(cls)
    dict.update(store, lists)
    return store


def _restore_weak_values(items: dict[Any, Any]) -> weakref.WeakValueDictionary[Any, Any]:
    return weakref.WeakValueDictionary(items)


def _reduce_defaultdict(d: defaultdict[Any, Any]) -> tuple[Any, ...]:
    factory = d.default_factory
    if factory is not None and "<" in getattr(factory, "__qualname__", ""):
        made = factory()  # a lambda or local function: pickle cannot name it
        if type(made) not in (dict, list, set) or made:
            raise pickle.PicklingError(f"defaultdict factory {factory.__qualname__} makes "
                                       f"{made!r}, not an empty dict, list or set")
        factory = type(made)
    return defaultdict, (factory, dict(d))


def _restore_attributes(cls: type, items: dict[str, Any]) -> Any:
    attributes = cls.__new__(cls)
    dict.update(attributes, items)
    return attributes


def _restore_value(cls: type, kind: str, value: Any) -> Any:
    attribute = cls.__new__(cls)
    attribute.type = kind
    attribute.value = value
    return attribute


def _body_name(key: Any) -> str | None:
    """`<etag>-<size>`, or None for a key whose body is gone (deleted, buffer closed)."""
    if key._value_buffer.closed:
        return None
    if key._etag is None:  # moto's `etag` would read through the file position
        digest = hashlib.md5(usedforsecurity=False)
        for block in _read_body(key):
            digest.update(block)
        return f"{digest.hexdigest()}-{key.contentsize}"
    return f"{key._etag.strip(chr(34))}-{key.contentsize}"


def _read_body(key: Any) -> Iterator[bytes]:
    """A key's body, without moving the file position its endpoint shares with this child."""
    buffer = key._value_buffer._file
    if isinstance(buffer, io.BytesIO):
        yield buffer.getvalue()
        return
    descriptor, offset = buffer.fileno(), 0
    while block := os.pread(descriptor, READ_BLOCK, offset):
        yield block
        offset += len(block)


class _Pickler(pickle.Pickler):
    def __init__(self, file: Any, bodies: dict[str, Any]) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.bodies = bodies
        from moto.dynamodb.models.dynamo_type import DynamoType, LimitedSizeDict
        from moto.s3.models import FakeKey
        from moto.s3.utils import _VersionedKeyStore
        from moto.sqs.models import Queue
        table = copyreg.dispatch_table.copy()
        table[FakeKey] = self._reduce_key
        table[Queue] = lambda q: (_restore_queue, (type(q), _without(q, "_messages_lock")))
        table[_VersionedKeyStore] = lambda s: (_restore_versions, (type(s), {
            name: s.getlist(name) for name in dict.keys(s)}))
        table[defaultdict] = _reduce_defaultdict
        table[weakref.WeakValueDictionary] = lambda d: (_restore_weak_values, (dict(d),))
        table[LimitedSizeDict] = lambda d: (_restore_attributes, (type(d), dict(d)))
        table[DynamoType] = lambda v: (_restore_value, (type(v), v.type, v.value))
        self.dispatch_table = table

    def _reduce_key(self, key: Any) -> tuple[Any, ...]:
        name = _body_name(key)
        if name is not None:
            self.bodies.setdefault(name, key)
        state = _without(key, "_value_buffer", "lock")
        return _restore_key, (type(key), state, None if name is None else _Body(name))

    def persistent_id(self, obj: Any) -> Any:
        return ("body", obj.name) if type(obj) is _Body else None


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: Any, bodies: Path) -> None:
        super().__init__(file)
        self.bodies = bodies

    def persistent_load(self, pid: Any) -> Any:
        kind, name = pid
        path = self.bodies / name
        if kind != "body" or not path.is_file():
            raise StateError(f"object body {path} is missing")
        return path


def _without(obj: Any, *names: str) -> dict[str, Any]:
    return {k: v for k, v in obj.__dict__.items() if k not in names}


# ---- the backends -----------------------------------------------------------------------

def _backend_dicts() -> list[tuple[str, str, Any]]:
    """(module, attribute, BackendDict) of every backend moto has created so far."""
    from moto.core.base_backend import BackendDict
    found = []
    for backends in BackendDict._instances:
        module = sys.modules[backends.backend.__module__]
        for name, value in vars(module).items():
            if value is backends:
                found.append((module.__name__, name, backends))
                break
    return found


def _collect() -> dict[tuple[str, str], dict[str, dict[str, Any]]]:
    return {(module, name): {account: dict(regions) for account, regions in backends.items()}
            for module, name, backends in _backend_dicts()}


def _install(saved: dict[tuple[str, str], dict[str, dict[str, Any]]]) -> None:
    for (module, name), accounts in saved.items():
        backends = getattr(importlib.import_module(module), name)
        for account, regions in accounts.items():
            for region, backend in regions.items():
                backends[account][region] = backend


def summarize(saved: dict[tuple[str, str], dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """What the user cares about: objects, messages, items, stream records."""
    counts = {"buckets": 0, "object_versions": 0, "object_bytes": 0, "queues": 0,
              "messages": 0, "messages_in_flight": 0, "tables": 0, "items": 0,
              "streams": 0, "stream_records": 0}
    now_ms = time.time() * 1000
    for (module, _), accounts in saved.items():
        for regions in accounts.values():
            for backend in regions.values():
                if module == "moto.s3.models":
                    for bucket in backend.buckets.values():
                        counts["buckets"] += 1
                        for _, versions in bucket.keys.iterlists():
                            for key in versions:
                                if hasattr(key, "contentsize"):
                                    counts["object_versions"] += 1
                                    counts["object_bytes"] += key.contentsize
                elif module == "moto.sqs.models":
                    for queue in backend.queues.values():
                        counts["queues"] += 1
                        counts["messages"] += len(queue._messages)
                        counts["messages_in_flight"] += sum(
                            m.visible_at > now_ms for m in queue._messages)
                elif module == "moto.dynamodb.models":
                    for table in backend.tables.values():
                        counts["tables"] += 1
                        counts["items"] += len(table)
                elif module == "moto.kinesis.models":
                    for stream in backend.streams.values():
                        counts["streams"] += 1
                        counts["stream_records"] += sum(len(shard.records)
                                                        for shard in stream.shards.values())
    return counts


def release_held_messages(saved: dict[tuple[str, str], dict[str, dict[str, Any]]]) -> int:
    """Make visible every message a receive had made invisible; returns how many."""
    released = 0
    now_ms = time.time() * 1000
    for regions in saved.get(("moto.sqs.models", "sqs_backends"), {}).values():
        for backend in regions.values():
            for queue in backend.queues.values():
                for message in queue._messages:
                    held = getattr(message, _HELD_UNTIL, None)
                    if held is not None and held == message.visible_at > now_ms:
                        message.visible_at = 0.0
                        queue._pending_messages.discard(message)
                        released += 1
    return released


def mark_held_messages() -> None:
    """Remember the deadline a receive sets, to tell it from a retry delay at a restore."""
    from moto.sqs.models import Message

    original = replaced(Message, "mark_received", ("self", "visibility_timeout"))

    def mark_received(self: Any, visibility_timeout: int | None = None) -> None:
        original(self, visibility_timeout)
        setattr(self, _HELD_UNTIL, self.visible_at)

    Message.mark_received = mark_received


# ---- the snapshot file ------------------------------------------------------------------

@dataclass
class Saved:
    """A snapshot read back: when, what, and the runtime's own state."""

    saved_at: float
    summary: dict[str, Any]
    runtime: dict[str, Any]
    released: int = 0
    seconds: float = 0.0


def _read_header(path: Path) -> tuple[dict[str, Any], int]:
    with path.open("rb") as file:
        line = file.readline(1 << 20)
    try:
        header = json.loads(line)
        if not isinstance(header, dict) or "stamp" not in header:
            raise ValueError("no stamp")
    except ValueError as exc:
        raise StateError(f"{path} is not a snapshot the local runtime wrote ({exc})") from None
    return header, len(line)


def read_runtime_state(directory: Path) -> dict[str, Any] | None:
    """The header of the snapshot in `directory`, or None when there is none."""
    path = directory / SNAPSHOT_NAME
    if not path.is_file():
        return None
    return _read_header(path)[0]


def restore(directory: Path, fresh_hint: str = FRESH_HINT) -> Saved | None:
    """Load the snapshot in `directory` into moto; None when there is none."""
    path = directory / SNAPSHOT_NAME
    if not path.is_file():
        return None
    started = time.monotonic()
    header, offset = _read_header(path)
    expected = stamp()
    if header["stamp"] != expected:
        differs = ", ".join(f"{name} {header['stamp'].get(name)!r} (now {value!r})"
                            for name, value in expected.items()
                            if header["stamp"].get(name) != value)
        raise StateError(f"the state in {directory} was saved by another version of the "
                         f"endpoint: {differs}. It cannot be restored; {fresh_hint}")
    with path.open("rb") as file:
        file.seek(offset)
        payload = file.read()
    if (len(payload) != header.get("payload_bytes")
            or hashlib.sha256(payload).hexdigest() != header.get("payload_sha256")):
        raise StateError(f"the state in {path} is damaged ({len(payload)} bytes, "
                         f"{header.get('payload_bytes')} written, checksum differs); "
                         f"{fresh_hint}")
    enabled = gc.isenabled()
    gc.disable()  # a pickle of many small objects would trigger a collection every 700
    try:
        saved = _Unpickler(io.BytesIO(payload), directory / BODIES_NAME).load()
    except StateError as exc:
        raise StateError(f"the state in {directory} is incomplete: {exc}; {fresh_hint}") from None
    except Exception as exc:  # noqa: BLE001 - any failure to rebuild is reported the same
        raise StateError(f"the state in {path} cannot be read ({type(exc).__name__}: {exc}); "
                         f"{fresh_hint}") from None
    finally:
        if enabled:
            gc.enable()
    summary = summarize(saved)
    released = release_held_messages(saved)
    _install(saved)
    return Saved(saved_at=float(header.get("saved_at", 0)), summary=summary,
                 runtime=header.get("runtime") or {}, released=released,
                 seconds=time.monotonic() - started)


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _write_atomically(path: Path, chunks: Iterator[bytes] | list[bytes]) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with temporary.open("wb") as file:
        for chunk in chunks:
            file.write(chunk)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)


def write_snapshot(directory: Path, runtime: dict[str, Any]) -> dict[str, Any]:
    """Pickle every backend into `directory`; returns the summary. Run it where nothing
    changes the backends meanwhile (a forked child)."""
    started = time.monotonic()
    bodies_dir = directory / BODIES_NAME
    bodies_dir.mkdir(parents=True, exist_ok=True)
    saved = _collect()
    keys: dict[str, Any] = {}
    buffer = io.BytesIO()
    _Pickler(buffer, keys).dump(saved)
    payload = buffer.getbuffer()
    existing = {p.name for p in bodies_dir.iterdir() if not p.name.startswith(".")}
    new = [name for name in keys if name not in existing]
    for name in new:
        _write_atomically(bodies_dir / name, _read_body(keys[name]))
    summary = summarize(saved)
    header = {"stamp": stamp(), "saved_at": time.time(), "summary": summary,
              "runtime": runtime, "payload_bytes": len(payload),
              "payload_sha256": hashlib.sha256(payload).hexdigest()}
    _write_atomically(directory / SNAPSHOT_NAME,
                      [json.dumps(header).encode() + b"\n", payload])
    _fsync_directory(bodies_dir)
    _fsync_directory(directory)
    for name in existing - keys.keys():
        (bodies_dir / name).unlink(missing_ok=True)
    return {**summary, "snapshot_bytes": len(payload), "new_bodies": len(new),
            "new_body_bytes": sum(keys[name].contentsize for name in new),
            "seconds": round(time.monotonic() - started, 3)}


# ---- in the endpoint: when to save, and the route the runtime asks through --------------

def may_change(environ: dict[str, Any]) -> bool:
    """Whether a request can change what a snapshot holds (by its action or method)."""
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target:
        action = target.rsplit(".", 1)[-1]
        return action == "ReceiveMessage" or not action.startswith(_READ_ONLY_ACTIONS)
    return environ.get("REQUEST_METHOD") not in ("GET", "HEAD")


@dataclass
class StateKeeper:
    """Saves the endpoint's state into `directory` when the runtime asks (CONTROL_PATH),
    skipping a save when no request could have changed anything since the last one."""

    directory: Path
    request_lock: Any
    restored: Saved | None = None
    changes: int = 0
    closed: bool = False
    _saved_changes: int = -1
    _saved_runtime: Any = None
    _saving: threading.Lock = field(default_factory=threading.Lock)

    def note(self, environ: dict[str, Any], body: list[bytes]) -> None:
        """Count a request that may have changed state."""
        if not may_change(environ):
            return
        if environ.get("HTTP_X_AMZ_TARGET", "").endswith(".ReceiveMessage") and not any(
                b'"Messages"' in chunk for chunk in body):
            return
        self.changes += 1

    def guard(self, application: Callable[..., Any]) -> Callable[..., Any]:
        """`application`, refusing requests that may change state once the last save is
        taken (`save(final=True)`): what the endpoint accepts after it would be lost. Runs
        inside the request lock, so no request slips between the save and the refusal."""

        def call(environ: dict[str, Any], start_response: Any) -> Any:
            if self.closed and may_change(environ):
                body = (b"<Error><Code>ServiceUnavailable</Code><Message>the local runtime is "
                        b"stopping</Message></Error>")
                start_response("503 Service Unavailable", [
                    ("Content-Type", "application/xml"), ("Content-Length", str(len(body)))])
                return [body]
            return application(environ, start_response)

        return call

    def save(self, runtime: dict[str, Any], final: bool = False) -> dict[str, Any]:
        with self._saving:
            with self.request_lock:
                changes = self.changes
                self.closed = self.closed or final
                if changes == self._saved_changes and runtime == self._saved_runtime:
                    return {"saved": False}
                started = time.monotonic()
                reader, writer = os.pipe()
                pid = os.fork()
                if pid == 0:  # the child: a consistent copy of the backends
                    os.close(reader)
                    _child_save(self.directory, runtime, writer)
                paused = time.monotonic() - started
            os.close(writer)
            with os.fdopen(reader, "rb") as pipe:
                answer = pipe.read()
            _, status = os.waitpid(pid, 0)
            try:
                result = json.loads(answer)
            except ValueError:
                result = {"error": f"the snapshot process ended with status {status}"}
            if "error" in result:
                return {"saved": False, **result}
            self._saved_changes = changes
            self._saved_runtime = runtime
            return {"saved": True, "paused_ms": round(paused * 1000, 2), **result}

    def describe(self) -> dict[str, Any]:
        if self.restored is None:
            return {"directory": str(self.directory), "restored": None}
        saved = self.restored
        return {"directory": str(self.directory),
                "restored": {"saved_at": saved.saved_at, "summary": saved.summary,
                             "released": saved.released, "seconds": round(saved.seconds, 3),
                             "runtime": saved.runtime}}


def _child_save(directory: Path, runtime: dict[str, Any], writer: int) -> None:
    gc.disable()
    try:
        result: dict[str, Any] = write_snapshot(directory, runtime)
    except BaseException as exc:  # noqa: BLE001 - the parent reports it; the child must end
        result = {"error": f"{type(exc).__name__}: {exc}"}
    try:
        os.write(writer, json.dumps(result).encode())
    finally:
        os._exit(0)


class StateApp:
    """moto's application with the state routes in front: GET CONTROL_PATH describes what
    was restored; POST CONTROL_PATH (body: the runtime's own state, JSON) saves, and
    POST CONTROL_PATH?final=1 saves for the last time (`StateKeeper.guard`)."""

    def __init__(self, application: Callable[..., Any], keeper: StateKeeper) -> None:
        self.application = application
        self.keeper = keeper

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO") == CONTROL_PATH:
            return self._control(environ, start_response)
        body = list(self.application(environ, start_response))
        self.keeper.note(environ, body)
        return body

    def _control(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        method = environ.get("REQUEST_METHOD")
        if method == "GET":
            return _json(start_response, "200 OK", self.keeper.describe())
        if method != "POST":
            return _json(start_response, "405 Method Not Allowed", {"error": "GET or POST"})
        length = int(environ.get("CONTENT_LENGTH") or 0)
        try:
            runtime = json.loads(environ["wsgi.input"].read(length) or b"{}")
        except ValueError as exc:
            return _json(start_response, "400 Bad Request", {"error": f"not JSON: {exc}"})
        final = "final=1" in environ.get("QUERY_STRING", "")
        result = self.keeper.save(runtime if isinstance(runtime, dict) else {}, final=final)
        status = "500 Internal Server Error" if "error" in result else "200 OK"
        return _json(start_response, status, result)


def _json(start_response: Any, status: str, data: Any) -> list[bytes]:
    body = json.dumps(data).encode()
    start_response(status, [("Content-Type", "application/json"),
                            ("Content-Length", str(len(body)))])
    return [body]
