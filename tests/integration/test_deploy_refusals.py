"""deploy and destroy of the aws stage refuse plainly, and touch nothing, when they cannot
know where they act: no credentials, or a leftover AWS_ENDPOINT_URL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from logctl.stage import PROJECT_ROOT


def no_credentials(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "LOCALSTACK_"))}
    env.update(HOME=str(home), AWS_CONFIG_FILE=str(home / "none"),
               AWS_SHARED_CREDENTIALS_FILE=str(home / "none"), AWS_EC2_METADATA_DISABLED="true",
               PYTHONPATH=str(PROJECT_ROOT))
    return env


@pytest.mark.parametrize("command", [
    [sys.executable, "-m", "logctl.deploy", "--stage", "aws"],
    [sys.executable, "-m", "logctl.destroy", "--stage", "aws", "--yes", "--purge"],
    ["make", "--no-print-directory", "deploy-aws"],
    ["make", "--no-print-directory", "destroy-aws", "YES=1"],
], ids=["deploy", "destroy", "make deploy-aws", "make destroy-aws"])
def test_without_credentials_nothing_is_done(command: list[str], tmp_path: Path) -> None:
    done = subprocess.run(command, cwd=PROJECT_ROOT, env=no_credentials(tmp_path),
                          capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          timeout=300)
    assert done.returncode != 0
    assert "no AWS credentials" in done.stderr and "nothing was done" in done.stderr
    assert "chalice" not in done.stdout.replace("python", "")
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("module", ["logctl.deploy", "logctl.destroy", "logctl.provision"])
def test_a_leftover_endpoint_is_refused_for_the_aws_stage(module: str, tmp_path: Path) -> None:
    env = no_credentials(tmp_path) | {"AWS_ENDPOINT_URL": "http://127.0.0.1:9"}
    done = subprocess.run([sys.executable, "-m", module, "--stage", "aws"], cwd=PROJECT_ROOT,
                          env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          timeout=120)
    assert done.returncode != 0
    assert "unset AWS_ENDPOINT_URL" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("module", ["logctl.deploy", "logctl.destroy"])
def test_an_unknown_stage_is_bad_usage_and_an_unreachable_runtime_a_failure(
        module: str, tmp_path: Path) -> None:
    confirm = ["--yes"] if module == "logctl.destroy" else []
    # An unknown stage exits 2 (bad usage), as every operator command does
    unknown = subprocess.run([sys.executable, "-m", module, "--stage", "nope", *confirm],
                             cwd=PROJECT_ROOT, env=no_credentials(tmp_path), capture_output=True,
                             text=True, stdin=subprocess.DEVNULL, timeout=120)
    assert unknown.returncode == 2
    assert unknown.stderr.startswith(f"{module.split('.')[1]}: stage 'nope' is not in")
    # a local runtime that does not answer exits 1, with what to do
    down = subprocess.run([sys.executable, "-m", module, "--stage", "local", "--port", "9",
                           *confirm], cwd=PROJECT_ROOT, env=no_credentials(tmp_path),
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
    assert down.returncode == 1
    assert "start one with `make local`" in down.stderr
    assert "Traceback" not in unknown.stderr + down.stderr
