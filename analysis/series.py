"""The data sets the report compares: this project's runs and the seed's published figures."""

from __future__ import annotations

from dataclasses import dataclass

from analysis import stats
from analysis.dataset import Run, Sample
from analysis.protocols import LOAD_SIZES, LOAD_USERS, Conformance, Selection, pace_of
from analysis.seed import SEED, SeedFigures
from measure.stats import percentile

TARGET_USERS = LOAD_USERS
TARGET_LINES = LOAD_SIZES[0]
TARGET_THROUGHPUT = 20.0
TARGET_P99_MS = 300.0


@dataclass(frozen=True)
class Series:
    """One of this project's runs, reduced to what the charts and tables need."""

    name: str
    env: str
    kind: str
    samples: tuple[Sample, ...]
    warmups: tuple[Sample, ...]
    source: str
    conformance: Conformance

    @property
    def follows_protocol(self) -> bool:
        return self.conformance.follows

    @property
    def date(self) -> str:
        """The day the run was measured (UTC), from its name."""
        return self.conformance.run.started.strftime("%Y-%m-%d")

    @property
    def caption(self) -> str:
        """Which run, when, and how files were sent: every chart states it."""
        return (f"{self.name}: run {self.source}, {self.date}, {self.conformance.mode}"
                + ("" if self.follows_protocol else f"; {self.conformance.describe()}"))

    @property
    def ok_latencies(self) -> list[float]:
        return stats.e2e_values(self.samples)

    @property
    def summary(self) -> stats.LatencySummary | None:
        values = self.ok_latencies
        return stats.summarize(values) if values else None

    @property
    def failures(self) -> int:
        return sum(1 for s in self.samples if not s.ok)

    @property
    def throughput(self) -> float:
        """Sequential runs use the seed's formula; concurrent runs the wall-clock window."""
        if self.kind == "protocol":
            return stats.sequential_throughput(self.samples)
        return stats.wall_throughput(self.samples)

    @property
    def breakdown(self) -> stats.Breakdown | None:
        return stats.breakdown(self.samples)

    @property
    def users(self) -> int:
        return max((s.users for s in self.samples), default=1)

    @property
    def sizes(self) -> list[int]:
        return sorted({s.lines for s in self.samples})


@dataclass(frozen=True)
class Comparison:
    """Everything the report draws: our series (by key) and the seed's figures."""

    series: dict[str, Series]
    sweep: Run | None
    runs: dict[tuple[str, str], Run]
    seed: dict[str, SeedFigures]
    load_history: tuple[Conformance, ...] = ()
    others: tuple[Conformance, ...] = ()
    sweep_conformance: Conformance | None = None

    def get(self, key: str) -> Series | None:
        return self.series.get(key)


NOT_PROTOCOL = " (not the protocol)"


def _series(name: str, check: Conformance) -> Series:
    run = check.run
    return Series(name=name + ("" if check.follows else NOT_PROTOCOL), env=run.env,
                  kind=run.kind, samples=tuple(run.measured),
                  warmups=tuple(s for s in run.samples if not s.measured),
                  source=run.name, conformance=check)


def build(selection: Selection, load_history: tuple[Conformance, ...] = ()) -> Comparison:
    series: dict[str, Series] = {}
    chosen = selection.chosen
    for env, where in (("local", "local runtime"), ("aws", "AWS")):
        protocol = chosen.get(("protocol", env))
        if protocol is not None:
            series[f"protocol-{env}"] = _series(f"Chalice, {where}, sequential", protocol)
        load = chosen.get(("load", env))
        if load is not None:
            pace = pace_of(load.run)
            paced = "pace not recorded" if pace is None else "paced" if pace else "closed loop"
            series[f"load-{env}"] = _series(
                f"Chalice, {where}, {load.run.users} users, {paced}", load)
    sweep = chosen.get(("sweep", "local"))
    return Comparison(series=series, sweep=sweep.run if sweep else None,
                      runs={key: c.run for key, c in chosen.items()}, seed=SEED,
                      load_history=load_history, others=selection.others,
                      sweep_conformance=sweep)


@dataclass(frozen=True)
class TargetCheck:
    name: str
    target: str
    measured: str
    met: bool | None


def target_samples(comparison: Comparison) -> list[Sample]:
    """The local load run's 1,000-line files at the target user count, when that run
    follows the protocol: targets are judged on no other run."""
    load = comparison.get("load-local")
    if load is None or not load.follows_protocol:
        return []
    return [s for s in load.samples if s.lines == TARGET_LINES and s.users == TARGET_USERS]


def check_targets(comparison: Comparison) -> list[TargetCheck]:
    samples = target_samples(comparison)
    load = comparison.get("load-local")
    if not samples:
        missing = "no local load run at 8 users with 1,000-line files (run `make loadtest`)"
        if load is not None and not load.follows_protocol:
            missing = (f"not judged: the only load run, {load.source}, is not the protocol "
                       f"({load.conformance.describe()})")
        return [TargetCheck("throughput", f">= {TARGET_THROUGHPUT:g} files/s", missing, None),
                TargetCheck("P99 latency", f"<= {TARGET_P99_MS:g} ms", missing, None),
                TargetCheck("failures", "0", missing, None)]
    throughput = stats.wall_throughput(samples)
    ok = stats.e2e_values(samples)
    p99 = percentile(ok, 99) if ok else float("inf")
    failures = sum(1 for s in samples if not s.ok)
    return [
        TargetCheck("throughput", f">= {TARGET_THROUGHPUT:g} files/s",
                    f"{throughput:.1f} files/s", throughput >= TARGET_THROUGHPUT),
        TargetCheck("P99 latency", f"<= {TARGET_P99_MS:g} ms", f"{p99:,.0f} ms",
                    p99 <= TARGET_P99_MS),
        TargetCheck("failures", "0", f"{failures} of {len(samples)}", failures == 0),
    ]
