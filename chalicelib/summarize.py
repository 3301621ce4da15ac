"""Print each file's statistics as one JSON object per line.

    python -m chalicelib.summarize FILE...

Each object holds the content fields of the result record (docs/spec.md) and `file`, the
path as given. An unreadable file gets a message on stderr, the others are still printed,
and the exit status is 1.
"""

from __future__ import annotations

import argparse
import sys

import msgspec

from chalicelib.core.errors import PipelineError
from chalicelib.core.summary import summarize_file


def parser() -> argparse.ArgumentParser:
    result = argparse.ArgumentParser(
        prog="python -m chalicelib.summarize", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    result.add_argument("files", nargs="+", metavar="FILE",
                        help="NDJSON log file, plain or gzip (`--` before names starting with -)")
    return result


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    status = 0
    for path in args.files:
        try:
            stats = summarize_file(path)
        except (OSError, PipelineError) as exc:
            print(f"summarize: {path}: {exc}", file=sys.stderr)
            status = 1
            continue
        sys.stdout.write(msgspec.json.encode({"file": path, **stats}).decode() + "\n")
        sys.stdout.flush()
    return status


if __name__ == "__main__":
    sys.exit(main())
