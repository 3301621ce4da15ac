"""`python -m chalicelib.summarize FILE...`: one JSON object per file, errors on stderr."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from chalicelib.summarize import main

ROOT = Path(__file__).resolve().parents[2]
SMALL_FILE = "\n".join([
    '{"timestamp":"2024-05-01T12:00:00Z","level":"INFO","endpoint":"/a","response_time_ms":100,'
    '"status_code":200,"user_id":"u1"}',
    '{"timestamp":"2024-05-01T12:00:05+02:00","level":"error","endpoint":"/b",'
    '"response_time_ms":250.5,"status_code":500,"user_id":"u2","extra":{"k":[1,2]}}',
    "",
    "not json",
    '{"timestamp":"2024-05-01 11:59:00","level":"Warning","endpoint":"/a","response_time_ms":40,'
    '"status_code":404,"user_id":"u1"}',
    '{"timestamp":"2024-05-01T12:01:00.5Z","level":"DEBUG","endpoint":"/a","response_time_ms":10,'
    '"status_code":200,"user_id":"u3"}',
]).encode()
EXPECTED = {
    "line_count": 5,
    "malformed_count": 1,
    "malformed_samples": [{"line": 4, "reason": "not valid JSON"}],
    "info_count": 1,
    "warn_count": 1,
    "error_count": 1,
    "debug_count": 1,
    "avg_response_time_ms": 100.125,  # (100 + 250.5 + 40 + 10) / 4
    "max_response_time_ms": 250.5,
    "p50_response_time_ms": 40,  # sorted 10, 40, 100, 250.5: rank 2
    "p95_response_time_ms": 250.5,  # rank ceil(3.8) = 4
    "p99_response_time_ms": 250.5,
    "unique_users": 3,
    "unique_endpoints": 2,
    "status_codes": {"200": 2, "404": 1, "500": 1},
    "top_endpoints": [
        {"endpoint": "/a", "count": 3, "error_count": 0, "avg_response_time_ms": 50.0},
        {"endpoint": "/b", "count": 1, "error_count": 1, "avg_response_time_ms": 250.5},
    ],
    "first_timestamp": "2024-05-01T10:00:05Z",  # 12:00:05+02:00
    "last_timestamp": "2024-05-01T12:01:00.500000Z",
}


@pytest.fixture
def small(tmp_path: Path) -> Path:
    path = tmp_path / "small.ndjson"
    path.write_bytes(SMALL_FILE)
    return path


def test_exact_statistics_of_a_small_file(small: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(small)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert out.count("\n") == 1
    assert json.loads(out) == {"file": str(small), **EXPECTED}


def test_gzip_by_name_and_by_magic(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    named = tmp_path / "a.ndjson.gz"
    unnamed = tmp_path / "b.log"
    named.write_bytes(gzip.compress(SMALL_FILE))
    unnamed.write_bytes(gzip.compress(SMALL_FILE[:200]) + gzip.compress(SMALL_FILE[200:]))
    assert main([str(named), str(unnamed)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line) for line in lines] == [{"file": str(named), **EXPECTED},
                                                    {"file": str(unnamed), **EXPECTED}]


def test_unreadable_files_go_to_stderr_and_the_others_still_print(
        small: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    truncated = tmp_path / "cut.ndjson.gz"
    truncated.write_bytes(gzip.compress(SMALL_FILE)[:-10])
    missing = tmp_path / "missing.ndjson"
    empty = tmp_path / "empty.ndjson"
    empty.write_bytes(b"")
    assert main([str(truncated), str(small), str(missing), str(empty)]) == 1
    out, err = capsys.readouterr()
    results = [json.loads(line) for line in out.splitlines()]
    assert results[0] == {"file": str(small), **EXPECTED}
    assert results[1]["file"] == str(empty)
    assert results[1]["line_count"] == 0 and results[1]["avg_response_time_ms"] is None
    assert len(results) == 2
    err_lines = err.splitlines()
    assert len(err_lines) == 2
    assert str(truncated) in err_lines[0] and "unreadable" in err_lines[0]
    assert str(missing) in err_lines[1]


def test_no_arguments_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([])
    assert exit_.value.code == 2
    assert "usage: python -m chalicelib.summarize" in capsys.readouterr().err


def test_help_describes_the_command_and_reads_no_file(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out, err = capsys.readouterr()
    assert out.startswith("usage: python -m chalicelib.summarize [-h] FILE [FILE ...]")
    assert "one JSON object per line" in out and err == ""


def test_a_file_named_like_an_option_after_a_double_dash(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "--help").write_bytes(SMALL_FILE)
    monkeypatch.chdir(tmp_path)
    assert main(["--", "--help"]) == 0
    assert json.loads(capsys.readouterr().out) == {"file": "--help", **EXPECTED}


def test_runs_as_a_module(small: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.gz"
    bad.write_bytes(b"\x1f\x8b\x08\x00garbage")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "chalicelib.summarize", str(small), str(bad)],
                          capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    assert done.returncode == 1
    assert json.loads(done.stdout) == {"file": str(small), **EXPECTED}
    assert str(bad) in done.stderr
