"""Fault injection: which faults the runtime injects, how often, and the log line of each.

Off unless asked for. `--fault KIND=RATE` (repeatable) sets the probability of one kind;
`--fault all=RATE` sets every kind; `--fault-seed N` makes the draws repeatable (each
process draws from its own stream, seeded from N and its role, so the same run of calls
meets the same faults; which call meets which draw follows the scheduling).

The kinds (KINDS below), where each is injected and what it does: docs/guarantees.md.

Endpoint faults hit only calls made by handler code (the runtime tags its handlers'
SDK user agent), and the stream kinds only the stream pollers' reads (tagged likewise),
never the runtime's other polling or a user's tools. Every injected fault
is one JSON line in the runtime's log: `{"ts", "type": "fault", "kind", ...}`.
"""

from __future__ import annotations

import json
import random
import sys
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

ENDPOINT_KINDS = ("s3_get_500", "s3_get_slowdown", "s3_get_reset", "ddb_throughput",
                  "ddb_500", "sqs_send_500", "sqs_visibility_500", "stream_read_500",
                  "stream_read_throttle", "stream_iterator_expired")
RUNTIME_KINDS = ("kill", "s3_duplicate", "s3_delay")
KINDS = ENDPOINT_KINDS + RUNTIME_KINDS
HANDLER_APP_ID = "localruntime-handler"
# Tags the stream pollers' calls: the Lambda service's own reads, which fail as AWS's do.
POLLER_APP_ID = "localruntime-poller"
NOTIFICATION_DELAY_MAX_SECONDS = 20
KILL_MEAN_SECONDS = 0.25


class FaultSpecError(ValueError):
    """A `--fault` option names an unknown kind or a rate outside 0..1."""


@dataclass(frozen=True)
class FaultPlan:
    """Probability per kind (0 = never) and the seed of every draw."""

    rates: dict[str, float] = field(default_factory=dict)
    seed: int = 0

    @property
    def active(self) -> bool:
        return any(rate > 0 for rate in self.rates.values())

    def rate(self, kind: str) -> float:
        return self.rates.get(kind, 0.0)

    def endpoint_active(self) -> bool:
        return any(self.rate(kind) > 0 for kind in ENDPOINT_KINDS)

    def to_json(self) -> str:
        return json.dumps({"rates": self.rates, "seed": self.seed}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> FaultPlan:
        data = json.loads(text)
        return cls(rates={k: float(v) for k, v in data.get("rates", {}).items()},
                   seed=int(data.get("seed", 0)))

    @classmethod
    def parse(cls, specs: list[str], seed: int = 0) -> FaultPlan:
        """`["s3_get_500=0.1", "kill=0.02"]`, or `all=RATE` for every kind; later wins."""
        rates: dict[str, float] = {}
        for spec in specs:
            for part in filter(None, (p.strip() for p in spec.split(","))):
                name, sep, value = part.partition("=")
                name = name.strip()
                if not sep:
                    raise FaultSpecError(f"--fault must look like KIND=RATE, got {part!r}")
                try:
                    rate = float(value)
                except ValueError:
                    raise FaultSpecError(f"--fault {name}: not a number: {value!r}") from None
                if not 0.0 <= rate <= 1.0:
                    raise FaultSpecError(f"--fault {name}: a rate is between 0 and 1, "
                                         f"got {value!r}")
                if name == "all":
                    rates.update(dict.fromkeys(KINDS, rate))
                elif name in KINDS:
                    rates[name] = rate
                else:
                    raise FaultSpecError(f"--fault: unknown kind {name!r} (kinds: "
                                         f"{', '.join(KINDS)}, or all)")
        return cls(rates=rates, seed=seed)

    def dice(self, role: str) -> Dice:
        return Dice(self, role)


class Dice:
    """One role's stream of draws (thread-safe)."""

    def __init__(self, plan: FaultPlan, role: str) -> None:
        self.plan = plan
        self._random = random.Random(f"{plan.seed}:{role}")
        self._lock = threading.Lock()

    def roll(self, kind: str) -> bool:
        rate = self.plan.rate(kind)
        if rate <= 0:
            return False
        with self._lock:
            return self._random.random() < rate

    def first(self, kinds: tuple[str, ...]) -> str | None:
        """The first of `kinds` whose draw comes up (one draw per kind with a rate)."""
        for kind in kinds:
            if self.roll(kind):
                return kind
        return None

    def uniform(self, low: float, high: float) -> float:
        with self._lock:
            return self._random.uniform(low, high)

    def exponential(self, mean: float) -> float:
        with self._lock:
            return self._random.expovariate(1.0 / mean)


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def fault_line(kind: str, **fields: Any) -> str:
    return json.dumps({"ts": utc_now(), "type": "fault", "kind": kind, **fields},
                      default=str, separators=(",", ":"))


def log_fault(kind: str, stream: IO[str] | None = None, **fields: Any) -> None:
    out = stream or sys.stderr
    out.write(fault_line(kind, **fields) + "\n")
    out.flush()


def count_faults(lines: list[str]) -> dict[str, int]:
    """Faults by kind in a runtime log's lines."""
    counts: dict[str, int] = {}
    for line in lines:
        if '"type":"fault"' not in line and '"type": "fault"' not in line:
            continue
        start = line.find("{")
        try:
            record = json.loads(line[start:])
        except ValueError:
            continue
        if record.get("type") == "fault":
            counts[record["kind"]] = counts.get(record["kind"], 0) + 1
    return counts
