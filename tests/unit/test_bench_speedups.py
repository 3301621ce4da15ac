"""make bench-speedups: which speed-ups it leaves out, and what it reports."""

from __future__ import annotations

from bench.bench_speedups import ALL, NONE, TOGETHER, report, variants
from localruntime.endpoint.motospeed import SPEEDUPS


def test_every_speed_up_is_left_out_once_between_all_on_and_all_off() -> None:
    chosen = variants([])
    assert chosen[ALL] == "" and chosen[NONE] == "all"
    assert {name: off for name, off in chosen.items() if name not in (ALL, NONE)} == {
        name: name for name in SPEEDUPS}
    assert variants(["update-checks"]) == {ALL: "", "update-checks": "update-checks",
                                           NONE: "all"}
    assert variants(["update-checks", "update-copy"], together=True)[TOGETHER] == (
        "update-checks,update-copy")


def test_the_cost_of_leaving_one_out_is_its_median_minus_all_ons() -> None:
    cpu = {ALL: [30.0, 20.0, 25.0], "update-checks": [40.0, 41.0, 90.0], "snake-case": [26.0]}
    p50 = {ALL: [40.0, 50.0, 45.0], "update-checks": [60.0, 55.0, 58.0], "snake-case": [47.0]}
    lines = report(cpu, p50)
    assert lines[1].split()[:4] == ["(all", "on)", "25.0", "ms"]
    assert lines[2].split() == ["update-checks", "41.0", "ms", "+16.0", "58.0", "ms", "+13.0"]
    assert lines[3].split() == ["snake-case", "26.0", "ms", "+1.0", "47.0", "ms", "+2.0"]
