"""What the operator targets hand their commands, read with `make -n` (nothing runs)."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def planned(target: str, *assignments: str, module: str) -> list[str]:
    """The arguments `make TARGET ASSIGNMENTS` would run `python -m MODULE` with."""
    out = subprocess.run(["make", "-n", "--no-print-directory", target, *assignments],
                         cwd=ROOT, check=True, capture_output=True, text=True).stdout
    out = out.replace("\\\n", " ")
    [line] = [line for line in out.splitlines() if f"-m {module}" in line]
    words = shlex.split(line)
    return words[words.index(module) + 1:]


def test_a_quoted_file_name_with_a_space_reaches_upload_as_one_file() -> None:
    args = planned("upload", 'FILE="demo-data/a b.ndjson"', module="logctl.upload")

    assert args[-1] == "demo-data/a b.ndjson"


def test_upload_without_a_file_prints_the_usage_and_runs_nothing() -> None:
    done = subprocess.run(["make", "--no-print-directory", "upload"], cwd=ROOT,
                          capture_output=True, text=True)

    assert done.returncode != 0 and "usage: make upload FILE=path" in done.stderr


@pytest.mark.parametrize("target", ["upload", "results", "dlq", "redrive"])
def test_port_names_the_local_runtime_for_every_operator_command(target: str) -> None:
    module = {"upload": "logctl.upload", "results": "logctl.results"}.get(target, "logctl.dlq")
    extra = ("FILE=x.ndjson",) if target == "upload" else ()

    aimed = planned(target, "PORT=4650", *extra, module=module)
    found = planned(target, *extra, module=module)

    assert "--endpoint-url" in aimed and "http://127.0.0.1:4650" in aimed
    assert "--endpoint-url" not in found  # the running runtime's endpoint file decides


def test_dashboard_follows_the_running_runtime_unless_a_port_is_given() -> None:
    assert "--port" not in planned("dashboard", module="logctl.dashboard")
    assert planned("dashboard", "API_PORT=8150", module="logctl.dashboard")[-2:] == [
        "--port", "8150"]


def test_generate_without_out_does_not_write_over_a_demo_file() -> None:
    from localruntime.demo import SAMPLES

    args = planned("generate", module="logctl.generate")
    out = Path(args[args.index("-o") + 1])

    assert out.parent.name == "demo-data"
    assert out.name not in {sample.name for sample in SAMPLES}


@pytest.mark.parametrize("target", ["loadtest", "concurrency-sweep", "run-tests-local",
                                    "run-tests-aws", "report"])
def test_measuring_and_reporting_never_change_the_kept_runs(target: str) -> None:
    out = subprocess.run(["make", "-n", "--no-print-directory", target], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout

    assert "analysis.compact" not in out


def test_only_keep_results_keeps_runs() -> None:
    out = subprocess.run(["make", "-n", "--no-print-directory", "keep-results"], cwd=ROOT,
                         check=True, capture_output=True, text=True).stdout

    assert "-m analysis.compact" in out


def test_bench_e2e_compare_takes_the_ref_rounds_and_files_and_defaults_to_before_trends() -> None:
    def words(*assignments: str) -> list[str]:
        out = subprocess.run(["make", "-n", "--no-print-directory", "bench-e2e-compare",
                              *assignments], cwd=ROOT, check=True, capture_output=True,
                             text=True).stdout.replace("\\\n", " ")
        return shlex.split(out.split("bench/bench_e2e_compare.py", 1)[1])

    assert words() == ["--base", "eb511d9^1", "--rounds", "3", "--files", "100"]
    assert words("BASE=main~2", "ROUNDS=2", "FILES=30") == [
        "--base", "main~2", "--rounds", "2", "--files", "30"]


def test_bench_lag_takes_the_number_of_files() -> None:
    out = subprocess.run(["make", "-n", "--no-print-directory", "bench-lag", "FILES=30"],
                         cwd=ROOT, check=True, capture_output=True, text=True).stdout

    assert "bench/bench_lag.py --files 30" in out
