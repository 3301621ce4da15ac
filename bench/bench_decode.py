"""Ways to cut a block into lines and decode them, side by side (CPU time, best of 3, in turns).

    python bench/bench_decode.py [FILE]        (or: make bench-decode; FILE: the 2M-line file)

Each candidate runs over the blocks exactly as the worker gets them (read, cut into blocks
of whole lines), so a block is as hot in the cache as in the worker; the row "blocks only"
is that common part. Only "split + decode each line" is exact: msgspec's decode_lines also
accepts two values on one line and a value spread over several lines (a line on its own
that is not valid JSON), so it is shown for its speed only, with what proving the framing
would cost. docs/performance.md discusses the figures.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterator
from io import BytesIO
from itertools import chain
from pathlib import Path

import msgspec

from chalicelib.core.lines import line_blocks
from chalicelib.core.records import LogRecord
from chalicelib.core.scan import _decode_each
from chalicelib.core.summary import read_chunks

DEFAULT_FILE = Path(".bench-cache/bench-2000000.ndjson")
_lines = msgspec.json.Decoder(LogRecord).decode_lines
_raw = msgspec.json.Decoder(msgspec.Raw).decode
_one_per_line = msgspec.json.Decoder(tuple[LogRecord]).decode_lines


def _blocks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as f:
        yield from line_blocks(read_chunks(f))  # type: ignore[misc]


def blocks_only(block: bytes) -> None:
    pass


def split_and_decode_each(block: bytes) -> None:
    lines = block.split(b"\n")
    lines.pop()
    _decode_each(lines)


def readlines_and_decode_each(block: bytes) -> None:
    _decode_each(BytesIO(block).readlines())


def readlines_and_scan_each(block: bytes) -> None:
    """msgspec's JSON scan with no fields made: the floor under any typed decode."""
    list(map(_raw, BytesIO(block).readlines()))


def decode_lines(block: bytes) -> None:
    _lines(block)


def decode_lines_and_count_newlines(block: bytes) -> None:
    _lines(block)
    block.count(b"\n")


def each_line_wrapped_as_a_1_tuple(block: bytes) -> None:
    """Exact: `[line]` must hold one record, so no value can span or share a line."""
    rows = _one_per_line(b"[" + block[:-1].replace(b"\n", b"]\n[") + b"]")
    list(chain.from_iterable(rows))


CANDIDATES: dict[str, Callable[[bytes], None]] = {
    "blocks only": blocks_only,
    "split + decode each line (the worker)": split_and_decode_each,
    "BytesIO.readlines + decode each line": readlines_and_decode_each,
    "BytesIO.readlines + each line as msgspec.Raw": readlines_and_scan_each,
    "decode_lines (not exact)": decode_lines,
    "decode_lines + count newlines (not exact)": decode_lines_and_count_newlines,
    "each line wrapped as [line], decode_lines": each_line_wrapped_as_a_1_tuple,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", nargs="?", type=Path, default=DEFAULT_FILE)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if not args.file.exists():
        print(f"bench_decode: {args.file} does not exist (make bench generates it)",
              file=sys.stderr)
        return 2
    lines = sum(block.count(b"\n") for block in _blocks(args.file))
    best = dict.fromkeys(CANDIDATES, float("inf"))
    for _ in range(args.repeats):
        for name, run in CANDIDATES.items():
            start = time.process_time()
            for block in _blocks(args.file):
                run(block)
            best[name] = min(best[name], time.process_time() - start)
    base = best["blocks only"]
    print(f"{args.file}: {lines:,} lines, cpu, best of {args.repeats}, in turns")
    print(f"{'candidate':44s} {'ns/line':>8s} {'minus blocks':>13s}")
    for name, cpu in best.items():
        print(f"{name:44s} {cpu / lines * 1e9:8.0f} {(cpu - base) / lines * 1e9:13.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
