"""Deploy a stage with Chalice: policy, provision, `chalice deploy`, post-deploy.

    python -m logctl.deploy --stage local            # into the running local runtime
    python -m logctl.deploy --stage aws              # to AWS; needs credentials
    python -m logctl.deploy --stage aws --endpoint-url http://127.0.0.1:4566
                                                     # rehearse the aws stage locally

The stage's policy file is regenerated from its names, the resources Chalice does not
create are provisioned (hardened, with alarms), then `chalice deploy` (`chalice-local`
for stage local) creates the functions, their role, the bucket notification and the
SQS mapping. Post-deploy turns on ReportBatchItemFailures on that mapping; the worker
loses nothing without it (`--no-post-deploy` leaves the mapping as Chalice made it).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from logctl.cli import run
from logctl.policy import write_files
from logctl.provision import (
    Safety,
    add_safety_options,
    deployed_function_name,
    enable_batch_item_failures,
    provision,
    safety_from,
)
from logctl.stage import LOCAL_STAGE, PROJECT_ROOT
from logctl.target import Target, TargetError, resolve

BIN = Path(sys.executable).parent


class DeployError(Exception):
    """A step failed; the message says which and what to do."""


def run_chalice(target: Target, *args: str) -> None:
    """`chalice ARGS --stage STAGE` in the project (`chalice-local` for stage local)."""
    tool = "chalice-local" if target.stage.name == LOCAL_STAGE else "chalice"
    command = [str(BIN / tool), *args, "--stage", target.stage.name]
    print(f"{args[0]}: {' '.join([tool, *command[1:]])}", flush=True)
    try:
        status = subprocess.run(command, cwd=target.project, env=target.env,
                                stdin=subprocess.DEVNULL).returncode
    except OSError as exc:
        raise DeployError(f"cannot run {tool}: {exc.strerror or exc}") from exc
    if status != 0:
        raise DeployError(f"{tool} {args[0]} failed (exit status {status})")


def deploy(target: Target, safety: Safety, post_deploy: bool = True) -> None:
    stage = target.stage
    for path in write_files(target.project / ".chalice" / "config.json"):
        print(f"deploy: wrote {path} from the stage names", flush=True)
    for action in provision(stage, safety).actions or ["every resource already exists"]:
        print(f"deploy: provision[{stage.name}]: {action}", flush=True)
    run_chalice(target, "deploy")
    if not post_deploy:
        return
    name = deployed_function_name(stage)
    changed = enable_batch_item_failures(stage, name)
    print(f"deploy: {name}: ReportBatchItemFailures "
          f"{'enabled' if changed else 'already enabled'}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m logctl.deploy", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", default=LOCAL_STAGE)
    parser.add_argument("--endpoint-url", default=None,
                        help="deploy to this endpoint (stage local: default AWS_ENDPOINT_URL "
                             "or http://127.0.0.1:4566; other stages: AWS)")
    parser.add_argument("--port", type=int, default=None,
                        help="the local runtime's port on 127.0.0.1 (stage local)")
    parser.add_argument("--project", type=Path, default=PROJECT_ROOT,
                        help="directory with app.py and .chalice/ (default: this project)")
    add_safety_options(parser)
    parser.add_argument("--no-post-deploy", action="store_true",
                        help="leave the SQS mapping as `chalice deploy` creates it")
    args = parser.parse_args(argv)
    endpoint = args.endpoint_url or (f"http://127.0.0.1:{args.port}" if args.port else None)

    def body() -> int:
        safety = safety_from(args)
        target = resolve(args.stage, args.project, endpoint, "deploy")
        deploy(target, safety, post_deploy=not args.no_post_deploy)
        print(f"deploy: stage {args.stage} deployed", flush=True)
        return 0

    return run("deploy", body, (DeployError, TargetError, OSError, ValueError))


if __name__ == "__main__":
    sys.exit(main())
