"""What each of the endpoint's speed-ups (`localruntime.endpoint.motospeed`) gains end to end.

    python bench/bench_speedups.py [--rounds 3] [--files 40] [--only a,b [--together]]
    make bench-speedups [ROUNDS=3]

Runs the end-to-end benchmark's measurement (`bench/bench_e2e.py`: files of 1,000 lines
uploaded one after another, each waited for) on fresh runtimes: with every speed-up, with
each one left out in turn (`LOCALRUNTIME_SPEEDUPS_OFF`), and with none; all variants once
per round, in a new order each round. Per variant it prints the endpoint's CPU time per
file (the cost the speed-ups cut, and the steadier figure on a shared machine) and the
end-to-end P50, each the median over the rounds, and what leaving the speed-up out costs.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
from pathlib import Path

from bench.bench_e2e import BenchError, measure_files, run_reporting
from localruntime.endpoint.motospeed import OFF_VARIABLE, SPEEDUPS
from measure.host import cpu_check_seconds
from measure.stats import percentile

ROOT = Path(__file__).resolve().parent.parent
ALL = "(all on)"
NONE = "(all off)"
TOGETHER = "(--only together)"


def variants(only: list[str], *, together: bool = False) -> dict[str, str]:
    """Variant name -> the value of LOCALRUNTIME_SPEEDUPS_OFF."""
    names = only or list(SPEEDUPS)
    chosen = {ALL: "", **{name: name for name in names}, NONE: "all"}
    if together:
        chosen[TOGETHER] = ",".join(names)
    return chosen


def report(cpu: dict[str, list[float]], p50: dict[str, list[float]]) -> list[str]:
    base_cpu = statistics.median(cpu[ALL])
    base_p50 = statistics.median(p50[ALL])
    lines = [f"{'left out':<20} {'endpoint CPU/file':>18} {'cost':>8} {'e2e P50':>9} {'cost':>8}"]
    order = sorted(cpu, key=lambda name: (name != ALL, -statistics.median(cpu[name])))
    for name in order:
        c, p = statistics.median(cpu[name]), statistics.median(p50[name])
        cost = "" if name == ALL else f"{c - base_cpu:+7.1f}"
        late = "" if name == ALL else f"{p - base_p50:+7.1f}"
        lines.append(f"{name:<20} {c:15.1f} ms {cost:>8} {p:6.1f} ms {late:>8}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/bench_speedups.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--files", type=int, default=40)
    parser.add_argument("--lines", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--only", default="", help="comma-separated speed-ups to leave out "
                        f"one at a time (default: each of {', '.join(SPEEDUPS)})")
    parser.add_argument("--together", action="store_true",
                        help="also leave the --only speed-ups out all at once")
    parser.add_argument("--seed", type=int, default=1, help="seed of the order of the variants")
    args = parser.parse_args(argv)
    only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(only) - set(SPEEDUPS))
    if unknown:
        parser.error(f"no speed-up named {', '.join(unknown)}; they are {', '.join(SPEEDUPS)}")
    if min(args.rounds, args.files, args.lines) < 1 or args.warmup < 0:
        parser.error("--rounds, --files and --lines must be at least 1, --warmup at least 0")
    return run_reporting(lambda parsed: run(parsed, only), args)


def run(args: argparse.Namespace, only: list[str]) -> int:
    chosen = variants(only, together=args.together)
    order = random.Random(args.seed)
    cpu: dict[str, list[float]] = {name: [] for name in chosen}
    p50: dict[str, list[float]] = {name: [] for name in chosen}
    before = cpu_check_seconds()
    for round_no in range(1, args.rounds + 1):
        names = list(chosen)
        order.shuffle(names)
        for name in names:
            check = cpu_check_seconds()
            measured = measure_files(args.files, args.lines, args.warmup,
                                log_path=ROOT / "results" / "raw" / "bench_speedups.log",
                                env={OFF_VARIABLE: chosen[name]})
            check = (check + cpu_check_seconds()) / 2
            if measured.endpoint_cpu_ms_per_file is None:
                raise BenchError("the endpoint process of the runtime was not found")
            cpu[name].append(measured.endpoint_cpu_ms_per_file)
            p50[name].append(percentile([s.total_ms for s in measured.samples], 50))
            print(f"round {round_no}/{args.rounds}: {name:<18} endpoint CPU "
                  f"{cpu[name][-1]:5.1f} ms/file, P50 {p50[name][-1]:5.1f} ms, "
                  f"CPU check {check:.3f} s", flush=True)
    print(f"\nbench: {args.files} files of {args.lines} lines per run, {args.rounds} rounds; "
          f"CPU check {before:.3f} s before, {cpu_check_seconds():.3f} s after (lower is "
          "faster); medians over the rounds; cost = with the speed-up left out, minus all on")
    for line in report(cpu, p50):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
