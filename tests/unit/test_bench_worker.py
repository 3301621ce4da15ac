"""The benchmark's baseline and instruments: a wrong one would mislead every figure."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from bench import bench_decode
from bench.bench_worker import INFLATERS, _inflate, agrees, naive_summarize
from bench.profile_worker import time_by_line
from chalicelib.core.reference import summarize_bytes
from logctl.generate import write_log_file


@pytest.mark.parametrize("packed", [False, True])
def test_the_naive_loop_agrees_with_the_reference(tmp_path: Path, packed: bool) -> None:
    # GIVEN a file with errors and 5 % malformed lines of every kind the generator makes
    path = tmp_path / "logs.ndjson"
    write_log_file(path, 2000, seed=11, malformed_rate=0.05)
    content = path.read_bytes()
    if packed:
        path = tmp_path / "logs.ndjson.gz"
        path.write_bytes(gzip.compress(content))
    # WHEN the naive baseline summarizes it THEN it gives the reference's record
    result = naive_summarize(path)
    assert agrees(summarize_bytes(content), result)
    assert set(result) <= set(summarize_bytes(content))
    assert result["malformed_count"] > 0 and result["error_count"] > 0


@pytest.mark.parametrize("name", sorted(INFLATERS))
def test_every_inflater_compared_streams_the_whole_content(tmp_path: Path, name: str) -> None:
    module = pytest.importorskip(INFLATERS[name])
    content = b"".join(b'{"n":%d}\n' % i for i in range(100_000))
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(content))
    assert _inflate(module, path) == len(content)


def test_profile_charges_each_sample_to_the_innermost_line_of_ours() -> None:
    ours = "/repo/chalicelib"
    raw = "\n".join([
        # a C call's time inside a standard-library helper goes to our calling line
        "<module> (<string>:1);add (/repo/chalicelib/core/aggregate.py:85);"
        "update (/usr/lib/python3.11/collections/__init__.py:690) 7",
        "<module> (<string>:1);block (/repo/chalicelib/core/scan.py:55) 3",
        # no frame of ours: the innermost frame
        "<module> (<string>:1);_find_and_load (<frozen importlib._bootstrap>:1178) 2",
        "",
    ])
    by_line, total = time_by_line(raw, ours)
    assert total == 12
    assert by_line == {
        ("add", "/repo/chalicelib/core/aggregate.py", 85): 7,
        ("block", "/repo/chalicelib/core/scan.py", 55): 3,
        ("_find_and_load", "<frozen importlib._bootstrap>", 1178): 2,
    }


def test_the_decode_comparison_runs_every_candidate(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "logs.ndjson"
    write_log_file(path, 500, seed=3)
    assert bench_decode.main([str(path), "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "500 lines" in out
    assert all(name in out for name in bench_decode.CANDIDATES)
