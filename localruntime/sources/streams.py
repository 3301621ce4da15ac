"""Stream event source mappings, DynamoDB Streams and Kinesis alike, with Lambda's semantics.

One shape for both kinds: a `StreamPoller` per mapping lists the stream's shards and runs a
`ShardPoller` for each, in its own thread; a shard poller reads its shard in order and hands
the function one batch at a time (`BatchSettler`). The two kinds differ only in how their
shards are listed and read and in their event records (`KinesisReader`, `DynamoDBReader`).

As Lambda does:

- A batch holds up to the mapping's batch size, gathered for up to its batching window, and
  at most 6 MB of event. Idle shards are polled once a second (Kinesis), four times a second
  (DynamoDB Streams).
- Shards that exist when the mapping starts are read from its starting position (LATEST or
  TRIM_HORIZON); shards that appear later (resharding, a stream created or re-created) from
  their first record, each after its parents have been read to their end.
- A batch the function fails (it raised, timed out, crashed, or answered a partial batch
  response that names an unknown record) is retried until it succeeds, the retries in
  `MaximumRetryAttempts` run out, or its oldest record is older than
  `MaximumRecordAgeInSeconds` (-1: never, the default). With `BisectBatchOnFunctionError` a
  failed batch is split in two and each half is settled in turn, first half first; splitting
  uses no retry. Records given up are skipped, and their batch's metadata goes to the
  on-failure destination (an SQS queue) in the shape Lambda sends.
- With `ReportBatchItemFailures` in the mapping's `FunctionResponseTypes`, a returned
  `batchItemFailures` checkpoints the shard before the lowest sequence number it names, and
  the rest of the batch is retried; without it any normal return is a success.

Written here because nothing installable does it without Docker: moto 5.2.5's own stream
mappings invoke through Docker, synchronously inside PutItem/PutRecord, one record at a time;
LocalStack's pollers need Docker and an account token.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from botocore.exceptions import ClientError

from localruntime.functions.invoker import Invoker, Outcome
from localruntime.log import Console
from localruntime.sources.events import batch_item_failures

# A Lambda invocation's payload (synchronous) is at most 6 MB.
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
RECORD_OVERHEAD_BYTES = 400
SHARD_REFRESH_SECONDS = 1.0
AFTER_WAIT_SECONDS = 0.5  # how often a replacing poller looks whether the replaced one ended
ERROR_PAUSE_SECONDS = 1.0
RETRY_BASE_SECONDS = 0.5
RETRY_MAX_SECONDS = 10.0
RETRY_ATTEMPTS_EXHAUSTED = "RetryAttemptsExhausted"
RECORD_AGE_EXCEEDED = "RecordAgeExceeded"
# Not failures of the function: Lambda retries them without counting a retry.
NOT_INVOKED = ("no_function",)


class StreamGone(Exception):
    """The stream (or the shard) no longer exists."""


class IteratorExpired(Exception):
    """The shard iterator is no longer valid; get a new one from the checkpoint."""


@dataclass(frozen=True)
class StreamRecord:
    """One record as Lambda hands it over: its sequence number, arrival time (epoch
    seconds), the event record, and its size in the payload."""

    sequence: str
    arrival: float
    event: dict[str, Any]
    size: int


@dataclass(frozen=True)
class Shard:
    shard_id: str
    parents: tuple[str, ...] = ()
    closed: bool = False


@dataclass(frozen=True)
class StreamOptions:
    """A stream mapping's settings; the defaults are Lambda's."""

    batch_size: int = 100
    batching_window_seconds: float = 0.0
    bisect: bool = False
    maximum_retry_attempts: int = -1
    maximum_record_age_seconds: int = -1
    on_failure: str | None = None
    report_item_failures: bool = False


@dataclass
class Read:
    records: list[StreamRecord]
    next_iterator: str | None
    behind_ms: int = 0


class StreamReader(Protocol):
    """What a shard poller needs of a stream kind."""

    kind: str
    batch_info_key: str
    max_read: int
    idle_seconds: float

    def arn(self) -> str: ...

    def identity(self) -> str:
        """Changes when the stream is deleted and created again."""
        ...

    def shards(self) -> list[Shard]: ...

    def iterator(self, shard_id: str, position: str, after: str | None) -> str: ...

    def read(self, shard_id: str, iterator: str, limit: int) -> Read: ...


def _epoch(value: Any) -> float:
    return value.timestamp() if isinstance(value, datetime) else float(value)


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def _call(method: Callable[..., Any], **kwargs: Any) -> Any:
    """A stream API call, its "gone" and "expired" errors translated."""
    try:
        return method(**kwargs)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code == "ResourceNotFoundException":
            raise StreamGone(str(exc)) from exc
        if code == "ExpiredIteratorException":
            raise IteratorExpired(str(exc)) from exc
        raise


class KinesisReader:
    kind = "kinesis"
    batch_info_key = "KinesisBatchInfo"
    max_read = 10_000
    idle_seconds = 1.0

    def __init__(self, client: Any, stream: str, region: str, role_arn: str) -> None:
        self.client = client
        self.stream = stream
        self.region = region
        self.role_arn = role_arn
        self._arn: str | None = None

    def _summary(self) -> dict[str, Any]:
        return dict(_call(self.client.describe_stream_summary,
                          StreamName=self.stream)["StreamDescriptionSummary"])

    def arn(self) -> str:
        if self._arn is None:
            self._arn = str(self._summary()["StreamARN"])
        return self._arn

    def identity(self) -> str:
        summary = self._summary()
        self._arn = str(summary["StreamARN"])
        return f"{summary['StreamARN']}@{_epoch(summary['StreamCreationTimestamp'])}"

    def shards(self) -> list[Shard]:
        found: list[Shard] = []
        kwargs: dict[str, Any] = {"StreamName": self.stream}
        while True:
            page = _call(self.client.list_shards, **kwargs)
            for shard in page["Shards"]:
                parents = tuple(p for p in (shard.get("ParentShardId"),
                                            shard.get("AdjacentParentShardId")) if p)
                closed = "EndingSequenceNumber" in shard.get("SequenceNumberRange", {})
                found.append(Shard(shard["ShardId"], parents, closed))
            if not page.get("NextToken"):
                return found
            kwargs = {"NextToken": page["NextToken"]}

    def iterator(self, shard_id: str, position: str, after: str | None) -> str:
        kwargs: dict[str, Any] = {"StreamName": self.stream, "ShardId": shard_id}
        if after is not None:
            kwargs.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER",
                          StartingSequenceNumber=after)
        else:
            kwargs["ShardIteratorType"] = position
        return str(_call(self.client.get_shard_iterator, **kwargs)["ShardIterator"])

    def read(self, shard_id: str, iterator: str, limit: int) -> Read:
        answer = _call(self.client.get_records, ShardIterator=iterator, Limit=limit)
        arn = self.arn()
        records = [self.record(shard_id, arn, raw) for raw in answer.get("Records", [])]
        return Read(records, answer.get("NextShardIterator"),
                    int(answer.get("MillisBehindLatest", 0)))

    def record(self, shard_id: str, arn: str, raw: dict[str, Any]) -> StreamRecord:
        data = raw["Data"]
        encoded = base64.b64encode(data if isinstance(data, bytes) else data.encode()).decode()
        arrival = _epoch(raw["ApproximateArrivalTimestamp"])
        sequence = str(raw["SequenceNumber"])
        event = {
            "kinesis": {
                "kinesisSchemaVersion": "1.0",
                "partitionKey": raw["PartitionKey"],
                "sequenceNumber": sequence,
                "data": encoded,
                "approximateArrivalTimestamp": arrival,
            },
            "eventSource": "aws:kinesis",
            "eventVersion": "1.0",
            "eventID": f"{shard_id}:{sequence}",
            "eventName": "aws:kinesis:record",
            "invokeIdentityArn": self.role_arn,
            "awsRegion": self.region,
            "eventSourceARN": arn,
        }
        return StreamRecord(sequence, arrival, event,
                            len(encoded) + len(raw["PartitionKey"]) + RECORD_OVERHEAD_BYTES)


def _plain(value: Any) -> Any:
    """A parsed DynamoDB stream record back in its JSON form (bytes base64, times epoch)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, datetime):
        return value.timestamp()
    return value


