"""The fast path: decode and validate whole blocks of lines at once with msgspec.

A block is decoded in one call. When every line is one valid record (the common case)
its records go straight to the aggregator. Otherwise the block is split into smaller
pieces, and a piece that still fails is checked line by line, where the reference
decides: malformed lines cost extra work only near where they are.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from chalicelib.aggregate import Aggregator
from chalicelib.lines import TooLong
from chalicelib.records import LogRecord
from chalicelib.reference import REASON_TOO_LONG, classify_line, parse_timestamp

PIECE_BYTES = 16 * 1024

_decoder = msgspec.json.Decoder(LogRecord)
_decode_lines = _decoder.decode_lines
_decode = _decoder.decode
_DECODE_ERRORS = (msgspec.DecodeError, RecursionError)
# Every value is an object, so two values on one line show a "}" then a "{" between
# newlines (or inside a string, which only costs a needless slow path).
_SHARED_LINE = re.compile(rb"\}[ \t\r]*\{")


def _is_utf8(data: bytes) -> bool:
    if data.isascii():
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _all_valid(data: bytes) -> list[LogRecord] | None:
    """The records of `data` if each of its lines is one valid record, else None.

    decode_lines skips blank lines and lets values share or span lines. With shared
    lines ruled out, one line per record leaves no room for blank or spanned lines.
    """
    if not _is_utf8(data):
        return None
    try:
        records = _decode_lines(data)
    except _DECODE_ERRORS:
        return None
    if not records or _SHARED_LINE.search(data) or not _has_lines(data, len(records)):
        return None
    return records


def _has_lines(data: bytes, n: int) -> bool:
    """True if `data`, which ends in a newline, has exactly n >= 1 lines.

    Faster than counting: replace() finds newlines with memchr, count() does not.
    """
    return data.replace(b"\n", b" ", n - 1).find(b"\n") == len(data) - 1


class _Scanner:
    def __init__(self, agg: Aggregator) -> None:
        self.agg = agg
        self.line_no = 1  # number of the next line

    def block(self, data: bytes, *, split: bool = True) -> None:
        records = _all_valid(data)
        if records is not None and self.agg.add(records):
            self.agg.line_count += len(records)
            self.line_no += len(records)
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
