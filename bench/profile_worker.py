"""Where the worker's time goes, line by line: py-spy samples one summarize of a bench file.

    python bench/profile_worker.py [FILE] [--runs 3] [--rate 250] [--top 20]  (or: make profile)

FILE defaults to the 2,000,000-line file of `make bench` (run that first). Each sample is
charged to the innermost line of chalicelib's code on the stack, so the time of a C call
(msgspec's decode, bytes.split) or of a standard-library helper (Counter.update) shows on
the line of ours that makes it; freeing a block's records shows on the line its function
returns to.
"""

from __future__ import annotations

import argparse
import linecache
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

DEFAULT_FILE = Path(".bench-cache/bench-2000000.ndjson")
CHALICELIB = Path(__file__).resolve().parent.parent / "chalicelib"
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*):(?P<line>\d+)\)$")
_WORKLOAD = ("import sys; from chalicelib.core.summary import summarize_file\n"
             "for _ in range(int(sys.argv[2])): summarize_file(sys.argv[1])")


def time_by_line(raw: str, ours: str) -> tuple[Counter[tuple[str, str, int]], int]:
    """Samples per (function, file, line) of the innermost frame whose file is under `ours`
    (else the innermost frame), from py-spy's raw output."""
    by_line: Counter[tuple[str, str, int]] = Counter()
    total = 0
    for row in raw.splitlines():
        stack, _, count = row.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        total += int(count)
        frames = [m for m in map(_FRAME.match, stack.split(";")) if m]
        if not frames:
            continue
        frame = next((m for m in reversed(frames) if m["file"].startswith(ours)), frames[-1])
        by_line[frame["func"], frame["file"], int(frame["line"])] += int(count)
    return by_line, total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", nargs="?", type=Path, default=DEFAULT_FILE)
    parser.add_argument("--runs", type=int, default=3, help="summarizes of FILE sampled (3)")
    parser.add_argument("--rate", type=int, default=250, help="samples per second (250)")
    parser.add_argument("--top", type=int, default=20, help="lines to show (20)")
    args = parser.parse_args(argv)
    if not args.file.exists():
        print(f"profile_worker: {args.file} does not exist (make bench generates it)",
              file=sys.stderr)
        return 2
    py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which(
        "py-spy")
    if py_spy is None:
        print("profile_worker: py-spy is not installed (make install)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "samples.txt"
        done = subprocess.run(
            [py_spy, "record", "--full-filenames", "--format", "raw", "--rate", str(args.rate),
             "--output", str(out), "--", sys.executable, "-c", _WORKLOAD, str(args.file),
             str(args.runs)],
            capture_output=True, text=True)
        if done.returncode != 0 or not out.exists():
            print(f"profile_worker: py-spy failed:\n{done.stderr}", file=sys.stderr)
            return 1
        by_line, total = time_by_line(out.read_text(), str(CHALICELIB))
    print(f"py-spy, {total} samples at {args.rate}/s, {args.runs} summarizes of {args.file}")
    print(f"{'share':>6s}  {'where':34s} code")
    for (func, file, line), count in by_line.most_common(args.top):
        code = linecache.getline(file, line).strip() if Path(file).exists() else ""
        where = f"{Path(file).name}:{line} {func.split('.')[-1]}"
        print(f"{count / total * 100:5.1f}%  {where[:34]:34s} {code[:70]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
