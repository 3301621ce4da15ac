"""Turn a stream of raw byte chunks into blocks of complete lines, in constant memory.

A block is `bytes` holding whole lines, each ending in b"\\n". Lines longer than
MAX_LINE_BYTES are never buffered whole: they are reported as `TooLong` and skipped.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from chalicelib.errors import Unreadable
from chalicelib.records import MAX_LINE_BYTES
from chalicelib.reference import BOM, GZIP_MAGIC

GUNZIP_OUTPUT_LIMIT = 256 * 1024


@dataclass(frozen=True, slots=True)
class Block:
    first_line: int
    data: bytes


@dataclass(frozen=True, slots=True)
class TooLong:
    line: int


def decoded_chunks(raw: Iterable[bytes], *, gzip_hint: bool = False) -> Iterator[bytes]:
    """Yield the file's content: gunzipped when hinted or when it starts with the gzip magic."""
    chunks = iter(raw)
    head = b""
    for chunk in chunks:
        head += chunk
        if len(head) >= len(GZIP_MAGIC):
            break
    if not head:
        return
    rest = _chain(head, chunks)
    if gzip_hint or head.startswith(GZIP_MAGIC):
        yield from _gunzip(rest)
    else:
        yield from rest


def _chain(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


def _gunzip(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Decompress one or more concatenated gzip members, with bounded output per step."""
    decomp = zlib.decompressobj(wbits=31)
    in_member = False
    try:
        for chunk in chunks:
            data = chunk
            while data:
                in_member = True
                out = decomp.decompress(data, GUNZIP_OUTPUT_LIMIT)
                if out:
                    yield out
                if decomp.eof:
                    data = decomp.unused_data
                    decomp = zlib.decompressobj(wbits=31)
                    in_member = False
                elif decomp.unconsumed_tail:
                    data = decomp.unconsumed_tail
                else:
                    data = b""
                    while True:  # output still pending behind the limit
                        out = decomp.decompress(b"", GUNZIP_OUTPUT_LIMIT)
                        if not out:
                            break
                        yield out
                    if decomp.eof:
                        decomp = zlib.decompressobj(wbits=31)
                        in_member = False
    except zlib.error as exc:
        raise Unreadable(f"corrupt gzip data ({exc})") from exc
    if in_member:
        raise Unreadable("gzip data is truncated")


def line_blocks(content: Iterable[bytes], max_line: int = MAX_LINE_BYTES,
                ) -> Iterator[Block | TooLong]:
    """Split content into Blocks of whole lines; strip a leading UTF-8 BOM."""
    line_no = 1
    pending = b""
    skipping = False
    at_start = True
    for chunk in content:
        if at_start:
            pending += chunk
            if len(pending) < len(BOM) and BOM.startswith(pending):
                continue
            chunk, pending, at_start = pending, b"", False
            if chunk.startswith(BOM):
                chunk = chunk[len(BOM):]
        if skipping:
            newline = chunk.find(b"\n")
            if newline < 0:
                continue
            chunk, skipping = chunk[newline + 1:], False
            line_no += 1
        buf = pending + chunk if pending else chunk
        cut = buf.rfind(b"\n") + 1
        if cut == 0:
            pending = buf
        else:
            block, pending = buf[:cut], buf[cut:]
            first_end = block.find(b"\n")
            if first_end > max_line:
                yield TooLong(line_no)
                line_no += 1
                block = block[first_end + 1:]
            if block:
                yield Block(line_no, block)
                line_no += block.count(b"\n")
        if len(pending) > max_line:
            yield TooLong(line_no)
            pending, skipping = b"", True
    if pending:
        yield Block(line_no, pending + b"\n")
