"""The runtime's state folder: one runtime at a time, saved every few seconds and at a stop.

With `--state DIR` (as `make local` runs it) the endpoint restores the snapshot in DIR at
start (`localruntime.endpoint.state`) and the runtime asks it to save every
`SAVE_INTERVAL_SECONDS` (longer when a save takes long) and once more when it stops, so a
kill -9 loses what changed since the last save began. A lock on `DIR/lock`, held by the
runtime and inherited by its endpoint, keeps a second runtime off the same folder; runtimes
without `--state` (tests, benchmarks, the soak) take no lock and start empty.

The runtime's own state (a stream poller's position, say) travels in the same snapshot:
a room registers what it keeps with `RuntimeState.contribute(name, save)` and reads it
back, once restored, with `RuntimeState.restored(name)`; `save` returns JSON data.

    python -m localruntime.statefolder clean [DIR]     (make clean-state)
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import http.client
import json
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from localruntime.endpoint.state import CONTROL_PATH
from localruntime.log import Console

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_STATE_DIR = PROJECT_ROOT / ".localruntime-state"
LOCK_NAME = "lock"
SAVE_INTERVAL_SECONDS = 5.0
SAVE_TIMEOUT_SECONDS = 300.0
RESTORE_TIMEOUT_SECONDS = 300.0  # what a start waits for the endpoint's restore, at most


class StateFolderError(Exception):
    """The state folder cannot be used; the message says why and what to do."""


class RuntimeState:
    """What rooms of the runtime keep across a restart, by name (JSON data)."""

    def __init__(self, restored: dict[str, Any] | None = None) -> None:
        self._restored = dict(restored or {})
        self._savers: dict[str, Callable[[], Any]] = {}
        self._lock = threading.Lock()

    def contribute(self, name: str, save: Callable[[], Any]) -> None:
        with self._lock:
            self._savers[name] = save

    def restored(self, name: str) -> Any:
        """What `name` saved in the restored snapshot, or None."""
        with self._lock:
            return self._restored.get(name)

    def load(self, restored: dict[str, Any]) -> None:
        with self._lock:
            self._restored = dict(restored)

    def collect(self) -> dict[str, Any]:
        """Every contribution now; a name no room contributes again keeps what was restored."""
        with self._lock:
            savers = dict(self._savers)
            kept = dict(self._restored)
        return {**kept, **{name: save() for name, save in savers.items()}}


def _lock_holder(path: Path) -> str:
    try:
        pid = path.read_text().strip()
    except OSError:
        return "another runtime"
    return f"the runtime with pid {pid}" if pid else "another runtime"


def lock(directory: Path) -> int:
    """Take the folder's lock; returns its file descriptor (open for the runtime's life)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LOCK_NAME
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        raise StateFolderError(
            f"the state folder {directory} is in use by {_lock_holder(path)}: stop it "
            "first") from None
    os.ftruncate(descriptor, 0)
    os.write(descriptor, str(os.getpid()).encode())
    return descriptor


