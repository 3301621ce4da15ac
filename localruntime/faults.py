"""Fault injection: which faults the runtime injects, how often, and the log line of each.

Off unless asked for. `--fault KIND=RATE` (repeatable) sets the probability of one kind;
`--fault all=RATE` sets every kind; `--fault-seed N` makes the draws repeatable (each
process draws from its own stream, seeded from N and its role, so the same run of calls
meets the same faults; which call meets which draw follows the scheduling).

The plan can change while the runtime runs (`python -m logctl faults`): the endpoint holds
the plan in force behind its control route (`CONTROL_PATH`, `localruntime.endpoint.control`),
and the runtime follows it there (`follow`), so every room draws from the current plan
through a `FaultSwitch`.

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
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

from localruntime.log import utc_now
from logctl.faults import CONTROL_PATH

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
FOLLOW_WAIT_SECONDS = 20
FOLLOW_RETRY_SECONDS = 1.0


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

    def describe(self) -> str:
        """`kill=0.5, s3_get_500=1` (kinds with a rate, in KINDS order), or `none`."""
        return ", ".join(f"{kind}={self.rates[kind]:g}" for kind in KINDS
                         if self.rates.get(kind, 0) > 0) or "none"

    def updated(self, specs: list[str]) -> FaultPlan:
        """This plan with the rates `specs` set (as `parse` reads them), the others kept."""
        changes = FaultPlan.parse(specs, option="set").rates
        return FaultPlan(rates={**self.rates, **changes}, seed=self.seed)

    def cleared(self) -> FaultPlan:
        return FaultPlan(seed=self.seed)

    def to_json(self) -> str:
        return json.dumps({"rates": self.rates, "seed": self.seed}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> FaultPlan:
        data = json.loads(text)
        return cls(rates={k: float(v) for k, v in data.get("rates", {}).items()},
                   seed=int(data.get("seed", 0)))

    @classmethod
    def parse(cls, specs: list[str], seed: int = 0, option: str = "--fault") -> FaultPlan:
        """`["s3_get_500=0.1", "kill=0.02"]`, or `all=RATE` for every kind; later wins.
        `option` names where the specs came from in error messages."""
        rates: dict[str, float] = {}
        for spec in specs:
            for part in filter(None, (p.strip() for p in spec.split(","))):
                name, sep, value = part.partition("=")
                name = name.strip()
                if not sep:
                    raise FaultSpecError(f"{option} must look like KIND=RATE, got {part!r}")
                try:
                    rate = float(value)
                except ValueError:
                    raise FaultSpecError(f"{option} {name}: not a number: {value!r}") from None
                if not 0.0 <= rate <= 1.0:
                    raise FaultSpecError(f"{option} {name}: a rate is between 0 and 1, "
                                         f"got {value!r}")
                if name == "all":
                    rates.update(dict.fromkeys(KINDS, rate))
                elif name in KINDS:
                    rates[name] = rate
                else:
                    raise FaultSpecError(f"{option}: unknown kind {name!r} (kinds: "
                                         f"{', '.join(KINDS)}, or all)")
        return cls(rates=rates, seed=seed)

    def dice(self, role: str) -> Dice:
        """Draws from this plan, fixed (a `FaultSwitch` gives draws from the plan in force)."""
        return FaultSwitch(self).dice(role)


class FaultSwitch:
    """The fault plan in force now, and its version (1 at start, +1 at each change).
    Thread-safe; `wait_for_change` lets a reader sleep until the plan changes."""

    def __init__(self, plan: FaultPlan | None = None) -> None:
        self._plan = plan or FaultPlan()
        self._version = 1
        self._changed = threading.Condition()

    @property
    def plan(self) -> FaultPlan:
        return self._plan

    @property
    def version(self) -> int:
        return self._version

    def set(self, plan: FaultPlan, version: int | None = None) -> int:
        """Put `plan` in force (as `version`, or the next one); returns its version."""
        with self._changed:
            self._plan = plan
            self._version = self._version + 1 if version is None else version
            self._changed.notify_all()
            return self._version

    def wait_for_change(self, after: int, timeout: float) -> tuple[int, FaultPlan]:
        """The version and plan in force once the version differs from `after`, or after
        `timeout` seconds."""
        with self._changed:
            self._changed.wait_for(lambda: self._version != after, timeout)
            return self._version, self._plan

    def dice(self, role: str) -> Dice:
        return Dice(self, role)


class Dice:
    """One role's stream of draws from the plan in force (thread-safe)."""

    def __init__(self, switch: FaultSwitch, role: str) -> None:
        self.switch = switch
        self._random = random.Random(f"{switch.plan.seed}:{role}")
        self._lock = threading.Lock()

    def roll(self, kind: str) -> bool:
        rate = self.switch.plan.rate(kind)
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


def control_state(text: bytes) -> tuple[int, FaultPlan]:
    """The version and plan in an answer of the endpoint's control route."""
    state = json.loads(text)
    return int(state["version"]), FaultPlan(
        rates={k: float(v) for k, v in state["rates"].items()}, seed=int(state["seed"]))


def follow(switch: FaultSwitch, endpoint_url: str, stop: threading.Event,
           announce: Callable[[FaultPlan, FaultPlan], None]) -> threading.Thread:
    """Keep `switch` on the endpoint's plan: a long poll of the control route answers when
    the plan there changes (and tells the endpoint this version is in force here).
    `announce(previous, now)` is called at each change."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def loop() -> None:
        while not stop.is_set():
            url = (f"{endpoint_url}{CONTROL_PATH}?after={switch.version}"
                   f"&wait={FOLLOW_WAIT_SECONDS}")
            try:
                with opener.open(url, timeout=FOLLOW_WAIT_SECONDS + 10) as response:
                    version, plan = control_state(response.read())
            except (OSError, ValueError, KeyError):
                stop.wait(FOLLOW_RETRY_SECONDS)
                continue
            if version != switch.version:
                previous = switch.plan
                switch.set(plan, version)
                announce(previous, plan)

    thread = threading.Thread(target=loop, daemon=True, name="faults")
    thread.start()
    return thread


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
