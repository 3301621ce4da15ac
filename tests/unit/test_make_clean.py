"""`make clean` does what its help line says: raw measurements go, the kept runs stay."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def test_clean_removes_raw_measurements_and_keeps_the_compact_runs(tmp_path: Path) -> None:
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    raw = tmp_path / "results" / "raw"
    raw.mkdir(parents=True)
    (raw / "load-local-20260101T000000Z.csv").write_text("run_id\n")
    kept = tmp_path / "results" / "load-local-20260101T000000Z.json.gz"
    kept.write_bytes(b"compact")
    (tmp_path / "demo-data").mkdir()
    (tmp_path / "pkg" / "__pycache__").mkdir(parents=True)

    subprocess.run(["make", "--no-print-directory", "clean"], cwd=tmp_path, check=True,
                   capture_output=True)
    help_text = subprocess.run(["make", "--no-print-directory", "help"], cwd=tmp_path,
                               check=True, capture_output=True, text=True).stdout

    assert not raw.exists() and kept.exists()
    assert not (tmp_path / "demo-data").exists()
    assert not (tmp_path / "pkg" / "__pycache__").exists()
    [clean_line] = [line for line in help_text.splitlines() if line.split()[:1] == ["clean"]]
    assert "raw measurements (results/raw/" in clean_line
