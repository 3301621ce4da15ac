"""What a broken save says: one line, the exception and where in the project it points."""

from __future__ import annotations

from pathlib import Path

from localruntime.log import import_failure
from logctl.deploy import with_origin
from logctl.stage import load_stage

PROJECT = Path("/home/me/pipeline")

SYNTAX = f"""Traceback (most recent call last):
  File "/home/me/pipeline/.venv/lib/python3.11/site-packages/chalice/cli/__init__.py", line 9
  File "{PROJECT}/app.py", line 90
    broken = (
             ^
SyntaxError: '(' was never closed"""

IMPORT = f"""Traceback (most recent call last):
  File "/opt/runtime/localruntime/sources/app.py", line 117, in main
    from app import app
  File "{PROJECT}/app.py", line 12, in <module>
    from chalicelib.api import Api
  File "{PROJECT}/chalicelib/api.py", line 237, in <module>
    import no_such_module_here
ModuleNotFoundError: No module named 'no_such_module_here'"""


def test_a_syntax_error_names_the_file_and_line() -> None:
    assert import_failure(SYNTAX, PROJECT) == (
        "app.py, line 90: SyntaxError: '(' was never closed")


def test_an_import_error_names_the_deepest_project_file_not_the_venv() -> None:
    assert import_failure(IMPORT, PROJECT) == (
        "chalicelib/api.py, line 237: ModuleNotFoundError: No module named "
        "'no_such_module_here'")


def test_an_error_outside_the_project_is_the_exception_alone() -> None:
    text = 'Traceback (most recent call last):\n  File "/x/y.py", line 3\nValueError: bad'
    assert import_failure(text, PROJECT) == "ValueError: bad"


CONFIG = {"stages": {"local": {"environment_variables": {
    "LOG_BUCKET": "b", "JOBS_QUEUE": "q", "DEAD_LETTER_QUEUE": "d", "RESULTS_TABLE": "t",
    "STATS_TABLE": "s", "INGEST_STREAM": "i", "DASHBOARD_ORIGINS": "http://127.0.0.1:8000"}}}}


def test_deploy_keeps_the_running_apis_origin_beside_the_stages() -> None:
    stage = load_stage("local", config=CONFIG, endpoint_url="http://127.0.0.1:4566")

    widened = with_origin(stage, "http://127.0.0.1:8170/")

    assert widened.dashboard_origins == ["http://127.0.0.1:8000", "http://127.0.0.1:8170"]
    assert with_origin(widened, "http://127.0.0.1:8170/") == widened
    assert with_origin(stage, "http://127.0.0.1:8000/") == stage
