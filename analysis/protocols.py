"""The documented protocol of each kind of run, and how a run departs from it.

The report's headline, its targets and the README quote only runs that follow their
protocol (docs/load-test.md); any other run is listed as such, with its duration, size
and what differs. The Makefile's defaults are these protocols (a unit test checks).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from analysis import stats
from analysis.dataset import Run

# `make run-tests-local` / `run-tests-aws`: the seed's protocol.
PROTOCOL_SIZES = (100, 500, 1000)
PROTOCOL_ITERATIONS = 10
PROTOCOL_WARMUPS = 2
# `make loadtest`: USERS=8, PACE=0.375 (21.3 files/s offered), DURATION=60s, SIZES=1000.
LOAD_USERS = 8
LOAD_PACE_SECONDS = 0.375
LOAD_SECONDS = 60
# `make concurrency-sweep`: STEPS=1,2,4,8,16,32, STEP_SECONDS=20, SIZES=1000.
SWEEP_STEPS = (1, 2, 4, 8, 16, 32)
SWEEP_STEP_SECONDS = 20
LOAD_SIZES = (1000,)
# A run's measured window (first upload to last result) may fall short of its duration by
# the time the last files take; more than this share missing means a shorter run.
WINDOW_SLACK = 0.9


@dataclass(frozen=True)
class Conformance:
    """Whether a run follows its kind's protocol, and in what it departs."""

    run: Run
    departures: tuple[str, ...]

    @property
    def follows(self) -> bool:
        return not self.departures

    @property
    def mode(self) -> str:
        return mode(self.run)

    def describe(self) -> str:
        """Duration and size, and what departs from the protocol: for a non-protocol run."""
        size = f"{window_seconds(self.run):.0f} s, {len(self.run.measured):,} files"
        if self.follows:
            return size
        return f"{size}; not the protocol: {', '.join(self.departures)}"


def window_seconds(run: Run) -> float:
    measured = run.measured
    if not measured:
        return 0.0
    return max(s.end_epoch for s in measured) - min(s.start_epoch for s in measured)


def pace_of(run: Run) -> float | None:
    pace = run.host.get("pace_seconds")
    return float(pace) if isinstance(pace, (int, float)) else None


def mode(run: Run) -> str:
    """How files were sent: sequential, paced (a steady offered rate) or closed loop."""
    if run.kind == "protocol":
        return "sequential (one file at a time)"
    if run.kind == "sweep":
        return "closed loop (users back to back, no pause)"
    pace = pace_of(run)
    if pace is None:
        return f"{run.users} users, pace not recorded"
    if pace == 0:
        return f"closed loop ({run.users} users back to back)"
    return f"paced ({run.users} users, each starting a file every {pace:g} s: " \
           f"{run.users / pace:.1f} files/s offered)"


def _sizes(run: Run) -> tuple[int, ...]:
    return tuple(sorted({s.lines for s in run.measured}))


def _faults(run: Run) -> list[str]:
    args = str(run.host.get("runtime_args") or "")
    return [f"runtime options {args!r}"] if args.strip() else []


def _protocol_departures(run: Run) -> list[str]:
    out = []
    if _sizes(run) != PROTOCOL_SIZES:
        out.append(f"sizes {_sizes(run)}, not {PROTOCOL_SIZES}")
    expected = PROTOCOL_ITERATIONS * len(PROTOCOL_SIZES)
    if len(run.measured) != expected:
        out.append(f"{len(run.measured)} measured files, not {expected}")
    warmups = len(run.samples) - len(run.measured)
    if warmups != PROTOCOL_WARMUPS:
        out.append(f"{warmups} warm-up files, not {PROTOCOL_WARMUPS}")
    if run.users != 1:
        out.append(f"{run.users} users, not 1")
    return out


def _load_departures(run: Run) -> list[str]:
    out = []
    if run.users != LOAD_USERS:
        out.append(f"{run.users} users, not {LOAD_USERS}")
    pace = pace_of(run)
    if pace != LOAD_PACE_SECONDS:
        out.append(f"pace {'not recorded' if pace is None else f'{pace:g} s'}, "
                   f"not {LOAD_PACE_SECONDS:g} s")
    if window_seconds(run) < WINDOW_SLACK * LOAD_SECONDS:
        out.append(f"{window_seconds(run):.0f} s, not {LOAD_SECONDS} s")
    if _sizes(run) != LOAD_SIZES:
        out.append(f"sizes {_sizes(run)}, not {LOAD_SIZES}")
    return out


def _sweep_departures(run: Run) -> list[str]:
    out = []
    points = stats.concurrency_curve(run.measured)
    steps = tuple(p.users for p in points)
    if steps != SWEEP_STEPS:
        out.append(f"steps {','.join(map(str, steps))}, not "
                   f"{','.join(map(str, SWEEP_STEPS))}")
    short = [p.users for p in points
             if _step_window(run, p.users) < WINDOW_SLACK * SWEEP_STEP_SECONDS]
    if short:
        out.append(f"steps shorter than {SWEEP_STEP_SECONDS} s at "
                   f"{','.join(map(str, short))} users")
    if _sizes(run) != LOAD_SIZES:
        out.append(f"sizes {_sizes(run)}, not {LOAD_SIZES}")
    return out


def _step_window(run: Run, users: int) -> float:
    group = [s for s in run.measured if s.users == users]
    return max(s.end_epoch for s in group) - min(s.start_epoch for s in group)


def conformance(run: Run) -> Conformance:
    check = {"protocol": _protocol_departures, "load": _load_departures,
             "sweep": _sweep_departures}[run.kind]
    return Conformance(run, tuple(check(run) + _faults(run)))


@dataclass(frozen=True)
class Selection:
    """The run of each kind and environment the report is built on, and every other run."""

    chosen: dict[tuple[str, str], Conformance]
    others: tuple[Conformance, ...]


def select(runs: Iterable[Run]) -> Selection:
    """For each kind and environment the newest run that follows its protocol; without one,
    the newest run, which the report then marks as not following it."""
    checked = [conformance(run) for run in runs]
    chosen: dict[tuple[str, str], Conformance] = {}
    for check in sorted(checked, key=lambda c: (c.follows, c.run.stamp), reverse=True):
        chosen.setdefault((check.run.kind, check.run.env), check)
    picked = {id(c) for c in chosen.values()}
    others = tuple(c for c in checked if id(c) not in picked)
    return Selection(dict(sorted(chosen.items())), others)
