"""BackgroundRuntime runs the source tree it is given: its runtime, app and chalicelib."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from localruntime import background
from localruntime.background import PROJECT_ROOT, BackgroundRuntime


def started(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **kwargs: Any) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def popen(args: list[str], **options: Any) -> object:
        seen.update(options, args=args)
        return object()
    monkeypatch.setattr(background.subprocess, "Popen", popen)
    BackgroundRuntime(tmp_path / "runtime.log", "--no-reload", **kwargs)
    return seen


def test_by_default_this_tree_runs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen = started(monkeypatch, tmp_path)

    assert seen["cwd"] == PROJECT_ROOT
    assert seen["env"]["PYTHONPATH"].split(os.pathsep)[0] == str(PROJECT_ROOT)
    assert seen["args"][seen["args"].index("--project") + 1] == str(PROJECT_ROOT)


def test_another_tree_is_the_working_directory_the_path_and_the_project(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    other = tmp_path / "checkout"

    seen = started(monkeypatch, tmp_path, tree=other)

    assert seen["cwd"] == other
    assert seen["env"]["PYTHONPATH"].split(os.pathsep)[0] == str(other)
    assert seen["args"][seen["args"].index("--project") + 1] == str(other)
