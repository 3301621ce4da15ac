"""Streamed events: packing lines into Kinesis records, and records into objects."""

from __future__ import annotations

import gzip
import itertools
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.core.jobs import Source, source_of
from chalicelib.core.stream import (
    MAX_PUT_BYTES,
    MAX_RECORD_BYTES,
    MAX_RECORDS_PER_PUT,
    LineTooLarge,
    PackedRecord,
    StreamRecord,
    first_position,
    needed_lasts,
    numbered_lines,
    object_body,
    object_key,
    pack,
    plan_objects,
    put_requests,
    segments,
)

HOUR = 3600.0
T0 = 1_780_000_000.0  # 2026-05-28T20:26:40Z


def keys() -> Iterator[str]:
    return (f"k{i:031d}" for i in itertools.count())


def one_key(counter: Iterator[str] | None = None):
    counter = counter or keys()
    return lambda: next(counter)


# ---- lines and packing -------------------------------------------------------------------

def test_lines_are_numbered_as_in_the_body_and_blank_lines_are_left_out() -> None:
    body = [b'{"a":1}\n\n  \n{"b"', b':2}\r\n{"c":3}']
    assert list(numbered_lines(body)) == [(1, b'{"a":1}'), (4, b'{"b":2}\r'), (5, b'{"c":3}')]


def test_bytes_that_are_not_utf8_pass_through_unchanged() -> None:
    line = b'{"msg":"\xff\xfe"}'
    [record] = pack(numbered_lines([line + b"\n"]), one_key())
    assert record.data == line + b"\n"


@given(st.lists(st.binary(min_size=0, max_size=300).filter(lambda b: b"\n" not in b),
                max_size=60),
       st.integers(min_value=40, max_value=700))
def test_records_hold_every_line_once_in_order_and_keep_the_size_bound(
        lines: list[bytes], record_bytes: int) -> None:
    numbered = [(i + 1, line) for i, line in enumerate(lines) if line.strip()]
    try:
        records = list(pack(iter(numbered), one_key(), record_bytes))
    except LineTooLarge as exc:
        too_long = [n for n, line in numbered if len(line) + 1 > record_bytes - 32]
        assert exc.line_number == too_long[0]
        return
    assert b"".join(r.data for r in records) == b"".join(line + b"\n" for _, line in numbered)
    assert all(r.size <= record_bytes for r in records)
    assert sum(r.lines for r in records) == len(numbered)
    numbers = iter([n for n, _ in numbered])
    for record in records:
        held = [next(numbers) for _ in range(record.lines)]
        assert (record.first_line, record.last_line) == (held[0], held[-1])
    # a record is closed only when the next line would not fit
    for record, following in itertools.pairwise(records):
        next_line = next(line for n, line in numbered if n == following.first_line)
        assert record.size + len(next_line) + 1 > record_bytes


def test_a_line_that_cannot_fit_a_record_names_its_number() -> None:
    big = b"x" * (MAX_RECORD_BYTES - 32)  # with its newline and a 32-byte key: one byte over
    body = b'{"a":1}\n' + big + b"\n"
    with pytest.raises(LineTooLarge) as caught:
        list(pack(numbered_lines([body]), one_key()))
    assert caught.value.line_number == 2
    assert "line 2" in str(caught.value)
    [record] = pack(numbered_lines([big[:-1] + b"\n"]), one_key())
    assert record.size == MAX_RECORD_BYTES


def test_put_requests_keep_kinesis_limits() -> None:
    small = [PackedRecord(b"x\n", "k", i, i, 1) for i in range(1, 1201)]
    assert [len(r) for r in put_requests(small)] == [MAX_RECORDS_PER_PUT, 500, 200]
    big = [PackedRecord(b"x" * (MAX_RECORD_BYTES - 1), "k", i, i, 1) for i in range(1, 12)]
    requests = list(put_requests(big))
    assert [len(r) for r in requests] == [5, 5, 1]
    assert all(sum(r.size for r in request) <= MAX_PUT_BYTES for request in requests)
    assert [r for request in requests for r in request] == big


# ---- records into objects ---------------------------------------------------------------

def rec(sequence: int, arrived: float = T0, shard: str = "shardId-000000000000",
        data: bytes = b'{"a":1}\n') -> StreamRecord:
    return StreamRecord(shard, str(sequence), data, arrived)


def test_an_object_is_keyed_by_its_first_record_under_the_hour_it_arrived() -> None:
    key = object_key(rec(4954, T0))
    assert key == "logs/stream/2026/05/28/20/shardId-000000000000-4954.ndjson.gz"
    assert source_of(key) == Source.STREAM
    assert first_position(key) == 4954
    assert first_position("logs/stream/2026/05/28/20/notes.txt") is None


def test_segments_cut_where_the_hour_or_the_shard_changes_and_sort_by_sequence() -> None:
    records = [rec(3, T0 + 1), rec(1, T0), rec(9, T0 + HOUR), rec(2, T0, "shardId-1")]
    assert [[r.sequence for r in s] for s in segments(records)] == [["1", "3"], ["9"], ["2"]]


def test_a_batch_already_written_is_skipped_whole() -> None:
    batch = [rec(s) for s in (10, 11, 12)]
    runs, skipped = plan_objects(batch, [(10, 12)])
    assert (runs, skipped) == ([], 3)


def test_a_longer_batch_continues_after_the_last_sequence_of_the_object_there() -> None:
    batch = [rec(s) for s in (10, 11, 12, 13, 14)]
    runs, skipped = plan_objects(batch, [(10, 12)])
    assert [[r.sequence for r in run] for run in runs] == [["13", "14"]]
    assert skipped == 3


def test_a_batch_starting_inside_an_object_writes_only_what_follows_it() -> None:
    # written as one batch 10..14; after a crash the batch size shrank: 12..16 comes next
    batch = [rec(s) for s in (12, 13, 14, 15, 16)]
    assert needed_lasts(batch, [1, 10, 17]) == [10]
    runs, skipped = plan_objects(batch, [(10, 14)])
    assert [[r.sequence for r in run] for run in runs] == [["15", "16"]]
    assert skipped == 3


def test_objects_inside_a_replayed_batch_cut_it_into_the_gaps() -> None:
    batch = [rec(s) for s in range(1, 11)]
    assert needed_lasts(batch, [3, 7, 20]) == [3, 7]
    runs, skipped = plan_objects(batch, [(3, 4), (7, 8)])
    assert [[r.sequence for r in run] for run in runs] == [["1", "2"], ["5", "6"], ["9", "10"]]
    assert skipped == 4


def test_sequence_numbers_compare_as_numbers_not_text() -> None:
    batch = [rec(s) for s in (9, 10, 11)]
    runs, _ = plan_objects(batch, [(2, 9)])
    assert [[r.sequence for r in run] for run in runs] == [["10", "11"]]


def test_the_object_holds_each_records_lines_each_ending_in_a_newline() -> None:
    body = object_body([rec(1, data=b'{"a":1}'), rec(2, data=b""), rec(3, data=b'{"b":2}\n')])
    assert gzip.decompress(body) == b'{"a":1}\n{"b":2}\n'
    assert object_body([rec(1)]) == object_body([rec(1)])  # a retried write has the same bytes
