"""Streamed events: NDJSON lines packed into Kinesis records, and records written as objects.

Producers (POST /ingest, `logctl send`) pack lines with `pack` and `put_requests`, which
keep Kinesis's limits. The `ingest` handler turns each shard's records into gzip objects
under `logs/stream/` with `plan_objects`: an object is keyed by the record it starts with,
holds consecutive records of one shard that arrived in one UTC hour, and records its last
sequence number, so a batch delivered again, cut differently, or replayed is written at most
once (docs/spec.md, "Streamed events").
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from isal import igzip

from chalicelib.core.errors import PipelineError
from chalicelib.core.jobs import STREAM_PREFIX

MIB = 1024 * 1024
MAX_RECORD_BYTES = MIB  # a Kinesis record: data and partition key together
MAX_RECORDS_PER_PUT = 500  # PutRecords: records per request
MAX_PUT_BYTES = 5 * MIB  # PutRecords: data and partition keys of the whole request
STREAM_SUFFIX = ".ndjson.gz"
GZIP_LEVEL = 1  # ISA-L's levels are 0-3; 1 keeps the handler's CPU per batch small


class LineTooLarge(PipelineError):
    """One line (with its newline and the partition key) does not fit in a Kinesis record."""

    def __init__(self, line_number: int, size: int, limit: int) -> None:
        super().__init__(f"line {line_number} is {size} bytes; a Kinesis record holds at most "
                         f"{limit} bytes of lines (1 MiB with its partition key)")
        self.line_number = line_number
        self.size = size
        self.limit = limit


@dataclass(frozen=True)
class PackedRecord:
    """One Kinesis record: whole lines, each ending in a newline, blank lines left out."""

    data: bytes
    partition_key: str
    first_line: int  # 1-based numbers of the first and last line it holds
    last_line: int
    lines: int

    @property
    def size(self) -> int:
        """What Kinesis counts against its limits: data and partition key."""
        return len(self.data) + len(self.partition_key.encode("utf-8"))


def numbered_lines(chunks: Iterable[bytes]) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, line without its newline) for each non-blank line."""
    number = 0
    rest = b""
    for chunk in chunks:
        if not chunk:
            continue
        parts = (rest + chunk).split(b"\n")
        rest = parts.pop()
        for line in parts:
            number += 1
            if line.strip():
                yield number, line
    if rest.strip():
        yield number + 1, rest


def pack(lines: Iterable[tuple[int, bytes]], partition_key: Callable[[], str],
         record_bytes: int = MAX_RECORD_BYTES) -> Iterator[PackedRecord]:
    """Whole lines into records of at most `record_bytes` (data and partition key), in order.

    Raises LineTooLarge for a line that cannot fit in a record of its own; the records
    before it have been yielded by then.
    """
    if not 0 < record_bytes <= MAX_RECORD_BYTES:
        raise ValueError(f"record_bytes must be 1..{MAX_RECORD_BYTES}, got {record_bytes}")
    key = partition_key()
    room = record_bytes - len(key.encode("utf-8"))
    parts: list[bytes] = []
    size = count = first = last = 0
    for number, line in lines:
        needed = len(line) + 1
        if count and size + needed > room:
            yield PackedRecord(b"".join(parts), key, first, last, count)
            key = partition_key()
            room = record_bytes - len(key.encode("utf-8"))
            parts, size, count = [], 0, 0
        if needed > room:
            raise LineTooLarge(number, needed, room)
        if not count:
            first = number
        parts += (line, b"\n")
        size += needed
        count += 1
        last = number
    if count:
        yield PackedRecord(b"".join(parts), key, first, last, count)


def put_requests(records: Iterable[PackedRecord]) -> Iterator[list[PackedRecord]]:
    """Records grouped into PutRecords requests (at most 500 records and 5 MiB each)."""
    request: list[PackedRecord] = []
    size = 0
    for record in records:
        if request and (len(request) == MAX_RECORDS_PER_PUT
                        or size + record.size > MAX_PUT_BYTES):
            yield request
            request, size = [], 0
        request.append(record)
        size += record.size
    if request:
        yield request