class DynamoDBReader:
    kind = "dynamodb"
    batch_info_key = "DDBStreamBatchInfo"
    max_read = 1_000
    idle_seconds = 0.25

    def __init__(self, client: Any, stream_arn: str) -> None:
        self.client = client
        self.stream_arn = stream_arn

    def arn(self) -> str:
        return self.stream_arn

    def _describe(self, **kwargs: Any) -> dict[str, Any]:
        return dict(_call(self.client.describe_stream, StreamArn=self.stream_arn,
                          **kwargs)["StreamDescription"])

    def identity(self) -> str:
        description = self._describe()
        if description.get("StreamStatus") not in ("ENABLED", "ENABLING"):
            raise StreamGone(f"stream {self.stream_arn} is {description.get('StreamStatus')}")
        return self.stream_arn

    def shards(self) -> list[Shard]:
        found: list[Shard] = []
        kwargs: dict[str, Any] = {}
        while True:
            description = self._describe(**kwargs)
            for shard in description.get("Shards", []):
                parents = (shard["ParentShardId"],) if shard.get("ParentShardId") else ()
                closed = "EndingSequenceNumber" in shard.get("SequenceNumberRange", {})
                found.append(Shard(shard["ShardId"], parents, closed))
            last = description.get("LastEvaluatedShardId")
            if not last:
                return found
            kwargs = {"ExclusiveStartShardId": last}

    def iterator(self, shard_id: str, position: str, after: str | None) -> str:
        kwargs: dict[str, Any] = {"StreamArn": self.stream_arn, "ShardId": shard_id}
        if after is not None:
            kwargs.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=after)
        else:
            kwargs["ShardIteratorType"] = position
        return str(_call(self.client.get_shard_iterator, **kwargs)["ShardIterator"])

    def read(self, shard_id: str, iterator: str, limit: int) -> Read:
        answer = _call(self.client.get_records, ShardIterator=iterator, Limit=limit)
        return Read([self.record(raw) for raw in answer.get("Records", [])],
                    answer.get("NextShardIterator"))

    def record(self, raw: dict[str, Any]) -> StreamRecord:
        event = _plain(raw)
        event["eventSourceARN"] = self.stream_arn
        if "userIdentity" in event:  # GetRecords says Type/PrincipalId; Lambda's event, as here
            event["userIdentity"] = {"type": event["userIdentity"].get("Type"),
                                     "principalId": event["userIdentity"].get("PrincipalId")}
        change = event["dynamodb"]
        return StreamRecord(str(change["SequenceNumber"]),
                            float(change["ApproximateCreationDateTime"]), event,
                            int(change.get("SizeBytes", 0)) + RECORD_OVERHEAD_BYTES)


