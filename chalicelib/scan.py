"""The fast path: decode and validate whole blocks of lines at once with msgspec.

A block is first decoded in one call. When every line is a valid record (the common
case) its records go straight to the aggregator. Otherwise the block is split into
smaller pieces, and a piece that still fails is checked line by line, so malformed
lines cost extra work only near where they are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import msgspec

from chalicelib.aggregate import Aggregator
from chalicelib.lines import Block, TooLong
from chalicelib.records import LogRecord
from chalicelib.reference import REASON_JSON, REASON_TOO_LONG, classify_line

PIECE_BYTES = 16 * 1024

_decoder = msgspec.json.Decoder(LogRecord)
_decode_lines = _decoder.decode_lines
_decode = _decoder.decode


def _is_utf8(data: bytes) -> bool:
    if data.isascii():
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _all_valid(data: bytes, lines: int) -> list[LogRecord] | None:
    """Records of `data` if each of its `lines` lines is one valid record, else None."""
    if not _is_utf8(data):
        return None
    try:
        records = _decode_lines(data)
    except msgspec.DecodeError:
        return None
    # decode_lines skips blank lines and lets a value span lines; neither is a match.
    return records if len(records) == lines else None


def _scan_data(data: bytes, first_line: int, agg: Aggregator, *, split: bool = True) -> None:
    lines = data.count(b"\n")
    records = _all_valid(data, lines)
    if records is not None and agg.add(records):
        agg.line_count += lines
        return
    if split and len(data) > PIECE_BYTES:
        start = 0
        line = first_line
        while start < len(data):
            end = data.find(b"\n", start + PIECE_BYTES) + 1 or len(data)
            piece = data[start:end]
            _scan_data(piece, line, agg, split=False)
            line += piece.count(b"\n")
            start = end
        return
    _scan_lines(data, first_line, agg)


def _scan_lines(data: bytes, first_line: int, agg: Aggregator) -> None:
    valid: list[LogRecord] = []
    for offset, line in enumerate(data.split(b"\n")[:-1]):
        if not line.strip():
            continue
        agg.line_count += 1
        record = _decode_one(line, agg)
        if record is None:
            _, reason = classify_line(line)
            agg.malformed(first_line + offset, reason or REASON_JSON)
        else:
            valid.append(record)
    agg.add(valid)


def _decode_one(line: bytes, agg: Aggregator) -> LogRecord | None:
    if not _is_utf8(line):
        return None
    try:
        record = _decode(line)
    except msgspec.DecodeError:
        return None
    return record if agg.level_of(record.level) is not None else None


def scan(blocks: Iterable[Block | TooLong], agg: Aggregator | None = None,
         check: Callable[[], None] | None = None) -> Aggregator:
    """Aggregate every block; `check` runs between blocks (e.g. to enforce a deadline)."""
    agg = agg if agg is not None else Aggregator()
    for item in blocks:
        if check is not None:
            check()
        if type(item) is TooLong:
            agg.line_count += 1
            agg.malformed(item.line, REASON_TOO_LONG)
        else:
            _scan_data(item.data, item.first_line, agg)
    return agg