# ---- records into objects --------------------------------------------------------------

@dataclass(frozen=True)
class StreamRecord:
    """A Kinesis record as the `ingest` handler receives it."""

    shard_id: str
    sequence: str
    data: bytes
    arrived: float  # ApproximateArrivalTimestamp, epoch seconds

    @property
    def position(self) -> int:
        return int(self.sequence)


def hour_of(arrived: float) -> str:
    return time.strftime("%Y/%m/%d/%H", time.gmtime(arrived))


def partition_prefix(shard_id: str, arrived: float) -> str:
    """Where the objects of a shard's records that arrived in that UTC hour are."""
    return f"{STREAM_PREFIX}{hour_of(arrived)}/{shard_id}-"


def object_key(first: StreamRecord) -> str:
    """`logs/stream/YYYY/MM/DD/HH/<shard>-<first sequence>.ndjson.gz`."""
    return f"{partition_prefix(first.shard_id, first.arrived)}{first.sequence}{STREAM_SUFFIX}"


def first_position(key: str) -> int | None:
    """The first sequence number of a streamed object's key, None for any other key."""
    if not key.endswith(STREAM_SUFFIX):
        return None
    sequence = key[:-len(STREAM_SUFFIX)].rsplit("-", 1)[-1]
    return int(sequence) if sequence.isdigit() else None


def segments(records: Iterable[StreamRecord]) -> list[list[StreamRecord]]:
    """A shard's records in sequence order, cut where the shard or the arrival hour changes:
    every object then lies in one partition, which one listing shows whole."""
    ordered = sorted(records, key=lambda r: (r.shard_id, r.position))
    runs: list[list[StreamRecord]] = []
    for record in ordered:
        if runs and (runs[-1][-1].shard_id == record.shard_id
                     and hour_of(runs[-1][-1].arrived) == hour_of(record.arrived)):
            runs[-1].append(record)
        else:
            runs.append([record])
    return runs


def needed_lasts(segment: Sequence[StreamRecord], firsts: Iterable[int]) -> list[int]:
    """The existing objects (by first position) whose last sequence decides what to write:
    the one that may cover the segment's first record, and those starting inside it."""
    start, end = segment[0].position, segment[-1].position
    known = sorted(firsts)
    before = [f for f in known if f <= start]
    inside = [f for f in known if start < f <= end]
    return before[-1:] + inside


def plan_objects(segment: Sequence[StreamRecord], covered: Iterable[tuple[int, int]]
                 ) -> tuple[list[list[StreamRecord]], int]:
    """The runs of the segment's records that no existing object holds, and how many it holds.

    `covered` are existing objects' (first, last) positions. Each run becomes an object
    keyed by its first record, so a batch that starts inside an object continues after
    that object's last sequence.
    """
    ranges = sorted(covered)
    runs: list[list[StreamRecord]] = []
    skipped = 0
    fresh = True
    for record in segment:
        if any(first <= record.position <= last for first, last in ranges):
            skipped += 1
            fresh = True
            continue
        if fresh:
            runs.append([])
            fresh = False
        runs[-1].append(record)
    return runs, skipped


def object_body(run: Sequence[StreamRecord]) -> bytes:
    """The records' lines as one gzip member; each record's data ends in a newline."""
    parts: list[bytes] = []
    for record in run:
        if record.data:
            parts.append(record.data)
            if not record.data.endswith(b"\n"):
                parts.append(b"\n")
    return igzip.compress(b"".join(parts), GZIP_LEVEL, mtime=0)


def records_from_kinesis_event(event: Mapping[str, Any]) -> list[StreamRecord]:
    """The records of a Lambda Kinesis event (`eventID` is `<shard id>:<sequence number>`)."""
    records = []
    for item in event.get("Records") or []:
        kinesis = item["kinesis"]
        records.append(StreamRecord(
            shard_id=str(item["eventID"]).split(":", 1)[0],
            sequence=str(kinesis["sequenceNumber"]),
            data=base64.b64decode(kinesis["data"]),
            arrived=float(kinesis["approximateArrivalTimestamp"]),
        ))
    return records