class Destination(Protocol):
    def send(self, body: str) -> None: ...


class QueueDestination:
    """An SQS queue by ARN, as an on-failure destination."""

    def __init__(self, sqs: Any, queue_arn: str) -> None:
        self.sqs = sqs
        self.queue_arn = queue_arn
        self._url: str | None = None

    def send(self, body: str) -> None:
        if self._url is None:
            parts = self.queue_arn.split(":")
            self._url = self.sqs.get_queue_url(QueueName=parts[5],
                                               QueueOwnerAWSAccountId=parts[4])["QueueUrl"]
        self.sqs.send_message(QueueUrl=self._url, MessageBody=body)


@dataclass
class _Piece:
    records: list[StreamRecord]
    invocations: int = 0
    last: Outcome | None = None


@dataclass
class Settled:
    """What became of a batch: records handled, records given up (and why)."""

    succeeded: int = 0
    discarded: list[tuple[str, int]] = field(default_factory=list)
    complete: bool = True


class BatchSettler:
    """Invokes the function for one batch of one shard until every record is settled."""

    def __init__(self, function: str, function_arn: str, reader: StreamReader,
                 invoker: Invoker, console: Console, options: Callable[[], StreamOptions],
                 destination: Callable[[str], Destination], shutdown: threading.Event,
                 clock: Callable[[], float] = time.time,
                 retry_base_seconds: float = RETRY_BASE_SECONDS) -> None:
        self.function = function
        self.function_arn = function_arn
        self.reader = reader
        self.invoker = invoker
        self.console = console
        self.options = options
        self.destination = destination
        self.shutdown = shutdown
        self.clock = clock
        self.retry_base_seconds = retry_base_seconds

    def settle(self, shard_id: str, batch: list[StreamRecord],
               stop: threading.Event | None = None) -> Settled:
        """Returns once every record succeeded or was given up, or, incomplete, once the
        runtime or (`stop`) the mapping stops."""
        settled = Settled()
        pieces = [_Piece(batch)]
        while pieces:
            if self.shutdown.is_set() or (stop is not None and stop.is_set()):
                settled.complete = False
                break
            piece = pieces.pop(0)
            options = self.options()
            piece = self._drop_expired(shard_id, piece, options, settled)
            if not piece.records:
                continue
            outcome = self._invoke(shard_id, piece, options)
            piece.last = outcome
            if outcome.outcome in NOT_INVOKED:
                self.shutdown.wait(ERROR_PAUSE_SECONDS)
                pieces.insert(0, piece)
                continue
            piece.invocations += 1
            failed = outcome.failed_items
            if outcome.ok and failed is not None and not failed:
                settled.succeeded += len(piece.records)
                continue
            if outcome.ok and failed:
                checkpoint = min(int(sequence) for sequence in failed)
                done = [r for r in piece.records if int(r.sequence) < checkpoint]
                settled.succeeded += len(done)
                piece.records = piece.records[len(done):]
            elif options.bisect and len(piece.records) > 1:
                middle = len(piece.records) // 2
                pieces[:0] = [_Piece(piece.records[:middle]), _Piece(piece.records[middle:])]
                continue
            retries = piece.invocations - 1
            if 0 <= options.maximum_retry_attempts <= retries:
                self._give_up(shard_id, piece, RETRY_ATTEMPTS_EXHAUSTED, options, settled)
                continue
            self.shutdown.wait(min(RETRY_MAX_SECONDS,
                                   self.retry_base_seconds * 2 ** min(max(0, retries), 32)))
            pieces.insert(0, piece)
        return settled

    def _invoke(self, shard_id: str, piece: _Piece, options: StreamOptions) -> Outcome:
        sequences = [r.sequence for r in piece.records]
        judge = ((lambda result: batch_item_failures(result, sequences))
                 if options.report_item_failures else None)
        return self.invoker.invoke(
            self.function, {"Records": [r.event for r in piece.records]},
            batch_size=len(piece.records), source=f"{self.reader.arn()}#{shard_id}",
            judge=judge)

    def _drop_expired(self, shard_id: str, piece: _Piece, options: StreamOptions,
                      settled: Settled) -> _Piece:
        if options.maximum_record_age_seconds < 0:
            return piece
        oldest = self.clock() - options.maximum_record_age_seconds
        expired = [r for r in piece.records if r.arrival < oldest]
        if not expired:
            return piece
        self._give_up(shard_id, _Piece(expired, piece.invocations, piece.last),
                      RECORD_AGE_EXCEEDED, options, settled)
        return _Piece([r for r in piece.records if r.arrival >= oldest], piece.invocations,
                      piece.last)

    def _give_up(self, shard_id: str, piece: _Piece, condition: str, options: StreamOptions,
                 settled: Settled) -> None:
        first, last = piece.records[0], piece.records[-1]
        settled.discarded.append((condition, len(piece.records)))
        self.console.record(
            type="stream_discard", function=self.function, source=self.reader.arn(),
            shard=shard_id, condition=condition, records=len(piece.records),
            first_sequence=first.sequence, last_sequence=last.sequence,
            destination=options.on_failure)
        if options.on_failure is None:
            return
        body = json.dumps(self.failure_record(shard_id, piece, condition))
        while not self.shutdown.is_set():
            try:
                self.destination(options.on_failure).send(body)
                return
            except Exception as exc:  # noqa: BLE001 - the record must reach the queue
                self.console.info(f"{self.function}: cannot send to the on-failure "
                                  f"destination {options.on_failure}: {exc}; retrying")
                self.shutdown.wait(ERROR_PAUSE_SECONDS)

    def failure_record(self, shard_id: str, piece: _Piece, condition: str) -> dict[str, Any]:
        """The invocation record Lambda sends an on-failure destination for a stream."""
        first, last = piece.records[0], piece.records[-1]
        record: dict[str, Any] = {
            "requestContext": {
                "requestId": piece.last.request_id if piece.last else "",
                "functionArn": self.function_arn,
                "condition": condition,
                "approximateInvokeCount": piece.invocations,
            },
            "responseContext": {
                "statusCode": 200,
                "executedVersion": "$LATEST",
                "functionError": "Unhandled",
            },
            "version": "1.0",
            "timestamp": _iso(self.clock()),
            self.reader.batch_info_key: {
                "shardId": shard_id,
                "startSequenceNumber": first.sequence,
                "endSequenceNumber": last.sequence,
                "approximateArrivalOfFirstRecord": _iso(first.arrival),
                "approximateArrivalOfLastRecord": _iso(last.arrival),
                "batchSize": len(piece.records),
                "streamArn": self.reader.arn(),
            },
        }
        if piece.invocations == 0:
            del record["responseContext"]
        return record


