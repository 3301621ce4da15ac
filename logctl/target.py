"""Where deploy and destroy act: a stage, its endpoint, and the credentials to use there.

Stage `local` goes to the running local runtime (AWS_ENDPOINT_URL, default
127.0.0.1:4566, or --port); any other stage goes to AWS with the caller's credentials,
unless --endpoint-url aims it at a local endpoint on purpose (a rehearsal). Without
credentials, or with credentials that do not work, nothing is done.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from logctl.stage import LOCAL_STAGE, Stage, load_stage, read_config

LOCAL_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}


class TargetError(Exception):
    """The target cannot be reached or used; the message says what to do."""


@dataclass(frozen=True)
class Target:
    stage: Stage
    project: Path
    env: dict[str, str]

    @property
    def is_endpoint(self) -> bool:
        return self.stage.endpoint_url is not None


def _endpoint_env(endpoint: str, region: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "LOCALSTACK_"))}
    host = endpoint.split("//", 1)[-1].rstrip("/")
    env.update(LOCAL_CREDENTIALS, AWS_ENDPOINT_URL=endpoint, LOCALSTACK_HOST=host,
               AWS_DEFAULT_REGION=region, AWS_REGION=region)
    return env


def _check_endpoint(endpoint: str) -> None:
    probe = boto3.session.Session(region_name="us-east-1", **{
        "aws_access_key_id": "test", "aws_secret_access_key": "test"}).client(
        "sqs", endpoint_url=endpoint,
        config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=10))
    try:
        probe.list_queues()
    except (BotoCoreError, ClientError) as exc:
        raise TargetError(f"no local runtime answers on {endpoint} ({exc}): start one with "
                          "`make local` (or python -m localruntime) in another terminal") from None


def _check_credentials() -> str:
    session = boto3.session.Session()
    if session.get_credentials() is None:
        raise TargetError("no AWS credentials: run `aws configure` (or export "
                          "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and, for temporary ones, "
                          "AWS_SESSION_TOKEN); nothing was done")
    try:
        return str(session.client("sts").get_caller_identity()["Arn"])
    except (BotoCoreError, ClientError) as exc:
        raise TargetError(f"the AWS credentials do not work ({exc}); nothing was "
                          "done") from None


def resolve(stage_name: str, project: Path, endpoint_url: str | None,
            command: str) -> Target:
    """The stage to act on, checked: the endpoint answers, or the credentials work."""
    config = read_config(project / ".chalice" / "config.json")
    if endpoint_url is None and stage_name == LOCAL_STAGE:
        stage = load_stage(stage_name, config=config)
        endpoint_url = stage.endpoint_url
    else:
        stage = load_stage(stage_name, endpoint_url=endpoint_url, config=config)
    if endpoint_url:
        _check_endpoint(endpoint_url)
        os.environ.update(LOCAL_CREDENTIALS)
        return Target(stage, project, _endpoint_env(endpoint_url, stage.region))
    identity = _check_credentials()
    print(f"{command}: acting as {identity}", flush=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCALSTACK_")}
    return Target(stage, project, env)
