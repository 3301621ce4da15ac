"""The fast path: decode and validate every line of a block with msgspec at C speed.

A block's lines are decoded by one `map` of msgspec's decoder; a line that fails stops
the map only for itself, and decoding resumes after it. The records go to the
aggregator in one batch, and only the lines that failed are looked at one by one,
where the reference decides: malformed lines cost extra work only where they are.
"""

from __future__ import annotations

from collections.abc import Iterable
from io import BytesIO
from typing import Any, cast

import msgspec

from chalicelib.core.aggregate import Aggregator, in_range
from chalicelib.core.lines import TooLong
from chalicelib.core.records import JSON_WHITESPACE, LogRecord
from chalicelib.core.reference import REASON_TOO_LONG, classify_line, parse_timestamp

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


def _decode_each(lines: list[bytes]) -> tuple[list[LogRecord], list[int]]:
    """The records of the lines that decode, and the indexes of those that do not."""
    records: list[LogRecord] = []
    failed: list[int] = []
    rest = iter(lines)
    while True:
        try:
            records.extend(map(_decode, rest))  # keeps what was decoded before an error
        except _DECODE_ERRORS:
            failed.append(len(records) + len(failed))
        else:
            return records, failed


class _Scanner:
    def __init__(self, agg: Aggregator) -> None:
        self.agg = agg
        self.line_no = 1  # number of the next line

    def block(self, data: bytes) -> None:
        # Each line keeps its newline (JSON whitespace; a block ends with one): BytesIO
        # finds the newlines with memchr, bytes.split byte by byte (make bench-decode).
        lines = BytesIO(data).readlines()
        first = self.line_no
        self.line_no += len(lines)
        if _is_utf8(data):  # msgspec does not check the UTF-8 of the fields it skips
            records, failed = _decode_each(lines)
            if self.agg.add(records):
                self.agg.line_count += len(records)
                self._one_by_one([(first + i, lines[i][:-1]) for i in failed], decoded=True)
                return
        self._one_by_one([(n, line[:-1]) for n, line in enumerate(lines, first)], decoded=False)

    def too_long(self) -> None:
        self.agg.line_count += 1
        self.agg.malformed(self.line_no, REASON_TOO_LONG)
        self.line_no += 1

    def _one_by_one(self, numbered: Iterable[tuple[int, bytes]], *, decoded: bool) -> None:
        """Check lines on their own: msgspec first unless it already failed, then the reference."""
        agg = self.agg
        valid: list[LogRecord] = []
        for number, line in numbered:
            if not line.strip(JSON_WHITESPACE):
                continue
            agg.line_count += 1
            if agg.samples_full and not line.lstrip(JSON_WHITESPACE).startswith(b"{"):
                agg.malformed(number, "")  # not an object: only a sample would need its reason
                continue
            record = None if decoded else _decode_one(line, agg)
            if record is None:
                fields, reason = classify_line(line)
                if fields is None:
                    agg.malformed(number, reason or "")
                    continue
                record = _from_reference(fields)
            valid.append(record)
        if not agg.add(valid):
            raise AssertionError("a record checked line by line was refused")


def _decode_one(line: bytes, agg: Aggregator) -> LogRecord | None:
    if not _is_utf8(line):
        return None
    try:
        record = _decode(line)
    except _DECODE_ERRORS:
        return None
    valid = agg.level_of(record.level) is not None and in_range(record.timestamp)
    return record if valid else None


def _from_reference(fields: dict[str, Any]) -> LogRecord:
    """The record of a line only the reference accepts (a repeated key, a huge integer)."""
    values = {name: fields[name] for name in LogRecord.__struct_fields__ if name in fields}
    values["timestamp"] = parse_timestamp(fields["timestamp"])
    return LogRecord(**values)


def scan(blocks: Iterable[bytes | TooLong], agg: Aggregator | None = None) -> Aggregator:
    """Aggregate every block."""
    scanner = _Scanner(agg if agg is not None else Aggregator())
    for item in blocks:
        if type(item) is TooLong:
            scanner.too_long()
        else:
            scanner.block(cast(bytes, item))
    return scanner.agg