class ShardPoller(threading.Thread):
    """Reads one shard in order and settles one batch at a time."""

    def __init__(self, shard: Shard, position: str, reader: StreamReader,
                 settler: BatchSettler, options: Callable[[], StreamOptions],
                 console: Console, stop: threading.Event, on_end: Callable[[str], None],
                 on_gone: Callable[[], None], checkpoint: str | None = None,
                 on_checkpoint: Callable[[str, str], None] | None = None) -> None:
        super().__init__(daemon=True, name=f"{settler.function}-{shard.shard_id}")
        self.shard = shard
        self.position = position
        self.reader = reader
        self.settler = settler
        self.options = options
        self.console = console
        self.stop_event = stop
        self.on_end = on_end
        self.on_gone = on_gone
        self.checkpoint = checkpoint
        self.on_checkpoint = on_checkpoint
        self._read_to = checkpoint
        self._iterator: str | None = None
        self._carry: list[StreamRecord] = []
        self._ended = False
        self._last_error: str | None = None
        self.batches = 0

    def _fetch(self, limit: int) -> list[StreamRecord]:
        if self._iterator is None:
            self._iterator = self.reader.iterator(self.shard.shard_id, self.position,
                                                  self._read_to)
        try:
            read = self.reader.read(self.shard.shard_id, self._iterator, limit)
        except IteratorExpired:
            self._iterator = None
            return []
        if read.records:
            self._read_to = read.records[-1].sequence
        if read.next_iterator is None:
            self._ended = True
        elif not read.records and self.shard.closed and read.behind_ms == 0:
            # moto never ends a closed shard's iterators: empty and closed is its end.
            self._ended = True
        self._iterator = read.next_iterator
        return read.records

    def next_batch(self) -> list[StreamRecord]:
        """Up to the batch size (and 6 MB), gathered for up to the batching window."""
        batch, size = [], 0
        pending = self._carry
        self._carry = []
        deadline: float | None = None
        while not self.stop_event.is_set():
            options = self.options()
            if not pending and not self._ended:
                want = min(self.reader.max_read, options.batch_size - len(batch))
                try:
                    pending = self._fetch(want)
                except Exception:
                    self._carry = batch  # read past already: a failed read must not drop them
                    raise
            while pending and len(batch) < options.batch_size:
                record = pending[0]
                if batch and size + record.size > MAX_PAYLOAD_BYTES:
                    break
                batch.append(pending.pop(0))
                size += record.size
            full = (len(batch) >= options.batch_size or bool(pending))
            if full or self._ended:
                break
            if batch and deadline is None:
                deadline = time.monotonic() + options.batching_window_seconds
            if batch and (deadline is None or time.monotonic() >= deadline):
                break
            wait = self.reader.idle_seconds
            if deadline is not None:
                wait = min(wait, max(0.0, deadline - time.monotonic()))
            if not batch or wait > 0:
                self.stop_event.wait(wait)
        self._carry = pending
        return batch

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                batch = self.next_batch()
                self._last_error = None
            except StreamGone:
                self.on_gone()
                return
            except Exception as exc:  # noqa: BLE001 - a shard poller reports and keeps polling
                self._report(exc)
                self.stop_event.wait(ERROR_PAUSE_SECONDS)
                continue
            if batch:
                if not self.settler.settle(self.shard.shard_id, batch,
                                           self.stop_event).complete:
                    return
                self.checkpoint = batch[-1].sequence
                if self.on_checkpoint is not None:
                    self.on_checkpoint(self.shard.shard_id, self.checkpoint)
                self.batches += 1
            if self._ended and not self._carry:
                self.on_end(self.shard.shard_id)
                return

    def _report(self, exc: Exception) -> None:
        error = f"{type(exc).__name__}: {exc}"
        if error != self._last_error:
            self._last_error = error
            self.console.info(f"{self.settler.function}: reading {self.shard.shard_id} of "
                              f"{self.reader.arn()} failed: {error} (retrying every "
                              f"{ERROR_PAUSE_SECONDS:g} s)")


