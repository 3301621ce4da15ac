"""Faults switched at run time through the endpoint's control route: `logctl faults` shows,
sets and clears them, the endpoint's own faults follow at once, and a runtime that follows
the route (localruntime.faults.follow) has each change in force before the command returns."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ResponseStreamingError

from localruntime.background import free_port
from localruntime.faults import HANDLER_APP_ID, FaultPlan, FaultSwitch, follow
from logctl import faults as logctl_faults
from logctl.stage import Stage, load_stage
from tests.integration.endpointprocess import running_endpoint


@pytest.fixture
def endpoint(tmp_path) -> Iterator[str]:
    with running_endpoint(tmp_path / "endpoint.log",
                          "--faults", FaultPlan({"kill": 0.5}, seed=3).to_json()) as url:
        yield url


def stage_at(url: str) -> Stage:
    return load_stage("local", endpoint_url=url)


def handler_s3(url: str) -> Any:
    return boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test",
                                 region_name="us-east-1").client(
        "s3", endpoint_url=url, config=Config(retries={"total_max_attempts": 1},
                                              user_agent_appid=HANDLER_APP_ID))


def test_logctl_sets_and_clears_faults_the_endpoint_injects_at_once(endpoint: str) -> None:
    s3 = handler_s3(endpoint)
    s3.create_bucket(Bucket="control")
    s3.put_object(Bucket="control", Key="logs/a.ndjson", Body=b"x" * 10_000)
    stage = stage_at(endpoint)
    assert logctl_faults.show(stage)["rates"] == {"kill": 0.5}

    state = logctl_faults.set_rates(stage, ["s3_get_reset=1"])
    assert state["rates"] == {"kill": 0.5, "s3_get_reset": 1.0} and state["applied"] is False
    with pytest.raises(ResponseStreamingError):
        s3.get_object(Bucket="control", Key="logs/a.ndjson")["Body"].read()

    assert logctl_faults.clear(stage)["rates"] == {}
    assert len(s3.get_object(Bucket="control", Key="logs/a.ndjson")["Body"].read()) == 10_000


def test_a_following_runtime_has_the_change_in_force_when_the_command_returns(
        endpoint: str) -> None:
    switch = FaultSwitch(FaultPlan({"kill": 0.5}, seed=3))
    changes: list[tuple[str, str]] = []
    stop = threading.Event()
    thread = follow(switch, endpoint, stop,
                    lambda was, now: changes.append((was.describe(), now.describe())))
    try:
        stage = stage_at(endpoint)
        deadline = time.monotonic() + 30
        while not logctl_faults.show(stage)["followed"] and time.monotonic() < deadline:
            time.sleep(0.05)  # the follower's first long poll has not reached the endpoint
        state = logctl_faults.set_rates(stage, ["kill=1", "s3_delay=0.25"])
        assert state["applied"] is True
        assert switch.plan.rate("kill") == 1.0 and switch.plan.rate("s3_delay") == 0.25
        assert logctl_faults.clear(stage)["applied"] is True
        assert not switch.plan.active and switch.plan.seed == 3
        assert changes == [("kill=0.5", "kill=1, s3_delay=0.25"),
                           ("kill=1, s3_delay=0.25", "none")]
    finally:
        stop.set()
        logctl_faults.set_rates(stage_at(endpoint), ["kill=0"])  # wakes the long poll
        thread.join(30)
    assert not thread.is_alive()


def test_the_command_line_says_what_is_in_force_and_refuses_what_is_not_a_fault(
        endpoint: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert logctl_faults.main(["set", "s3_get_500=0.5", "--endpoint-url", endpoint]) == 0
    assert capsys.readouterr().out.startswith(
        f"faults on {endpoint}: s3_get_500=0.5, kill=0.5")
    assert logctl_faults.main(["set", "explode=1", "--endpoint-url", endpoint]) == 2
    assert "unknown kind 'explode'" in capsys.readouterr().err
    assert logctl_faults.main(["--endpoint-url", endpoint]) == 0
    assert "s3_get_500=0.5" in capsys.readouterr().out
    assert logctl_faults.main(["clear", "--endpoint-url", endpoint]) == 0
    assert capsys.readouterr().out.startswith(f"faults on {endpoint}: none")


def test_without_a_runtime_or_on_aws_the_command_says_so(
        capsys: pytest.CaptureFixture[str]) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    assert logctl_faults.main(["--endpoint-url", nobody]) == 1
    assert f"cannot reach {nobody}: is the local runtime running" in capsys.readouterr().err
    assert logctl_faults.main(["--stage", "aws"]) == 2
    assert "faults are injected by the local runtime only" in capsys.readouterr().err
