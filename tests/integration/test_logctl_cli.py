"""`python -m logctl COMMAND`: dispatch, usage errors, and the shared argument checks."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from logctl import cli
from logctl.__main__ import main

PROJECT = Path(__file__).resolve().parents[2]


def test_no_command_lists_the_commands_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "usage: python -m logctl COMMAND" in out
    assert all(name in out for name in ("provision", "generate", "upload", "results", "dlq"))


def test_help_goes_to_stdout_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "commands:" in capsys.readouterr().out


def test_unknown_command_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err


def test_a_command_runs_through_the_dispatcher(tmp_path: Path) -> None:
    out = tmp_path / "five.ndjson"
    done = subprocess.run(
        [sys.executable, "-m", "logctl", "generate", "--lines", "5", "--seed", "1", "-o", str(out)],
        cwd=PROJECT, capture_output=True, text=True, check=False,
        env={"PYTHONPATH": str(PROJECT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert len(out.read_bytes().splitlines()) == 5


def test_dispatched_errors_keep_their_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["upload", "--endpoint-url", "http://127.0.0.1:9", "/nonexistent.ndjson"]) == 2
    assert "no such file" in capsys.readouterr().err


@pytest.mark.parametrize("text", ["-1", "nan", "inf", "soon"])
def test_non_negative_float_rejects(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        cli.non_negative_float(text)


@pytest.mark.parametrize(("check", "text"), [
    (cli.positive_int, "0"), (cli.positive_int, "1.5"), (cli.non_negative_int, "-1"),
])
def test_integer_options_reject(check: Callable[[str], int], text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        check(text)


def test_accepted_values_pass_through() -> None:
    assert cli.non_negative_float("0") == 0.0
    assert cli.positive_int("3") == 3
    assert cli.non_negative_int("0") == 0
