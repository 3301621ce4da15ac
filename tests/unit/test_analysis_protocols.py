"""The protocols the report's headline needs are the Makefile's defaults."""

from __future__ import annotations

import re
from pathlib import Path

from analysis import protocols

ROOT = Path(__file__).resolve().parents[2]


def make_default(name: str) -> str:
    match = re.search(rf"^{name} \?= (.+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert match, name
    return match.group(1).strip()


def test_the_makefile_defaults_are_the_documented_protocols() -> None:
    assert int(make_default("USERS")) == protocols.LOAD_USERS
    assert float(make_default("PACE")) == protocols.LOAD_PACE_SECONDS
    assert make_default("DURATION") == f"{protocols.LOAD_SECONDS}s"
    assert tuple(int(n) for n in make_default("SIZES").split(",")) == protocols.LOAD_SIZES
    assert tuple(int(n) for n in make_default("STEPS").split(",")) == protocols.SWEEP_STEPS
    assert int(make_default("STEP_SECONDS")) == protocols.SWEEP_STEP_SECONDS
