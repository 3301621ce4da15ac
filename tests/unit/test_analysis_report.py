"""`python -m analysis` on small CSV fixtures: report text, comparison table, chart files."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from analysis.__main__ import main
from analysis.charts import CHARTS
from analysis.dataset import latest_runs
from analysis.report import README_BEGIN, README_END
from loadtest.samples import FIELDS

T0 = 1_800_000_000.0
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def row(kind: str, seq: int, e2e_ms: float, *, start: float, lines: int = 1000, users: int = 1,
        phase: str = "measure", outcome: str = "completed") -> dict[str, object]:
    """A file whose time splits as upload 10%, trigger 10%, queue 20%, worker 40%, rest observe."""
    uploaded = start + e2e_ms * 0.1 / 1000
    created = uploaded + e2e_ms * 0.1 / 1000
    started = created + e2e_ms * 0.2 / 1000
    completed = started + e2e_ms * 0.4 / 1000
    done = outcome == "completed"
    return {
        "run_id": "fixture", "kind": kind, "env": "local", "phase": phase, "users": users,
        "seq": seq, "size_label": f"{lines} lines", "lines": lines, "bytes": lines * 160,
        "key": f"logs/{seq}.ndjson", "job_id": f"job{seq}", "outcome": outcome,
        "reason": "" if done else "no final result after 30s (last: queued)",
        "start_epoch": f"{start:.6f}", "upload_ms": f"{e2e_ms * 0.1:.3f}",
        "e2e_ms": f"{e2e_ms:.3f}", "polls": 4, "status": "completed" if done else "queued",
        "uploaded_at": iso(uploaded), "created_at": iso(created),
        "started_at": iso(started) if done else "", "completed_at": iso(completed) if done else "",
        "processing_time_ms": f"{e2e_ms * 0.4:.3f}" if done else "", "attempts": 1,
        "line_count": lines if done else "", "record_bytes": 2200 if done else "",
    }


def write_csv(path: Path, rows: list[dict[str, object]]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture
def results(tmp_path: Path) -> Path:
    directory = tmp_path / "results"
    directory.mkdir()
    protocol = [row("protocol", 1, 400.0, start=T0, lines=100, phase="warmup"),
                row("protocol", 2, 300.0, start=T0 + 1, lines=100, phase="warmup")]
    latencies = [100.0 + i for i in range(30)]  # P50 114, P95 128, P99 129
    for i, e2e in enumerate(latencies):
        protocol.append(row("protocol", i + 3, e2e, start=T0 + 2 + i,
                            lines=(100, 500, 1000)[i % 3]))
    write_csv(directory / "protocol-local-20260101T000000Z.csv", protocol)
    # The load protocol: 8 users paced at 0.375 s, 60 s of 1,000-line files: 1,300 files,
    # 21.7 files/s, P99 150 ms
    load = [row("load", i, 150.0 if i % 50 == 0 else 80.0, start=T0 + 100 + i * 0.046,
                users=8) for i in range(1300)]
    write_csv(directory / "load-local-20260101T000100Z.csv", load)
    (directory / "load-local-20260101T000100Z.host.json").write_text(
        json.dumps({"pace_seconds": 0.375}))
    sweep = [row("sweep", i, 50.0, start=T0 + 200 + i * 0.05, users=1) for i in range(10)]
    sweep += [row("sweep", 100 + i, 90.0, start=T0 + 300 + i * 0.02, users=4) for i in range(40)]
    sweep.append(row("sweep", 999, 30000.0, start=T0 + 300, users=4, outcome="timeout"))
    write_csv(directory / "sweep-local-20260101T000200Z.csv", sweep)
    return directory


def test_report_compares_with_the_seed_and_checks_the_targets(results: Path,
                                                              tmp_path: Path) -> None:
    docs = tmp_path / "docs"

    assert main(["--results", str(results), "--docs", str(docs)]) == 0

    report = (docs / "report.md").read_text()
    assert ("| metric | seed: LocalStack | this: local runtime | seed ÷ this | seed: AWS | "
            "this: AWS | seed ÷ this |") in report
    assert "| P50 | 1,114 ms | 114 ms | 9.8x | 1,954 ms | n/a | n/a |" in report
    assert "| P99 | 1,389 ms | 129 ms | 10.8x | 2,867 ms | n/a | n/a |" in report
    assert "| throughput | >= 20 files/s |" in report
    assert "| P99 latency | <= 300 ms | 150 ms | met |" in report
    assert "| failures | 0 | 0 of 1300 | met |" in report
    assert "**No AWS data.**" in report
    assert "## 3. Cost per million files" in report and "per million files" in report
    assert "| 4 | 41 | 1 |" in report
    for name in CHARTS:
        assert f"(charts/{name})" in report


def test_every_chart_is_a_non_empty_png(results: Path, tmp_path: Path) -> None:
    docs = tmp_path / "docs"

    assert main(["--results", str(results), "--docs", str(docs)]) == 0

    for name in CHARTS:
        data = (docs / "charts" / name).read_bytes()
        assert data.startswith(PNG_MAGIC), name
        assert len(data) > 5_000, name


def test_no_runs_leaves_the_report_alone(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "results"
    empty.mkdir()
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "report.md").write_text("kept")

    assert main(["--results", str(empty), "--docs", str(docs)]) == 2

    assert (docs / "report.md").read_text() == "kept"
    assert "no runs in" in capsys.readouterr().err


def test_charts_and_report_with_only_a_sequential_run(results: Path, tmp_path: Path) -> None:
    for path in results.glob("[ls]*-local-*.csv"):
        path.unlink()
    docs = tmp_path / "docs"

    assert main(["--results", str(results), "--docs", str(docs)]) == 0

    report = (docs / "report.md").read_text()
    assert "| throughput | >= 20 files/s | no local load run" in report
    assert "not measured" in report
    assert "No concurrency sweep yet" in report
    assert all((docs / "charts" / name).stat().st_size > 0 for name in CHARTS)


def test_the_newest_run_of_each_kind_is_used(results: Path) -> None:
    write_csv(results / "protocol-local-20250101T000000Z.csv",
              [row("protocol", 1, 999.0, start=T0)])
    write_csv(results / "protocol-local-20270101T000000Z.csv", [])

    runs = latest_runs(results)

    assert runs[("protocol", "local")].path.name == "protocol-local-20260101T000000Z.csv"
    assert set(runs) == {("protocol", "local"), ("load", "local"), ("sweep", "local")}


def test_a_broken_csv_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / "results"
    results.mkdir()
    (results / "load-local-20260101T000000Z.csv").write_text("run_id,e2e_ms\nx,1\n")

    assert main(["--results", str(results), "--docs", str(tmp_path / "docs")]) == 2

    assert "missing columns" in capsys.readouterr().err


def test_a_missing_results_directory_is_a_clear_error(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--results", str(tmp_path / "nope"), "--docs", str(tmp_path / "docs")]) == 2
    assert "no results directory" in capsys.readouterr().err


def test_readme_figures_are_refreshed_between_the_markers_only(results: Path,
                                                               tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# log-pipeline\n\nintro\n\n{README_BEGIN}\nold figures\n{README_END}\n"
                      "\n## Layout\n")

    assert main(["--results", str(results), "--docs", str(tmp_path / "docs"),
                 "--readme", str(readme)]) == 0

    text = readme.read_text()
    assert "old figures" not in text
    assert text.startswith("# log-pipeline\n\nintro\n\n") and text.endswith("\n## Layout\n")
    block = text[text.index(README_BEGIN):text.index(README_END)]
    assert ("| Chalice, local runtime, sequential (2026-01-01) | 114 ms | 128 ms | 129 ms | 8.73 "
            "| 0 of 30 |") in block
    assert "P99 latency <= 300 ms: 150 ms (met)" in block


def test_readme_without_markers_is_left_alone(results: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# log-pipeline\n")

    assert main(["--results", str(results), "--docs", str(tmp_path / "docs"),
                 "--readme", str(readme)]) == 0

    assert readme.read_text() == "# log-pipeline\n"
    assert "no report markers" in capsys.readouterr().err


def test_every_load_run_is_listed_with_its_cpu_check_and_the_newest_is_judged(
        results: Path, tmp_path: Path) -> None:
    older = [row("load", i, 900.0, start=T0 + i * 0.1, users=8) for i in range(20)]
    write_csv(results / "load-local-20251201T000000Z.csv", older)
    (results / "load-local-20251201T000000Z.host.json").write_text(
        json.dumps({"cpu_check_seconds": 0.2, "pace_seconds": 0.375}))
    docs = tmp_path / "docs"

    assert main(["--results", str(results), "--docs", str(docs)]) == 0

    report = (docs / "report.md").read_text()
    older_line = next(line for line in report.splitlines()
                      if "`load-local-20251201T000000Z`" in line)
    assert "0.375 s" in older_line and "0.200 s" in older_line and "900 ms" in older_line
    newest_line = next(line for line in report.splitlines()
                       if line.startswith("| `load-local-20260101T000100Z`"))
    assert "| yes | 60 s |" in newest_line and "150 ms" in newest_line
    assert "no: 3 s, not 60 s" in older_line
    assert "| P99 latency | <= 300 ms | 150 ms | met |" in report


def test_a_short_run_is_listed_but_never_replaces_the_protocol_run(
        results: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    short = [row("load", i, 2000.0, start=T0 + 5000 + i * 0.05, users=8) for i in range(400)]
    write_csv(raw / "load-local-20270101T000000Z.csv", short)
    (raw / "load-local-20270101T000000Z.host.json").write_text(json.dumps({"pace_seconds": 0.375}))
    readme = tmp_path / "README.md"
    readme.write_text(f"{README_BEGIN}\n{README_END}\n")
    docs = tmp_path / "docs"
    kept_before = sorted(p.name for p in results.iterdir())

    assert main(["--results", str(results), "--docs", str(docs), "--readme", str(readme)]) == 0
    headline = readme.read_text()
    assert main(["--results", str(results), "--raw", str(raw), "--docs", str(docs),
                 "--readme", str(readme)]) == 0

    assert readme.read_text() == headline  # the short run changes no figure the README quotes
    report = (docs / "report.md").read_text()
    assert "| P99 latency | <= 300 ms | 150 ms | met |" in report
    listed = next(line for line in report.splitlines()
                  if "`load-local-20270101T000000Z` (raw, not in git)" in line)
    assert "| no: 22 s, not 60 s | 22 s | 8 |" in listed and "2,000 ms" in listed
    assert sorted(p.name for p in results.iterdir()) == kept_before
    assert "load-local-20270101T000000Z.csv" in [p.name for p in raw.iterdir()]


def test_the_same_runs_make_the_same_report_byte_for_byte_and_it_says_so(
        results: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"{README_BEGIN}\n{README_END}\n")
    docs = tmp_path / "docs"
    outputs = []
    for _ in range(2):
        assert main(["--results", str(results), "--docs", str(docs),
                     "--readme", str(readme)]) == 0
        outputs.append([(docs / "report.md").read_bytes(), readme.read_bytes(),
                        *[(docs / "charts" / name).read_bytes() for name in CHARTS]])

    assert outputs[0] == outputs[1]
    first, second = capsys.readouterr().out.split("analysis: from ")[1:]
    assert "changed " in first and "changed the figures" in first
    assert "are unchanged" in second and "changed " not in second


def test_with_only_a_non_protocol_load_run_the_targets_are_not_judged(
        results: Path, tmp_path: Path) -> None:
    (results / "load-local-20260101T000100Z.host.json").unlink()  # pace not recorded
    docs = tmp_path / "docs"

    assert main(["--results", str(results), "--docs", str(docs)]) == 0

    report = (docs / "report.md").read_text()
    assert "not judged: the only load run, load-local-20260101T000100Z, is not the protocol" \
        in report
    assert "Chalice, local runtime, 8 users, pace not recorded (not the protocol)" in report
    assert "| met |" not in report

