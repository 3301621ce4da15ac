"""The fast path: decode and validate whole blocks of lines at once with msgspec.

A block's newlines are turned into commas and the block is decoded in one call as a
JSON array of records: that succeeds only if every line holds exactly one valid
record, or if some line holds two records separated by a comma, which the count of
lines tells apart. Such blocks (the common case) go straight to the aggregator.
Otherwise the block is split into smaller pieces, and a piece that still fails is
checked line by line, where the reference decides: malformed lines cost extra work
only near where they are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from chalicelib.aggregate import Aggregator
from chalicelib.lines import TooLong
from chalicelib.records import LogRecord
from chalicelib.reference import REASON_TOO_LONG, classify_line, parse_timestamp

PIECE_BYTES = 16 * 1024

_decode_array = msgspec.json.Decoder(list[LogRecord]).decode
_decode = msgspec.json.Decoder(LogRecord).decode
_DECODE_ERRORS = (msgspec.DecodeError, RecursionError)


def _is_utf8(data: bytes) -> bool:
    if data.isascii():
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _all_valid(data: bytes, lines: int) -> list[LogRecord] | None:
    """Records of `data` if each of its `lines` lines is one valid record, else None.

    As array elements, a blank line is an empty element and a value spanning lines
    gets a comma inside it: both fail to decode.
    """
    if not _is_utf8(data):
        return None
    array = b"".join((b"[", memoryview(data.replace(b"\n", b","))[:-1], b"]"))
    try:
        records = _decode_array(array)
    except _DECODE_ERRORS:
        return None
    return records if len(records) == lines else None


class _Scanner:
    def __init__(self, agg: Aggregator) -> None:
        self.agg = agg
        self.line_no = 1  # number of the next line

    def block(self, data: bytes, *, split: bool = True) -> None:
        lines = data.count(b"\n")
        records = _all_valid(data, lines)
        if records is not None and self.agg.add(records):
            self.agg.line_count += lines
            self.line_no += lines
        elif split and len(data) > PIECE_BYTES:
            start = 0
            while start < len(data):
                end = data.find(b"\n", start + PIECE_BYTES) + 1 or len(data)
                self.block(data[start:end], split=False)
                start = end
        else:
            self._lines(data)

    def too_long(self) -> None:
        self.agg.line_count += 1
        self.agg.malformed(self.line_no, REASON_TOO_LONG)
        self.line_no += 1

    def _lines(self, data: bytes) -> None:
        agg = self.agg
        valid: list[LogRecord] = []
        for line in data.split(b"\n")[:-1]:
            self.line_no += 1
            if not line.strip():
                continue
            agg.line_count += 1
            record = _decode_one(line, agg)
            if record is None:
                fields, reason = classify_line(line)
                if fields is None:
                    agg.malformed(self.line_no - 1, reason or "")
                    continue
                record = _from_reference(fields)
            valid.append(record)
        if not agg.add(valid):
            raise AssertionError("a record checked line by line has an unknown level")


def _decode_one(line: bytes, agg: Aggregator) -> LogRecord | None:
    if not _is_utf8(line):
        return None
    try:
        record = _decode(line)
    except _DECODE_ERRORS:
        return None
    return record if agg.level_of(record.level) is not None else None


def _from_reference(fields: dict[str, Any]) -> LogRecord:
    """The record of a line only the reference accepts (a repeated key, a huge integer)."""
    return LogRecord(
        timestamp=parse_timestamp(fields["timestamp"]),
        level=fields["level"],
        endpoint=fields["endpoint"],
        response_time_ms=fields["response_time_ms"],
        status_code=fields["status_code"],
        user_id=fields["user_id"],
    )


def scan(blocks: Iterable[bytes | TooLong], agg: Aggregator | None = None,
         check: Callable[[], None] | None = None) -> Aggregator:
    """Aggregate every block; `check` runs between blocks (e.g. to enforce a deadline)."""
    scanner = _Scanner(agg if agg is not None else Aggregator())
    for item in blocks:
        if check is not None:
            check()
        if type(item) is TooLong:
            scanner.too_long()
        else:
            scanner.block(item)
    return scanner.agg
