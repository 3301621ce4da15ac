"""Summarize a log file or stream: the content fields of the result record."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from chalicelib.core.aggregate import Aggregator
from chalicelib.core.lines import decoded_chunks, line_blocks
from chalicelib.core.scan import scan
from chalicelib.core.schema import Statistics

READ_SIZE = 64 * 1024


def is_gzip_name(key: str) -> bool:
    return key.lower().endswith(".gz")


def summarize_chunks(chunks: Iterable[bytes], *, gzip_hint: bool = False,
                     check: Callable[[], None] | None = None) -> Statistics:
    """Stream raw (possibly gzipped) chunks through decode, validation and aggregation."""
    return aggregate_chunks(chunks, gzip_hint=gzip_hint, check=check).result()


def aggregate_chunks(chunks: Iterable[bytes], *, gzip_hint: bool = False,
                     check: Callable[[], None] | None = None) -> Aggregator:
    """The aggregator after every chunk: the statistics, and the figures by event hour.

    `check` runs before every decoded chunk (at most 64 KiB of content): also while a
    gzip bomb inflates or an over-long line is skipped, when no line block comes out.
    """
    content = decoded_chunks(chunks, gzip_hint=gzip_hint)
    if check is not None:
        content = _checked(content, check)
    return scan(line_blocks(content))


def _checked(chunks: Iterable[bytes], check: Callable[[], None]) -> Iterator[bytes]:
    for chunk in chunks:
        check()
        yield chunk


def read_chunks(stream: BinaryIO, size: int = READ_SIZE) -> Iterator[bytes]:
    while chunk := stream.read(size):
        yield chunk


def summarize_file(path: str | Path) -> Statistics:
    path = Path(path)
    with path.open("rb") as f:
        return summarize_chunks(read_chunks(f), gzip_hint=is_gzip_name(path.name))
