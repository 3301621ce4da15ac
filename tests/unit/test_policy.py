"""Each stage's policy file follows from the names in .chalice/config.json."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from logctl.policy import main, stale_files
from logctl.stage import CONFIG_PATH, StageError, endpoint_for


def test_committed_policy_files_match_the_config() -> None:
    assert stale_files() == []


def test_renaming_the_bucket_once_moves_the_policy_with_it(tmp_path: Path) -> None:
    # GIVEN a copy of the config whose aws bucket was renamed in one place
    chalice = tmp_path / ".chalice"
    shutil.copytree(CONFIG_PATH.parent, chalice,
                    ignore=shutil.ignore_patterns("deployed", "deployments"))
    config = json.loads((chalice / "config.json").read_text())
    config["stages"]["aws"]["environment_variables"]["LOG_BUCKET"] = "acme-logs-eu"
    (chalice / "config.json").write_text(json.dumps(config))
    # WHEN the check runs, then the generator
    assert stale_files(chalice / "config.json") == [chalice / "policy-aws.json"]
    assert main(["--config", str(chalice / "config.json")]) == 0
    # THEN the aws policy names the new bucket (objects and listing), and nothing stale is left
    text = (chalice / "policy-aws.json").read_text()
    assert "arn:aws:s3:::acme-logs-eu/logs/*" in text and '"arn:aws:s3:::acme-logs-eu"' in text
    assert "log-pipeline-aws-logs" not in text
    assert main(["--config", str(chalice / "config.json"), "--check"]) == 0


def test_check_fails_on_a_hand_edited_policy(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    chalice = tmp_path / ".chalice"
    shutil.copytree(CONFIG_PATH.parent, chalice,
                    ignore=shutil.ignore_patterns("deployed", "deployments"))
    (chalice / "policy-local.json").write_text("{}\n")
    assert main(["--config", str(chalice / "config.json"), "--check"]) == 1
    assert "make policy" in capsys.readouterr().err


def test_stage_aws_refuses_a_leftover_endpoint(monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    monkeypatch.setattr("logctl.stage.ENDPOINT_FILE", tmp_path / "none")
    with pytest.raises(StageError, match="unset AWS_ENDPOINT_URL"):
        endpoint_for("aws", {"AWS_ENDPOINT_URL": "http://127.0.0.1:4566"})
    assert endpoint_for("aws", {}) is None
    assert endpoint_for("local", {}) == "http://127.0.0.1:4566"
    assert endpoint_for("local", {"AWS_ENDPOINT_URL": "http://h:1"}) == "http://h:1"
