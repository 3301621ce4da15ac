"""Which endpoint stage `local` talks to: AWS_ENDPOINT_URL, else `make local`'s endpoint file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from logctl import dashboard
from logctl import stage as stage_module
from logctl.stage import (
    LOCAL_ENDPOINT,
    RuntimeRecord,
    load_stage,
    read_api_url,
    read_endpoint_file,
    read_runtime_record,
    remove_endpoint_file,
    serving_runtime,
    session_for,
    write_endpoint_file,
)

CONFIG = {"stages": {name: {"environment_variables": {
    "LOG_BUCKET": "b", "JOBS_QUEUE": "q", "DEAD_LETTER_QUEUE": "d", "RESULTS_TABLE": "t",
    "STATS_TABLE": "s", "INGEST_STREAM": "i"}}
    for name in ("local", "aws")}}


@pytest.fixture
def endpoint_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / ".localruntime-endpoint"
    monkeypatch.setattr(stage_module, "ENDPOINT_FILE", path)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    return path


def test_the_runtimes_endpoint_file_is_followed(endpoint_file: Path) -> None:
    write_endpoint_file("http://127.0.0.1:5123", endpoint_file)

    assert load_stage("local", config=CONFIG).endpoint_url == "http://127.0.0.1:5123"
    assert load_stage("aws", config=CONFIG).endpoint_url is None


def test_aws_endpoint_url_and_an_explicit_endpoint_win_over_the_file(
        endpoint_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_endpoint_file("http://127.0.0.1:5123", endpoint_file)

    assert load_stage("local", config=CONFIG,
                      endpoint_url="http://127.0.0.1:7").endpoint_url == "http://127.0.0.1:7"
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    assert load_stage("local", config=CONFIG).endpoint_url == "http://127.0.0.1:9"


def test_without_a_file_the_default_port_is_used(endpoint_file: Path) -> None:
    assert load_stage("local", config=CONFIG).endpoint_url == LOCAL_ENDPOINT


def test_a_runtime_removes_only_its_own_endpoint_file(endpoint_file: Path) -> None:
    write_endpoint_file("http://127.0.0.1:6000", endpoint_file)  # a second runtime took over

    remove_endpoint_file("http://127.0.0.1:5123", endpoint_file)
    assert endpoint_file.exists()
    remove_endpoint_file("http://127.0.0.1:6000", endpoint_file)
    assert not endpoint_file.exists()


def test_the_tools_bring_stand_in_credentials_and_a_region_for_the_local_stage(
        endpoint_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_DEFAULT_REGION",
                 "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(endpoint_file.with_name("no-config")))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(endpoint_file.with_name("no-creds")))

    session = session_for(load_stage("local", config=CONFIG))

    credentials = session.get_credentials()
    assert credentials is not None and credentials.access_key == "test"
    assert session.region_name == "us-east-1"


def test_the_record_keeps_the_url_first_for_every_reader(endpoint_file: Path) -> None:
    record = RuntimeRecord("http://127.0.0.1:5123", pid=os.getpid(),
                           api_url="http://127.0.0.1:8100/", token="abc")
    write_endpoint_file(record, endpoint_file)

    assert endpoint_file.read_text().splitlines()[0] == "http://127.0.0.1:5123"
    assert read_runtime_record(endpoint_file) == record
    assert load_stage("local", config=CONFIG).endpoint_url == "http://127.0.0.1:5123"


def test_a_record_names_a_live_runtime_only_while_its_process_runs(endpoint_file: Path) -> None:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    gone = RuntimeRecord("http://127.0.0.1:5123", pid=int(done.stdout))
    assert RuntimeRecord("http://127.0.0.1:5123", pid=os.getpid()).alive()
    assert not gone.alive()
    assert not RuntimeRecord("http://127.0.0.1:5123").alive()  # written before pids were


def test_the_tools_find_the_runtime_serving_their_endpoint(endpoint_file: Path) -> None:
    write_endpoint_file(RuntimeRecord("http://127.0.0.1:5123", pid=os.getpid(),
                                      api_url="http://127.0.0.1:8100/"), endpoint_file)
    here = load_stage("local", config=CONFIG, endpoint_url="http://127.0.0.1:5123")
    elsewhere = load_stage("local", config=CONFIG, endpoint_url="http://127.0.0.1:7")

    found = serving_runtime(here, endpoint_file)
    assert found is not None and found.api_url == "http://127.0.0.1:8100/"
    assert serving_runtime(elsewhere, endpoint_file) is None


def test_a_runtime_leaves_a_file_another_runtime_rewrote(endpoint_file: Path) -> None:
    mine = RuntimeRecord("http://127.0.0.1:5123", pid=os.getpid(), token="mine")
    write_endpoint_file(RuntimeRecord("http://127.0.0.1:5123", pid=os.getpid(),
                                      token="theirs"), endpoint_file)

    remove_endpoint_file(mine, endpoint_file)
    assert read_runtime_record(endpoint_file) is not None


def test_the_file_names_the_dashboard_too_and_make_dashboard_follows_it(
        endpoint_file: Path) -> None:
    write_endpoint_file(RuntimeRecord("http://127.0.0.1:5123", api_url="http://127.0.0.1:8130/"),
                        endpoint_file)

    assert read_endpoint_file() == "http://127.0.0.1:5123"
    assert read_api_url() == "http://127.0.0.1:8130/"
    assert dashboard.local_url(None) == ("http://127.0.0.1:8130/", endpoint_file.name)
    assert dashboard.local_url(8200)[0] == "http://127.0.0.1:8200/"


def test_without_a_runtime_the_dashboard_is_looked_for_on_the_default_port(
        endpoint_file: Path) -> None:
    write_endpoint_file("http://127.0.0.1:5123", endpoint_file)

    assert read_api_url() is None
    assert dashboard.local_url(None)[0] == f"http://127.0.0.1:{dashboard.DEFAULT_PORT}/"
