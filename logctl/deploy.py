"""Deploy a stage with Chalice: policy, provision, `chalice deploy`, post-deploy.

    python -m logctl.deploy --stage local            # into the running local runtime
    python -m logctl.deploy --stage aws              # to AWS; needs credentials
    python -m logctl.deploy --stage aws --endpoint-url http://127.0.0.1:4566
                                                     # rehearse the aws stage locally

The stage's policy file is regenerated from its names, the resources Chalice does not
create are provisioned (hardened, with alarms), then `chalice deploy` (`chalice-local`
for stage local) creates the functions, their role, the bucket notification and the
SQS mapping, and the rollups handler's mapping on the results table's stream (its ARN, looked
up after provisioning, goes to `chalice deploy` as RESULTS_STREAM_ARN; config.json stays as
committed). Post-deploy turns on ReportBatchItemFailures on the SQS mapping (the worker
loses nothing without it), sets the stream mappings' options Chalice cannot set
(logctl.streammappings) and gives API Gateway's own error answers the API's error body
(logctl.gateway); `--no-post-deploy` leaves all of it as Chalice made it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

from chalicelib.rollups import STREAM_ARN_VARIABLE
from logctl.cli import ENDPOINT_HELP, STAGE_HELP, run
from logctl.gateway import set_error_bodies
from logctl.policy import write_files
from logctl.provision import (
    Safety,
    add_safety_options,
    configure_mappings,
    provision,
    safety_from,
)
from logctl.stage import ENDPOINT_FILE, LOCAL_STAGE, PROJECT_ROOT, Stage, serving_runtime
from logctl.target import Target, TargetError, resolve

BIN = Path(sys.executable).parent
REST_API_LINE = "Rest API URL:"


class DeployError(Exception):
    """A step failed; the message says which and what to do."""


def run_chalice(target: Target, *args: str, env: dict[str, str] | None = None) -> None:
    """`chalice ARGS --stage STAGE` in the project (`chalice-local` for stage local).

    For stage local its `Rest API URL` line is left out: that execute-api URL is not served
    by the local runtime (its --api-port is the API; `deploy` says where).
    """
    local = target.stage.name == LOCAL_STAGE
    tool = "chalice-local" if local else "chalice"
    command = [str(BIN / tool), *args, "--stage", target.stage.name]
    print(f"{args[0]}: {' '.join([tool, *command[1:]])}", flush=True)
    try:
        process = subprocess.Popen(command, cwd=target.project, env={**target.env, **(env or {})},
                                   stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE if local else None,
                                   stderr=subprocess.STDOUT if local else None, text=True)
    except OSError as exc:
        raise DeployError(f"cannot run {tool}: {exc.strerror or exc}") from exc
    if process.stdout is not None:
        with process.stdout:
            for line in process.stdout:
                if REST_API_LINE not in line:
                    print(line, end="", flush=True)
    status = process.wait()
    if status != 0:
        raise DeployError(f"{tool} {args[0]} failed (exit status {status})")


def with_origin(stage: Stage, url: str) -> Stage:
    """The stage with `url`'s origin among the origins its bucket's CORS rule allows."""
    parts = urlsplit(url)
    origin = f"{parts.scheme}://{parts.netloc}"
    if origin in stage.dashboard_origins:
        return stage
    origins = ",".join([*stage.dashboard_origins, origin])
    return replace(stage, environment={**stage.environment, "DASHBOARD_ORIGINS": origins})


def deploy(target: Target, safety: Safety, post_deploy: bool = True) -> None:
    runtime = serving_runtime(target.stage, target.project / ENDPOINT_FILE.name)
    stage = (with_origin(target.stage, runtime.api_url)
             if runtime is not None and runtime.api_url else target.stage)
    for path in write_files(target.project / ".chalice" / "config.json"):
        print(f"deploy: wrote {path} from the stage names", flush=True)
    provisioned = provision(stage, safety)
    for action in provisioned.actions or ["every resource already exists"]:
        print(f"deploy: provision[{stage.name}]: {action}", flush=True)
    # app.py's rollups handler reads the stream ARN, which exists only once the table does;
    # .chalice/config.json stays as committed.
    run_chalice(target, "deploy", env={STREAM_ARN_VARIABLE: provisioned.results_stream_arn})
    if post_deploy:
        for line in configure_mappings(stage):
            print(f"deploy: {line}", flush=True)
        types = set_error_bodies(stage, target.project)
        print(f"deploy: gateway responses in the error body: "
              f"{', '.join(types) if types else 'already set'}", flush=True)
    if stage.name != LOCAL_STAGE:
        return
    if runtime is not None and runtime.api_url:
        print(f"deploy: results API and dashboard: {runtime.api_url} (the local runtime's, "
              f"pid {runtime.pid})", flush=True)
    else:
        print("deploy: the results API and dashboard are served by `make local` on its "
              "API_PORT (default http://127.0.0.1:8000/)", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m logctl.deploy", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", default=LOCAL_STAGE, help=STAGE_HELP)
    parser.add_argument("--endpoint-url", default=None, help=ENDPOINT_HELP)
    parser.add_argument("--port", type=int, default=None,
                        help="the local runtime's port on 127.0.0.1 (stage local; the same as "
                        "--endpoint-url http://127.0.0.1:PORT)")
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
