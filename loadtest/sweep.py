"""Locust concurrency sweep: the upload user at 1, 2, 4, ... users, a fixed time per step.

    locust -f loadtest/sweep.py --headless --steps 1,2,4,8,16,32 --step-seconds 20

Each raw CSV row records the user count of the step it started in, so the analysis
draws throughput and latency against concurrency. The run ends after the last step.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from locust import LoadTestShape, events

from loadtest.upload import UploadUser

__all__ = ["ConcurrencySteps", "UploadUser"]
DEFAULT_STEPS = "1,2,4,8,16,32"
# Rows of this run are a sweep unless the caller says otherwise (read when options parse).
os.environ.setdefault("LOADTEST_KIND", "sweep")


def parse_steps(spec: str) -> tuple[int, ...]:
    steps = []
    for part in spec.split(","):
        part = part.strip()
        if not part.isdigit() or int(part) < 1:
            raise ValueError(f"user count {part!r} is not a positive integer")
        steps.append(int(part))
    if not steps:
        raise ValueError("no user counts given")
    return tuple(steps)


@events.init_command_line_parser.add_listener
def _add_options(parser: Any) -> None:
    group = parser.add_argument_group("concurrency sweep")
    group.add_argument("--steps", env_var="LOADTEST_STEPS", default=DEFAULT_STEPS,
                       help="user counts, in order")
    group.add_argument("--step-seconds", env_var="LOADTEST_STEP_SECONDS", type=float,
                       default=20.0, help="seconds at each user count")


@events.init.add_listener
def _on_init(environment: Any, **_: Any) -> None:
    options = environment.parsed_options
    if options is None:
        return
    try:
        ConcurrencySteps.steps = parse_steps(options.steps)
    except ValueError as exc:
        print(f"sweep: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    if options.step_seconds <= 0:
        print("sweep: --step-seconds must be positive", file=sys.stderr, flush=True)
        raise SystemExit(2)
    ConcurrencySteps.step_seconds = float(options.step_seconds)


class ConcurrencySteps(LoadTestShape):
    steps: tuple[int, ...] = tuple(int(n) for n in DEFAULT_STEPS.split(","))
    step_seconds = 20.0

    def tick(self) -> tuple[int, float] | None:
        index = int(self.get_run_time() // self.step_seconds)
        if index >= len(self.steps):
            return None
        users = self.steps[index]
        return users, float(users)
