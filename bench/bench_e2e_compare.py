"""bench-e2e's measurement on this tree and on the tree at a git ref, side by side.

    python bench/bench_e2e_compare.py [--base REF] [--rounds 3] [--files 100]
    make bench-e2e-compare [BASE=eb511d9^1] [ROUNDS=3] [FILES=100]

Checks REF out into a temporary `git worktree add --detach` (removed at the end) and runs
bench/bench_e2e.py's measurement (files of 1,000 lines uploaded one after another, each
waited for, after warm-up files) on a fresh local runtime of each tree in turn: this tree as
it is (uncommitted edits included) and REF's. Both run with this interpreter and its
packages; REF's runtime runs REF's localruntime, app.py and chalicelib (its tree is the
runtime's working directory, first on PYTHONPATH, and its --project). The order alternates
every round (base then this, this then base, ...), so the machine's noise reaches both.

Prints each run's P50/P95 and the endpoint's CPU time per file (one moto process serves
every AWS call of a runtime, the rollups' writes too), each round's P50 difference (this
minus base), their median, and a verdict against the noise band (--noise, 5 ms: what one
run's P50 moves by on the shared machine). A worse verdict is a finding, not an error: the
exit status is 0 unless a run fails. Every sample goes to results/raw/bench_e2e_compare.csv.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType

from bench.bench_e2e import BenchError, Run, measure_files, run_reporting
from measure.host import cpu_check_seconds
from measure.stats import percentile

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BASE = "eb511d9^1"
NOISE_MS = 5.0
BASE, THIS = "base", "this"
# What the harness (this tree's) needs to be the same in both trees' stage `local`.
SHARED_NAMES = ("LOG_BUCKET", "RESULTS_TABLE")


def order(round_no: int) -> tuple[str, str]:
    """Which side runs first in round `round_no` (1-based): base first in odd rounds."""
    return (BASE, THIS) if round_no % 2 else (THIS, BASE)


@dataclass(frozen=True)
class Verdict:
    differences: list[float]  # per round, this minus base, ms
    median_ms: float
    noise_ms: float

    @property
    def worse(self) -> bool:
        return self.median_ms > self.noise_ms

    @property
    def word(self) -> str:
        if self.worse:
            return "worse"
        if self.median_ms < -self.noise_ms:
            return "better"
        return "the same within the noise"

    def lines(self) -> list[str]:
        spread = ", ".join(f"{d:+.1f}" for d in self.differences)
        return [
            f"P50 difference per round (this minus base): {spread} ms",
            f"median P50 difference: {self.median_ms:+.1f} ms, noise band "
            f"±{self.noise_ms:g} ms: {self.word}",
            f"target: P50 not worse than base beyond the noise "
            f"({self.median_ms:+.1f} ms {'>' if self.worse else '<='} +{self.noise_ms:g} ms): "
            f"{'FAIL' if self.worse else 'PASS'}",
        ]


def verdict(base_p50: list[float], this_p50: list[float], noise_ms: float = NOISE_MS) -> Verdict:
    """Round by round P50 differences (this minus base) and their median against the band."""
    if not base_p50 or len(base_p50) != len(this_p50):
        raise ValueError("one P50 per round and side is needed")
    differences = [this - base for base, this in zip(base_p50, this_p50, strict=True)]
    return Verdict(differences, statistics.median(differences), noise_ms)


def git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BenchError(f"git {' '.join(args)}: {done.stderr.strip() or done.returncode}")
    return done.stdout.strip()


@contextmanager
def checkout(ref: str) -> Iterator[Path]:
    """The tree at `ref` in a temporary detached worktree, removed on the way out."""
    commit = git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    parent = Path(tempfile.mkdtemp(prefix="bench-e2e-base-"))
    tree = parent / "tree"
    git("worktree", "add", "--detach", "--quiet", str(tree), commit)
    try:
        yield tree
    finally:
        try:
            git("worktree", "remove", "--force", str(tree))
        except BenchError as exc:
            print(f"bench: {exc}; pruning instead", file=sys.stderr)
            shutil.rmtree(tree, ignore_errors=True)
            subprocess.run(["git", "worktree", "prune"], cwd=ROOT, check=False)
        shutil.rmtree(parent, ignore_errors=True)


def stage_names(tree: Path) -> dict[str, str]:
    config = json.loads((tree / ".chalice" / "config.json").read_text())
    env = {**config.get("environment_variables", {}),
           **config.get("stages", {}).get("local", {}).get("environment_variables", {})}
    return {name: env.get(name, "") for name in SHARED_NAMES}


def describe(ref: str) -> str:
    return git("log", "-1", "--format=%h %s", ref)[:90]


def write_csv(path: Path, rows: list[dict[str, object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def run(args: argparse.Namespace) -> int:
    raw = Path(args.out)
    dirty = git("status", "--porcelain", "--untracked-files=no")
    print(f"bench: base = {args.base} = {describe(args.base)}")
    print(f"bench: this = the working tree at {describe('HEAD')}"
          f"{' (with uncommitted edits)' if dirty else ''}")
    print(f"bench: {args.rounds} rounds, {args.files} files of {args.lines} lines per run "
          f"after {args.warmup} warm-up files, a fresh runtime per run; CPU check (a Python "
          f"loop of 3 million additions; lower is faster) {cpu_check_seconds():.3f} s",
          flush=True)
    p50: dict[str, list[float]] = {BASE: [], THIS: []}
    cpu: dict[str, list[float]] = {BASE: [], THIS: []}
    rows: list[dict[str, object]] = []
    with checkout(args.base) as base_tree:
        if stage_names(base_tree) != stage_names(ROOT):
            raise BenchError(f"stage local names other {', '.join(SHARED_NAMES)} at "
                             f"{args.base} ({stage_names(base_tree)}) than here "
                             f"({stage_names(ROOT)}); this harness cannot measure it")
        trees = {BASE: base_tree, THIS: ROOT}
        for round_no in range(1, args.rounds + 1):
            for side in order(round_no):
                check = cpu_check_seconds()
                result: Run = measure_files(
                    args.files, args.lines, args.warmup, tree=trees[side],
                    log_path=raw.with_name(f"{raw.stem}-{side}.runtime.log"))
                check = (check + cpu_check_seconds()) / 2
                totals = [s.total_ms for s in result.samples]
                p50[side].append(percentile(totals, 50))
                cpu[side].append(result.endpoint_cpu_ms_per_file or 0.0)
                print(f"round {round_no}/{args.rounds}: {side:<4} P50 {p50[side][-1]:6.1f} ms, "
                      f"P95 {percentile(totals, 95):6.1f} ms, worker "
                      f"{statistics.median(s.worker_ms for s in result.samples):5.1f} ms "
                      f"(median), endpoint CPU {cpu[side][-1]:5.1f} ms/file, CPU check "
                      f"{check:.3f} s", flush=True)
                rows += [{"round": round_no, "side": side,
                          "ref": args.base if side == BASE else "HEAD+edits", **asdict(s)}
                         for s in result.samples]
    print(f"\nbench: medians over the rounds: P50 base {statistics.median(p50[BASE]):.1f} ms, "
          f"this {statistics.median(p50[THIS]):.1f} ms; endpoint (moto) CPU per file base "
          f"{statistics.median(cpu[BASE]):.1f} ms, this {statistics.median(cpu[THIS]):.1f} ms")
    for line in verdict(p50[BASE], p50[THIS], args.noise).lines():
        print(line)
    write_csv(raw, rows)
    print(f"bench: raw numbers in {raw}")
    return 0


def _stop(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # the runtimes stop and the worktree goes on the way out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/bench_e2e_compare.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default=DEFAULT_BASE,
                        help=f"git ref to compare this tree with (default {DEFAULT_BASE}: the "
                        "tree before the event-time rollups)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds, each one run per side (default 3)")
    parser.add_argument("--files", type=int, default=100,
                        help="timed files per run (default 100, as make bench-e2e)")
    parser.add_argument("--lines", type=int, default=1000, help="lines per file (default 1000)")
    parser.add_argument("--warmup", type=int, default=5,
                        help="untimed files before each run's timed ones (default 5)")
    parser.add_argument("--noise", type=float, default=NOISE_MS,
                        help=f"the noise band of a run's P50 in ms (default {NOISE_MS:g})")
    parser.add_argument("--out", default=str(ROOT / "results" / "raw" / "bench_e2e_compare.csv"),
                        help="CSV of every sample (runtime logs go beside it)")
    args = parser.parse_args(argv)
    if min(args.rounds, args.files, args.lines) < 1 or args.warmup < 0 or args.noise < 0:
        parser.error("--rounds, --files and --lines must be at least 1, --warmup and --noise "
                     "at least 0")
    signal.signal(signal.SIGTERM, _stop)
    return run_reporting(run, args)


if __name__ == "__main__":
    sys.exit(main())
