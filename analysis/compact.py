"""Keep in git only what `make report` reads: one compact file per run, within a size budget.

    python -m analysis.compact [--raw results/raw] [--results results]

Every raw run in `--raw` (`<run>.csv` with its `.host.json` and `.runtime.log`, not in
git) that the report reads becomes `<results>/<run>.json.gz` (gzip JSON, byte-identical
when rewritten from the same data); compact files the report no longer reads are removed.
The report reads the newest run of each kind and environment, the newest that follows its
protocol (analysis.protocols), and the newest LOAD_HISTORY_RUNS load runs of each
environment. Run by `make keep-results` only: nothing else changes `--results`. Exit 1
when `--results` ends larger than BUDGET_BYTES (1 MiB: about 8 load runs of 60 s, a sweep
and the protocol runs).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from analysis.dataset import (
    COMPACT_SUFFIX,
    LOAD_HISTORY_RUNS,
    RAW_SUFFIX,
    RUN_FILE,
    DatasetError,
    read_run,
    run_files,
    write_compact,
)
from analysis.protocols import select

BUDGET_BYTES = 1024 * 1024


def kept(names: Iterable[str]) -> set[str]:
    """The runs the report reads: the newest of each kind and environment, and the newest
    LOAD_HISTORY_RUNS load runs of each environment."""
    by_key: dict[tuple[str, str], list[str]] = {}
    for name in names:
        match = RUN_FILE.match(name)
        if match:
            by_key.setdefault((match["kind"], match["env"]), []).append(name)
    keep: set[str] = set()
    for (kind, _), group in by_key.items():
        newest_first = sorted(group, key=lambda name: name[-16:], reverse=True)
        keep.update(newest_first[:LOAD_HISTORY_RUNS if kind == "load" else 1])
    return keep


@dataclass
class Outcome:
    written: list[Path] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)


def compact(raw: Path, results: Path) -> Outcome:
    """Write the compact file of every raw run the report reads; remove the others."""
    raw_runs = {name: path for name, path in run_files(raw).items()
                if path.name.endswith(RAW_SUFFIX)} if raw.is_dir() else {}
    compacts = {name: path for name, path in run_files(results).items()
                if path.name.endswith(COMPACT_SUFFIX)} if results.is_dir() else {}
    both = {**raw_runs, **compacts}
    # The run of each kind the report's headline takes is kept even when a newer run of
    # that kind, not following the protocol, would otherwise replace it.
    keep = kept(both) | {check.run.name for check in
                         select(read_run(path) for path in both.values()).chosen.values()}
    outcome = Outcome()
    for name in sorted(keep & raw_runs.keys()):
        before = compacts[name].read_bytes() if name in compacts else b""
        path = write_compact(read_run(raw_runs[name]), results)
        if path.read_bytes() != before:
            outcome.written.append(path)
    for name in sorted(compacts.keys() - keep):
        compacts[name].unlink()
        outcome.removed.append(compacts[name])
    return outcome


def tracked_bytes(results: Path) -> int:
    """Bytes in `results` outside its raw/ directory: what git holds."""
    return sum(path.stat().st_size for path in results.rglob("*")
               if path.is_file() and "raw" not in path.relative_to(results).parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis.compact", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--raw", default="results/raw", help="directory of raw runs")
    parser.add_argument("--results", default="results", help="directory of compact runs")
    args = parser.parse_args(argv)
    raw, results = Path(args.raw), Path(args.results)
    try:
        outcome = compact(raw, results)
    except (DatasetError, OSError, ValueError) as exc:
        print(f"compact: {exc}", file=sys.stderr)
        return 2
    for path in outcome.written:
        print(f"compact: wrote {path} ({path.stat().st_size:,} bytes)")
    for path in outcome.removed:
        print(f"compact: removed {path} (the report reads newer runs)")
    size = tracked_bytes(results) if results.is_dir() else 0
    if size > BUDGET_BYTES:
        print(f"compact: {results}/ holds {size:,} bytes, over its budget of "
              f"{BUDGET_BYTES:,}", file=sys.stderr)
        return 1
    print(f"compact: {results}/ holds {size:,} bytes of its {BUDGET_BYTES:,}-byte budget")
    return 0


if __name__ == "__main__":
    sys.exit(main())