def _size(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


def clean(directory: Path) -> str:
    """Delete a state folder no runtime uses; returns what was done."""
    if not directory.exists():
        return f"{directory}: nothing saved"
    descriptor = lock(directory)
    try:
        size = _size(directory)
        shutil.rmtree(directory)
    finally:
        os.close(descriptor)
    return f"removed {directory} ({size / 1e6:.1f} MB): the next start begins empty"


class EndpointState:
    """The endpoint's state route (CONTROL_PATH): what was restored, and saves."""

    def __init__(self, endpoint_url: str) -> None:
        parts = urlsplit(endpoint_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80

    def _call(self, method: str, body: dict[str, Any] | None = None,
              query: str = "") -> dict[str, Any]:
        connection = http.client.HTTPConnection(self.host, self.port,
                                                timeout=SAVE_TIMEOUT_SECONDS)
        try:
            connection.request(method, CONTROL_PATH + query,
                               body=None if body is None else json.dumps(body),
                               headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            answer: dict[str, Any] = json.loads(response.read() or b"{}")
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise StateFolderError(f"the endpoint did not answer: {exc}") from exc
        finally:
            connection.close()
        if response.status != 200 or "error" in answer:
            raise StateFolderError(str(answer.get("error", f"HTTP {response.status}")))
        return answer

    def describe(self) -> dict[str, Any]:
        return self._call("GET")

    def save(self, runtime: dict[str, Any], final: bool = False) -> dict[str, Any]:
        """`final`: the last save; the endpoint then refuses requests that change state."""
        return self._call("POST", runtime, "?final=1" if final else "")


def _count(n: int, what: str) -> str:
    return f"{n:,} {what}" if n == 1 else f"{n:,} {what}s"


def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def restored_line(directory: Path, restored: dict[str, Any] | None, fresh: bool) -> str:
    where = f"saved in {directory} every {SAVE_INTERVAL_SECONDS:g} s and at a stop"
    if fresh:
        return f"state: starting empty (--fresh); {where}"
    if restored is None:
        return f"state: nothing saved yet, starting empty; {where}"
    summary = restored["summary"]
    saved_at = restored["saved_at"]
    when = datetime.fromtimestamp(saved_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    in_flight = (f" ({restored['released']:,} that were in flight visible again)"
                 if restored["released"] else "")
    return (f"state: restored from {directory} (saved {when}, {_ago(time.time() - saved_at)}) "
            f"in {restored['seconds']:.2f} s: "
            f"{_count(summary['object_versions'], 'object version')} "
            f"({summary['object_bytes'] / 1e6:,.1f} MB) in {_count(summary['buckets'], 'bucket')}"
            f", {_count(summary['messages'], 'message')} in {_count(summary['queues'], 'queue')}"
            f"{in_flight}, {_count(summary['items'], 'item')} in "
            f"{_count(summary['tables'], 'table')}, "
            f"{_count(summary['stream_records'], 'stream record')}")


@dataclass(frozen=True)
class Unfinished:
    """Messages still in the runtime's queues: work the next start resumes."""

    waiting: dict[str, int] = field(default_factory=dict)
    dead_letters: int = 0

    @property
    def total(self) -> int:
        return sum(self.waiting.values())


def unfinished(sqs: Any) -> Unfinished:
    """Messages (visible, in flight or delayed) in every queue that is no dead-letter queue."""
    counts: dict[str, int] = {}
    targets: set[str] = set()
    arns: dict[str, str] = {}
    for url in sqs.list_queues().get("QueueUrls", []):
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        name = url.rsplit("/", 1)[-1]
        arns[attributes["QueueArn"]] = name
        counts[name] = sum(int(attributes.get(f"ApproximateNumberOf{kind}", 0))
                           for kind in ("Messages", "MessagesNotVisible", "MessagesDelayed"))
        if attributes.get("RedrivePolicy"):
            targets.add(json.loads(attributes["RedrivePolicy"])["deadLetterTargetArn"])
    parked = {arns[arn] for arn in targets if arn in arns}
    return Unfinished(waiting={n: c for n, c in counts.items() if n not in parked and c},
                      dead_letters=sum(counts[n] for n in parked))


def stop_line(left: Unfinished, directory: Path | None, saved: bool) -> str:
    """What a stop left: `directory` is the state folder (None: no --state), `saved`
    whether the save at the stop worked."""
    dead = (f"; {_count(left.dead_letters, 'message')} in dead-letter queues"
            if left.dead_letters else "")
    if not left.total:
        return f"nothing unfinished{dead}"
    where = ", ".join(f"{count:,} in {name}" for name, count in sorted(left.waiting.items()))
    line = f"{_count(left.total, 'job')} unfinished ({where}){dead}"
    if directory is None:
        return f"{line}: not kept (the runtime ran without --state)"
    if not saved:
        return f"{line}: the save at the stop failed; the next start resumes from the last save"
    return f"{line}: saved in {directory}; they resume on the next start"


class StateFolder:
    """The runtime's side of `--state DIR`: the lock, the restored line, the saves."""

    def __init__(self, directory: Path, fresh: bool, console: Console) -> None:
        self.directory = directory
        self.fresh = fresh
        self.console = console
        self.runtime = RuntimeState()
        self._lock_descriptor: int | None = None
        self._endpoint: EndpointState | None = None
        self._last_error: str | None = None

    def acquire(self) -> int:
        """Lock the folder; the descriptor is passed to the endpoint, which keeps it."""
        self._lock_descriptor = lock(self.directory)
        return self._lock_descriptor

    def endpoint_args(self) -> list[str]:
        return ["--state", str(self.directory), *(["--fresh"] if self.fresh else [])]

    def started(self, endpoint_url: str, stop: threading.Event) -> None:
        """Say what was restored, hand the runtime its part, and save every interval."""
        self._endpoint = EndpointState(endpoint_url)
        restored = self._endpoint.describe()["restored"]
        if restored is not None:
            self.runtime.load(restored.get("runtime") or {})
        self.console.info(restored_line(self.directory, restored, self.fresh))
        threading.Thread(target=self._save_every_interval, args=(stop,), daemon=True,
                         name="state-saves").start()

    def _save_every_interval(self, stop: threading.Event) -> None:
        """A save every SAVE_INTERVAL_SECONDS, or, after a save that took longer than half
        of that, after twice its time: saving takes at most a third of one core."""
        wait = SAVE_INTERVAL_SECONDS
        while not stop.wait(wait):
            started = time.monotonic()
            self.save()
            wait = max(SAVE_INTERVAL_SECONDS, 2 * (time.monotonic() - started))

    def save(self, final: bool = False) -> dict[str, Any] | None:
        """Ask the endpoint to save; a failure is reported once, and the runtime goes on.
        `final`: the save at a stop, after which the endpoint takes no more changes."""
        assert self._endpoint is not None
        try:
            result = self._endpoint.save(self.runtime.collect(), final)
        except StateFolderError as exc:
            error = str(exc)
            if error != self._last_error:
                self.console.info(f"state: saving to {self.directory} failed: {error} "
                                  f"(trying again every {SAVE_INTERVAL_SECONDS:g} s)")
            self._last_error = error
            return None
        if self._last_error is not None:
            self.console.info(f"state: saving to {self.directory} works again")
        self._last_error = None
        return result

    def release(self) -> None:
        if self._lock_descriptor is not None:
            with contextlib.suppress(OSError):
                os.close(self._lock_descriptor)
            self._lock_descriptor = None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localruntime.statefolder",
                                     description="the local runtime's state folder")
    parser.add_argument("command", choices=["clean"])
    parser.add_argument("directory", nargs="?", type=Path, default=DEFAULT_STATE_DIR)
    args = parser.parse_args(argv)
    try:
        print(f"clean-state: {clean(args.directory)}")
    except StateFolderError as exc:
        print(f"clean-state: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
