"""The runtime's command-line overrides: typos refused, applied values echoed, mismatches warned."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from localruntime.settings import RuntimeSettings, SettingsError

CONFIG = {
    "version": "2.0", "app_name": "app",
    "environment_variables": {"SHARED": "x"},
    "stages": {"local": {
        "environment_variables": {
            "LOG_BUCKET": "b", "JOBS_QUEUE": "q", "DEAD_LETTER_QUEUE": "d", "RESULTS_TABLE": "t",
            "STATS_TABLE": "s", "INGEST_STREAM": "i",
            "WORKER_TIMEOUT_SECONDS": "60", "RETRY_BASE_SECONDS": "1"},
        "lambda_functions": {"worker": {"lambda_timeout": 60, "reserved_concurrency": 4}},
    }},
}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / ".chalice").mkdir()
    (tmp_path / ".chalice" / "config.json").write_text(json.dumps(CONFIG))
    (tmp_path / "app.py").write_text("")
    return tmp_path


def settings(project: Path, **kwargs: object) -> RuntimeSettings:
    return RuntimeSettings(project=project, stage_name="local", host="127.0.0.1", port=1,
                           **kwargs)  # type: ignore[arg-type]


def test_set_of_a_declared_variable_is_applied(project: Path) -> None:
    stage = settings(project, overrides={"RETRY_BASE_SECONDS": "0.1", "SHARED": "y"}).stage()

    assert stage.environment["RETRY_BASE_SECONDS"] == "0.1"
    assert stage.environment["SHARED"] == "y"


def test_set_of_an_undeclared_variable_is_refused_with_a_suggestion(project: Path) -> None:
    with pytest.raises(SettingsError, match=r"--set RETRY_BASE_SECOND: stage 'local' declares "
                       r"no such variable \(did you mean RETRY_BASE_SECONDS\?\)"):
        settings(project, overrides={"RETRY_BASE_SECOND": "0.1"}).stage()


@pytest.mark.parametrize(("option", "field"), [("--timeout", "timeouts"),
                                               ("--concurrency", "concurrency")])
def test_an_override_for_a_function_the_app_lacks_is_refused(project: Path, option: str,
                                                             field: str) -> None:
    chosen = settings(project, **{field: {"wokrer": 5}})

    with pytest.raises(SettingsError, match=rf"{option} wokrer: the app has no function "
                       r"'wokrer' \(did you mean worker\?\) \(it has: trigger, worker\)"):
        chosen.check_functions(["worker", "trigger"])
    settings(project, **{field: {"worker": 5}}).check_functions(["worker", "trigger"])


def test_the_applied_overrides_are_listed_with_what_they_replace(project: Path) -> None:
    chosen = settings(project, overrides={"RETRY_BASE_SECONDS": "0.1"},
                      timeouts={"worker": 5.0}, concurrency={"worker": 1, "trigger": 3})

    assert chosen.applied_overrides() == [
        "override: --set RETRY_BASE_SECONDS=0.1 (stage value '1')",
        "override: --timeout worker=5 s (stage value 60 s)",
        "override: --concurrency worker=1 (stage value: reserved_concurrency 4)",
        "override: --concurrency trigger=3 (stage value: none, default 2 or the event "
        "source's maximum)",
    ]
    assert settings(project).applied_overrides() == []


def test_a_worker_timeout_without_its_variable_is_a_warning(project: Path) -> None:
    alone = settings(project, timeouts={"worker": 5.0})
    both = settings(project, timeouts={"worker": 5.0},
                    overrides={"WORKER_TIMEOUT_SECONDS": "5"})
    variable_only = settings(project, overrides={"WORKER_TIMEOUT_SECONDS": "30"})

    [warning] = alone.timeout_warnings(alone.stage())
    assert "worker times out after 5 s but WORKER_TIMEOUT_SECONDS is '60'" in warning
    assert "--set WORKER_TIMEOUT_SECONDS=5" in warning
    assert both.timeout_warnings(both.stage()) == []
    assert len(variable_only.timeout_warnings(variable_only.stage())) == 1
    assert settings(project).timeout_warnings(settings(project).stage()) == []
