"""The stages in .chalice/config.json agree with what the code assumes."""

from __future__ import annotations

import pytest

from logctl.stage import read_config


@pytest.mark.parametrize("stage", ["local", "aws"])
def test_stage_names_resources_and_consistent_worker_timeout(stage: str) -> None:
    config = read_config()["stages"][stage]
    env = config["environment_variables"]
    assert env["STAGE"] == stage  # the stage dimension of the handlers' metrics
    for name in ("LOG_BUCKET", "JOBS_QUEUE", "DEAD_LETTER_QUEUE", "RESULTS_TABLE"):
        assert env[name].startswith("log-pipeline-")
    worker = config["lambda_functions"]["worker"]
    assert int(env["WORKER_TIMEOUT_SECONDS"]) == worker["lambda_timeout"]
    assert worker["lambda_memory_size"] >= 1024
    assert config["lambda_functions"]["trigger"]["lambda_timeout"] <= 60
    assert config["iam_policy_file"] == f"policy-{stage}.json"
