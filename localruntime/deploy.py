"""Deploy the app with Chalice, the way it runs in AWS: provision, deploy, post-deploy.

    python -m localruntime.deploy local   # to the running local runtime (make local first)
    python -m localruntime.deploy aws     # to AWS; needs credentials

`local` talks to AWS_ENDPOINT_URL (default http://127.0.0.1:4566) with `chalice-local`;
the runtime keeps running the handlers itself. `aws` ignores AWS_ENDPOINT_URL.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from localruntime.background import PROJECT_ROOT
from localruntime.settings import SettingsError, endpoint_from_environment
from logctl.provision import deployed_function_name, enable_batch_item_failures, provision
from logctl.stage import Stage, StageError, load_stage, read_config

BIN = Path(sys.executable).parent


class DeployError(Exception):
    """A step failed; the message says which and what to do."""


def _run(command: list[str], env: dict[str, str], project: Path) -> None:
    print(f"deploy: {' '.join(command)}", flush=True)
    try:
        status = subprocess.run(command, cwd=project, env=env).returncode
    except OSError as exc:
        raise DeployError(f"cannot run {command[0]}: {exc.strerror or exc}") from exc
    if status != 0:
        raise DeployError(f"{Path(command[0]).name} {command[1]} failed (exit status {status})")


def _provision_then_deploy(stage: Stage, command: list[str], env: dict[str, str],
                           project: Path) -> None:
    for action in provision(stage).actions or ["every resource already exists"]:
        print(f"deploy: provision[{stage.name}]: {action}", flush=True)
    _run(command, env, project)
    name = deployed_function_name(stage)
    changed = enable_batch_item_failures(stage, name)
    print(f"deploy: {name}: ReportBatchItemFailures "
          f"{'enabled' if changed else 'already enabled'}", flush=True)


def deploy_local(project: Path, port: int | None = None) -> None:
    host, default_port = endpoint_from_environment()
    port = port or default_port
    endpoint = f"http://{host}:{port}"
    probe = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1",
                         aws_access_key_id="test", aws_secret_access_key="test",
                         config=Config(retries={"max_attempts": 1}, connect_timeout=2,
                                       read_timeout=10))
    try:
        probe.list_queues()
    except (BotoCoreError, ClientError) as exc:
        raise DeployError(f"no local runtime answers on {endpoint} ({exc}): start one with "
                          "`make local` (or python -m localruntime) in another terminal") from None
    env = {**os.environ, "AWS_ENDPOINT_URL": endpoint, "LOCALSTACK_HOST": f"{host}:{port}",
           "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
           "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1")}
    env.pop("AWS_PROFILE", None)
    os.environ.update({k: env[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")})
    stage = load_stage("local", endpoint_url=endpoint, config=read_config(
        project / ".chalice" / "config.json"))
    _provision_then_deploy(stage, [str(BIN / "chalice-local"), "deploy", "--stage", "local"],
                           env, project)


def deploy_aws(project: Path) -> None:
    for name in [k for k in os.environ if k.startswith("LOCALSTACK_")] + ["AWS_ENDPOINT_URL"]:
        os.environ.pop(name, None)
    session = boto3.session.Session()
    if session.get_credentials() is None:
        raise DeployError("no AWS credentials: run `aws configure` (or export AWS_ACCESS_KEY_ID, "
                          "AWS_SECRET_ACCESS_KEY and, for temporary ones, AWS_SESSION_TOKEN); "
                          "nothing was deployed")
    try:
        identity = session.client("sts").get_caller_identity()
    except (BotoCoreError, ClientError) as exc:
        raise DeployError(f"the AWS credentials do not work ({exc}); nothing was "
                          "deployed") from None
    print(f"deploy: deploying as {identity['Arn']}", flush=True)
    stage = load_stage("aws", endpoint_url=None, config=read_config(
        project / ".chalice" / "config.json"))
    _provision_then_deploy(stage, [str(BIN / "chalice"), "deploy", "--stage", "aws"],
                           dict(os.environ), project)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localruntime.deploy", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", choices=("local", "aws"))
    parser.add_argument("--project", type=Path, default=PROJECT_ROOT,
                        help="directory with app.py and .chalice/ (default: this project)")
    parser.add_argument("--port", type=int, default=None,
                        help="local: the runtime's port (default: from AWS_ENDPOINT_URL, or 4566)")
    args = parser.parse_args(argv)
    try:
        if args.target == "local":
            deploy_local(args.project, args.port)
        else:
            deploy_aws(args.project)
    except (DeployError, SettingsError, StageError, OSError, ValueError) as exc:
        print(f"deploy: {exc}", file=sys.stderr)
        return 1
    except (BotoCoreError, ClientError) as exc:
        print(f"deploy: AWS call failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("deploy: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