class StreamPoller:
    """One stream event source mapping: a shard poller per shard, new shards picked up.

    `checkpoints` (shard key -> last sequence settled) outlives the poller: a poller that
    replaces another for the same stream (the mapping changed) goes on from there, as a
    Lambda mapping keeps its place through an update, and reads nothing until the one it
    replaces (`after`) has ended: a shard has one batch in flight at a time, as in Lambda."""

    def __init__(self, function: str, reader: StreamReader, settler: BatchSettler,
                 options: Callable[[], StreamOptions], starting_position: str,
                 console: Console, shutdown: threading.Event,
                 refresh_seconds: float = SHARD_REFRESH_SECONDS,
                 checkpoints: dict[str, str] | None = None,
                 after: StreamPoller | None = None) -> None:
        self.checkpoints = checkpoints if checkpoints is not None else {}
        self.after = after
        self.function = function
        self.reader = reader
        self.settler = settler
        self.options = options
        self.starting_position = starting_position
        self.console = console
        self.shutdown = shutdown
        self.refresh_seconds = refresh_seconds
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._identity: str | None = None
        self._stop_shards = threading.Event()
        self._shards: dict[str, ShardPoller] = {}
        self._ended: set[str] = set()
        self._gone = False
        self._described: str | None = None
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"{function}-shards")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop reading; a shard poller finishes the invocation it is in, and a batch not
        settled by then is read again by the next poller."""
        self._stopping.set()
        self._stop_shards.set()

    def join(self, timeout: float) -> bool:
        """Wait for the shard pollers to end; False if some still run after `timeout`."""
        deadline = time.monotonic() + timeout
        with self._lock:
            pollers = list(self._shards.values())
        for poller in pollers:
            poller.join(max(0.0, deadline - time.monotonic()))
        return not any(poller.is_alive() for poller in pollers)

    @property
    def stopped(self) -> bool:
        return self._stopping.is_set() or self.shutdown.is_set()

    def activity(self) -> dict[str, int]:
        """Shards being read, batches handed over."""
        with self._lock:
            pollers = list(self._shards.values())
        return {"shards": sum(1 for p in pollers if p.is_alive()),
                "batches": sum(p.batches for p in pollers)}

    def _run(self) -> None:
        while self.after is not None and not self.stopped:
            if self.after.join(AFTER_WAIT_SECONDS):
                self.after = None
        while not self.stopped:
            try:
                self.refresh()
            except StreamGone as exc:
                self._lost(f"{exc}")
            except Exception as exc:  # noqa: BLE001 - keep watching the stream
                self._say(f"{self.function}: listing the shards of {self._name()} failed: "
                          f"{type(exc).__name__}: {exc}")
            self._stopping.wait(self.refresh_seconds)

    def _name(self) -> str:
        return getattr(self.reader, "stream", None) or self.reader.arn()

    def _say(self, message: str) -> None:
        if message != self._described:
            self._described = message
            self.console.info(message)

    def _lost(self, why: str) -> None:
        with self._lock:
            had = self._identity is not None
            self._reset()
        self._say(f"{self.function}: stream {self._name()} is "
                  f"{'gone' if had else 'not there'} ({why}); waiting for it")

    def _reset(self) -> None:
        self._stop_shards.set()
        self._stop_shards = threading.Event()
        self._shards = {}
        self._ended = set()
        self._identity = None
        self._gone = False

    def _save(self, key: str, sequence: str) -> None:
        self.checkpoints[key] = sequence

    def _shard_gone(self) -> None:
        with self._lock:
            self._gone = True

    def _shard_ended(self, shard_id: str) -> None:
        with self._lock:
            self._ended.add(shard_id)

    def refresh(self) -> None:
        identity = self.reader.identity()
        shards = self.reader.shards()
        with self._lock:
            if self._gone or (self._identity is not None and identity != self._identity):
                self.console.info(f"{self.function}: stream {self._name()} was created "
                                  f"anew; reading it from {self.starting_position}")
                self._reset()
            first_listing = self._identity is None
            self._identity = identity
            known = {shard.shard_id for shard in shards}
            for shard in shards:
                if shard.shard_id in self._shards:
                    continue
                if any(p in known and p not in self._ended for p in shard.parents):
                    continue
                position = self.starting_position if first_listing else "TRIM_HORIZON"
                key = f"{identity}|{shard.shard_id}"
                poller = ShardPoller(
                    shard, position, self.reader, self.settler, self.options, self.console,
                    self._stop_shards, self._shard_ended, self._shard_gone,
                    checkpoint=self.checkpoints.get(key),
                    on_checkpoint=lambda shard_id, sequence, key=key: self._save(key,
                                                                                 sequence))
                self._shards[shard.shard_id] = poller
                poller.start()
        self._say(f"{self.function}: reading {len(shards)} shard(s) of {self._name()}")
