"""Print each file's statistics as one JSON object per line.

    python -m chalicelib.summarize FILE...

Exit status 1 if any file could not be read (the others are still printed).
"""

from __future__ import annotations

import sys

import msgspec

from chalicelib.errors import PipelineError
from chalicelib.summary import summarize_file


def main(argv: list[str] | None = None) -> int:
    paths = sys.argv[1:] if argv is None else argv
    if not paths:
        print("usage: python -m chalicelib.summarize FILE...", file=sys.stderr)
        return 2
    status = 0
    for path in paths:
        try:
            stats = summarize_file(path)
        except (OSError, PipelineError) as exc:
            print(f"summarize: {path}: {exc}", file=sys.stderr)
            status = 1
            continue
        sys.stdout.write(msgspec.json.encode(stats).decode() + "\n")
        sys.stdout.flush()
    return status


if __name__ == "__main__":
    sys.exit(main())
