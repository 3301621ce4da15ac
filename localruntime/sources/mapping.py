"""What the deployed event source mappings say: for SQS, about partial batch responses;
for streams, every setting Lambda reads (`StreamMappingReader`).

Lambda reads a returned `batchItemFailures` only when the mapping has
`FunctionResponseTypes: ["ReportBatchItemFailures"]`; otherwise any normal return deletes
the whole batch. The runtime reads the mapping that `chalice deploy` (and
`logctl provision --post-deploy`) created in the endpoint, again every few seconds, so
a change to the mapping takes effect as it would in AWS. With no mapping in the endpoint
(nothing deployed), the runtime acts as the mapping `chalice deploy` creates: without
ReportBatchItemFailures.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from localruntime.log import Console
from localruntime.sources.streams import StreamOptions

REPORT_BATCH_ITEM_FAILURES = "ReportBatchItemFailures"
REFRESH_SECONDS = 2.0
T = TypeVar("T")


def reports_item_failures(mappings: list[dict[str, Any]]) -> bool:
    """True when the mapping asks Lambda to read partial batch responses."""
    return any(REPORT_BATCH_ITEM_FAILURES in (m.get("FunctionResponseTypes") or [])
               for m in mappings)


class _MappingLookup(Generic[T]):
    """A function's mapping on one event source, looked up at most every `refresh` seconds;
    a failed lookup keeps the last known setting. Each change of what the runtime applies is
    said once."""

    def __init__(self, lambda_client: Any, function_name: str, source_arn: Callable[[], str],
                 initial: T, console: Console, refresh: float,
                 clock: Callable[[], float]) -> None:
        self.lambda_client = lambda_client
        self.function_name = function_name
        self.source_arn = source_arn
        self.console = console
        self.refresh = refresh
        self.clock = clock
        self._lock = threading.Lock()
        self._checked_at: float | None = None
        self._described: str | None = None
        self._setting = initial

    def _current(self) -> T:
        with self._lock:
            now = self.clock()
            if self._checked_at is None or now - self._checked_at >= self.refresh:
                self._checked_at = now
                self._read()
            return self._setting

    def _read(self) -> None:
        try:
            mappings = self.lambda_client.list_event_source_mappings(
                FunctionName=self.function_name,
                EventSourceArn=self.source_arn())["EventSourceMappings"]
        except Exception as exc:  # noqa: BLE001 - keep the last known setting
            self._say(f"cannot read the event source mapping of {self.function_name} "
                      f"({type(exc).__name__}: {exc}); keeping the last known setting")
            return
        self._setting, message = self._applied(mappings)
        self._say(f"{self.function_name}: {message}")

    def _applied(self, mappings: list[dict[str, Any]]) -> tuple[T, str]:
        """The setting the mappings make, and what to say of it."""
        raise NotImplementedError

    def _say(self, message: str) -> None:
        if message != self._described:
            self._described = message
            self.console.info(message)


class MappingReader(_MappingLookup[bool]):
    """The function's mapping on one queue: whether it reads partial batch responses."""

    def __init__(self, lambda_client: Any, function_name: str, queue_arn: str,
                 console: Console, refresh: float = REFRESH_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(lambda_client, function_name, lambda: queue_arn, False, console,
                         refresh, clock)

    def reports_batch_item_failures(self) -> bool:
        return self._current()

    def _applied(self, mappings: list[dict[str, Any]]) -> tuple[bool, str]:
        reports = reports_item_failures(mappings)
        if not mappings:
            return reports, ("no event source mapping in the endpoint; a returned "
                             "batchItemFailures is ignored, as with the mapping `chalice "
                             "deploy` creates")
        setting = ("on: a returned batchItemFailures is honoured" if reports
                   else "off: a returned batchItemFailures is ignored")
        uuids = ", ".join(m["UUID"] for m in mappings)
        return reports, f"event source mapping {uuids}: {REPORT_BATCH_ITEM_FAILURES} {setting}"


def stream_options(mapping: dict[str, Any] | None, declared: StreamOptions) -> StreamOptions:
    """A stream mapping's settings as Lambda reads them; `declared` (the decorator's batch
    size and window, Lambda's defaults for the rest) where there is no mapping."""
    if mapping is None:
        return declared
    on_failure = ((mapping.get("DestinationConfig") or {}).get("OnFailure") or {}).get(
        "Destination")
    return StreamOptions(
        batch_size=int(mapping.get("BatchSize") or declared.batch_size),
        batching_window_seconds=float(mapping.get("MaximumBatchingWindowInSeconds")
                                      or 0),
        bisect=bool(mapping.get("BisectBatchOnFunctionError")),
        maximum_retry_attempts=int(mapping.get("MaximumRetryAttempts", -1)),
        maximum_record_age_seconds=int(mapping.get("MaximumRecordAgeInSeconds", -1)),
        on_failure=on_failure or None,
        report_item_failures=REPORT_BATCH_ITEM_FAILURES in (
            mapping.get("FunctionResponseTypes") or []),
    )


class StreamMappingReader(_MappingLookup[StreamOptions]):
    """The function's mapping on one stream: every setting Lambda reads; `source_arn` gives
    the stream's ARN (it may not exist yet)."""

    def __init__(self, lambda_client: Any, function_name: str,
                 source_arn: Callable[[], str], declared: StreamOptions, console: Console,
                 refresh: float = REFRESH_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(lambda_client, function_name, source_arn, declared, console, refresh,
                         clock)
        self.declared = declared

    def options(self) -> StreamOptions:
        return self._current()

    def _applied(self, mappings: list[dict[str, Any]]) -> tuple[StreamOptions, str]:
        o = stream_options(mappings[0] if mappings else None, self.declared)
        where = (f"event source mapping {mappings[0]['UUID']}" if mappings else
                 "no event source mapping in the endpoint, as `chalice deploy` creates it")
        return o, (f"{where}: batch {o.batch_size}, window "
                   f"{o.batching_window_seconds:g} s, bisect {'on' if o.bisect else 'off'}, "
                   f"retries {o.maximum_retry_attempts}, max age "
                   f"{o.maximum_record_age_seconds} s, on-failure "
                   f"{o.on_failure or 'none'}, {REPORT_BATCH_ITEM_FAILURES} "
                   f"{'on' if o.report_item_failures else 'off'}")
