"""Compact run files: what `make report` reads from git, and the size budget of results/."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from analysis import compact
from analysis.__main__ import main as report_main
from analysis.dataset import (
    LOAD_HISTORY_RUNS,
    DatasetError,
    latest_runs,
    read_run,
    write_compact,
)
from tests.unit.test_analysis_report import T0, row, write_csv

ROOT = Path(__file__).resolve().parents[2]
INVOCATION = ('2026-01-01T00:00:00.000Z worker {"ts": "x", "type": "invocation", '
              '"function": "%s", "duration_ms": %s, "outcome": "ok", "cold_start": %s, '
              '"batch_size": 1}\n')


def raw_run(directory: Path, name: str, latencies: list[float]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = write_csv(directory / f"{name}.csv", [
        row("load", i, e2e, start=T0 + i * 0.1, users=8) for i, e2e in enumerate(latencies)])
    path.with_suffix(".host.json").write_text(json.dumps({"cpu_check_seconds": 0.2,
                                                          "pace_seconds": 0.375}))
    path.with_suffix(".runtime.log").write_text(
        "runtime: starting\n" + INVOCATION % ("trigger", 3.5, "true")
        + INVOCATION % ("worker", 12.25, "false"))
    return path


def test_a_compact_file_holds_the_same_run_as_the_raw_files(tmp_path: Path) -> None:
    raw = raw_run(tmp_path / "raw", "load-local-20260101T000000Z", [80.0, 95.5, 150.0])

    path = write_compact(read_run(raw), tmp_path / "results")
    before, after = read_run(raw), read_run(path)

    assert path.name == "load-local-20260101T000000Z.json.gz"
    assert after.name == before.name and after.kind == "load" and after.env == "local"
    assert after.host == before.host
    assert after.invocations == before.invocations and len(after.invocations) == 2
    assert len(after.samples) == 3
    for old, new in zip(before.samples, after.samples, strict=True):
        assert new.run_id == "load-local-20260101T000000Z"
        assert asdict(replace(new, run_id=old.run_id)) == pytest.approx(asdict(old), abs=1e-6)


def test_the_report_is_the_same_from_compact_files_as_from_raw_ones(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    raw_run(raw, "load-local-20260101T000000Z", [80.0 + i for i in range(40)])
    write_csv(raw / "protocol-local-20260101T000100Z.csv",
              [row("protocol", i, 100.0 + i, start=T0 + i) for i in range(12)])
    assert compact.main(["--raw", str(raw), "--results", str(tmp_path / "results")]) == 0

    for source, docs in ((raw, "docs-raw"), (tmp_path / "results", "docs-compact")):
        assert report_main(["--results", str(source), "--docs", str(tmp_path / docs)]) == 0

    def figures(docs: str) -> list[str]:
        text = (tmp_path / docs / "report.md").read_text()
        return [line for line in text.splitlines()
                if not line.startswith(("Generated", "- `load-local", "- `protocol-local"))]

    assert figures("docs-raw") == figures("docs-compact")
    for chart in (tmp_path / "docs-raw" / "charts").iterdir():
        assert chart.read_bytes() == (tmp_path / "docs-compact" / "charts" / chart.name
                                      ).read_bytes(), chart.name


def test_only_the_runs_the_report_reads_are_kept() -> None:
    loads = [f"load-local-2026010{d}T000000Z" for d in range(1, 10)]
    names = [*loads, "sweep-local-20260101T000000Z", "sweep-local-20260102T000000Z",
             "protocol-aws-20260101T000000Z", "protocol-local-20260101T000000Z"]

    keep = compact.kept(names)

    assert keep == {*loads[-LOAD_HISTORY_RUNS:], "sweep-local-20260102T000000Z",
                    "protocol-aws-20260101T000000Z", "protocol-local-20260101T000000Z"}


def test_compacting_removes_superseded_runs_and_rewrites_nothing_unchanged(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw, results = tmp_path / "raw", tmp_path / "results"
    raw.mkdir()
    write_csv(raw / "protocol-local-20260101T000000Z.csv", [row("protocol", 1, 100.0, start=T0)])
    assert compact.main(["--raw", str(raw), "--results", str(results)]) == 0
    write_csv(raw / "protocol-local-20260102T000000Z.csv", [row("protocol", 1, 90.0, start=T0)])

    assert compact.main(["--raw", str(raw), "--results", str(results)]) == 0
    assert compact.main(["--raw", str(raw), "--results", str(results)]) == 0

    assert [p.name for p in results.iterdir()] == ["protocol-local-20260102T000000Z.json.gz"]
    out = capsys.readouterr().out
    assert out.count("wrote") == 2 and out.count("removed") == 1
    assert latest_runs(results)[("protocol", "local")].samples[0].e2e_ms == 90.0


def test_results_over_the_budget_fail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    raw_run(tmp_path / "raw", "load-local-20260101T000000Z", [80.0] * 50)
    monkeypatch.setattr(compact, "BUDGET_BYTES", 100)

    assert compact.main(["--raw", str(tmp_path / "raw"),
                         "--results", str(tmp_path / "results")]) == 1

    assert "over its budget of 100" in capsys.readouterr().err


def test_a_damaged_compact_file_is_a_clear_error(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / "results"
    results.mkdir()
    (results / "load-local-20260101T000000Z.json.gz").write_bytes(
        gzip.compress(b'{"format": "something else"}'))

    with pytest.raises(DatasetError, match="not a log-pipeline-run/1 document"):
        read_run(results / "load-local-20260101T000000Z.json.gz")
    assert report_main(["--results", str(results), "--docs", str(tmp_path / "docs")]) == 2
    assert "load-local-20260101T000000Z.json.gz" in capsys.readouterr().err


def test_the_repository_keeps_only_compact_runs_within_the_budget() -> None:
    results = ROOT / "results"
    kept = [p for p in results.iterdir() if p.is_file()]

    assert compact.tracked_bytes(results) <= compact.BUDGET_BYTES
    assert all(p.name.endswith(".json.gz") or p.name == "README.md"
               for p in kept), [p.name for p in kept]
    assert compact.kept(p.name[:-len(".json.gz")] for p in kept
                        if p.name.endswith(".json.gz")) == {
        p.name[:-len(".json.gz")] for p in kept if p.name.endswith(".json.gz")}
    assert latest_runs(results), "make report would have nothing to read"


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(),
                    reason="needs a git checkout")
def test_git_ignores_raw_measurements() -> None:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", f"results/raw/load-local-{stamp}.runtime.log"],
        cwd=ROOT, check=False)

    assert ignored.returncode == 0


def test_a_newer_run_off_the_protocol_does_not_push_out_the_protocol_run(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw, results = tmp_path / "raw", tmp_path / "results"
    protocol = [row("protocol", 1, 400.0, start=T0, lines=100, phase="warmup"),
                row("protocol", 2, 300.0, start=T0 + 1, lines=100, phase="warmup")]
    protocol += [row("protocol", i + 3, 100.0 + i, start=T0 + 2 + i,
                     lines=(100, 500, 1000)[i % 3]) for i in range(30)]
    results.mkdir()
    write_csv(results / "protocol-local-20260101T000000Z.csv", protocol)
    assert compact.main(["--raw", str(results), "--results", str(results)]) == 0
    (results / "protocol-local-20260101T000000Z.csv").unlink()
    raw.mkdir()
    write_csv(raw / "protocol-local-20260102T000000Z.csv", protocol[:5])  # 3 files: not it

    assert compact.main(["--raw", str(raw), "--results", str(results)]) == 0

    assert sorted(p.name for p in results.iterdir()) == [
        "protocol-local-20260101T000000Z.json.gz", "protocol-local-20260102T000000Z.json.gz"]
    assert "removed" not in capsys.readouterr().out
