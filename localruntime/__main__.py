"""Run the app locally: an AWS endpoint on 127.0.0.1:4566 and the handlers behind it.

    python -m localruntime [--port 4566] [--stage local] [--set KEY=VALUE ...]
                           [--timeout FUNCTION=SECONDS ...] [--concurrency FUNCTION=N ...]
                           [--no-reload] [--no-status] [--project DIR] [--endpoint-file]
                           [--api-port 8000]
                           [--fault KIND=RATE ...] [--fault-seed N] [--no-memory-limit]

Starts moto's server as the endpoint (AWS_ENDPOINT_URL=http://HOST:PORT sets host and
port too), provisions the stage, reads the app's S3 and SQS event sources, and runs each
handler in warm processes fed the way Lambda would feed them. A handler process whose
memory (RSS) exceeds the function's lambda_memory_size is killed, as Lambda does. With
--api-port, the runtime holds that port and hands the app's HTTP routes (results API,
dashboard) to `chalice local` behind it. Edits to app.py, chalicelib/ or .chalice/config.json
reload the handlers and the API; an edit that does not load leaves the previous code running.
Ctrl-C stops everything, and every process it started dies with it even on SIGKILL (Linux).
With --endpoint-file (as `make local` runs it), the endpoint URL is written to a file
that the project's tools read when AWS_ENDPOINT_URL is not set, once both ports are the
runtime's; a second runtime refuses to start while the file names a live one; see
docs/local-runtime.md.

Faults (off by default; kinds in localruntime/faults.py and docs/guarantees.md):
    --fault all=0.05 --fault kill=0.01 --fault-seed 7
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from localruntime.faults import KINDS, FaultPlan, FaultSpecError
from localruntime.log import Console
from localruntime.runtime import Runtime
from localruntime.settings import (
    RuntimeSettings,
    SettingsError,
    endpoint_from_environment,
    parse_assignment,
    parse_positive,
)
from logctl.stage import ENDPOINT_FILE

PACKAGE_ROOT = Path(__file__).resolve().parent.parent


def default_project() -> Path:
    cwd = Path.cwd()
    if (cwd / "app.py").is_file() and (cwd / ".chalice" / "config.json").is_file():
        return cwd
    return PACKAGE_ROOT


def parse_settings(argv: list[str] | None) -> RuntimeSettings:
    parser = argparse.ArgumentParser(prog="python -m localruntime", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default=None, help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", default=None, help="port to listen on (default 4566)")
    parser.add_argument("--stage", default="local", help="stage in .chalice/config.json")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override a stage environment variable")
    parser.add_argument("--timeout", action="append", default=[], metavar="FUNCTION=SECONDS",
                        help="override a function's lambda_timeout")
    parser.add_argument("--concurrency", action="append", default=[], metavar="FUNCTION=N",
                        help="warm processes (and pollers) for a function (default 2)")
    parser.add_argument("--no-reload", action="store_true", help="do not watch for edits")
    parser.add_argument("--no-status", action="store_true", help="no live status line")
    parser.add_argument("--api-port", default=None,
                        help="serve the results API and dashboard on this port (chalice local)")
    parser.add_argument("--project", type=Path, default=None,
                        help="directory with app.py and .chalice/ (default: this project)")
    parser.add_argument("--fault", dest="faults", action="append", default=[],
                        metavar="KIND=RATE", help="inject a fault with this probability "
                        f"(kinds: {', '.join(KINDS)}; all=RATE sets every kind)")
    parser.add_argument("--fault-seed", type=int, default=0, metavar="N",
                        help="seed of the fault draws (default 0)")
    parser.add_argument("--no-memory-limit", action="store_true",
                        help="do not kill handler processes that exceed their memory size")
    parser.add_argument("--endpoint-file", type=Path, nargs="?", const=ENDPOINT_FILE,
                        default=None, metavar="PATH",
                        help="write the endpoint URL here while running, for the project's "
                        f"tools (default PATH: {ENDPOINT_FILE.name} in the project)")
    args = parser.parse_args(argv)

    host, port = endpoint_from_environment()
    if args.port is not None:
        port = parse_positive(args.port, "--port", int)
        if port > 65535:
            raise SettingsError(f"--port: {port} is not a TCP port")
    project = (args.project or default_project()).resolve()
    if not (project / "app.py").is_file():
        raise SettingsError(f"{project} has no app.py")
    timeouts = {}
    for item in args.timeout:
        name, value = parse_assignment(item, "--timeout")
        timeouts[name] = parse_positive(value, f"--timeout {name}", float)
    concurrency = {}
    for item in args.concurrency:
        name, value = parse_assignment(item, "--concurrency")
        concurrency[name] = parse_positive(value, f"--concurrency {name}", int)
    overrides = dict(parse_assignment(item, "--set") for item in args.overrides)
    api_port = None
    if args.api_port is not None:
        api_port = parse_positive(args.api_port, "--api-port", int)
        if api_port > 65535 or api_port == port:
            raise SettingsError(f"--api-port: {api_port} is not a free TCP port")
        api_host = args.host or host
        overrides.setdefault("DASHBOARD_ORIGINS", f"http://{api_host}:{api_port}")
    try:
        faults = FaultPlan.parse(args.faults, seed=args.fault_seed)
    except FaultSpecError as exc:
        raise SettingsError(str(exc)) from None
    return RuntimeSettings(
        project=project, stage_name=args.stage, host=args.host or host, port=port,
        overrides=overrides, api_port=api_port,
        timeouts=timeouts, concurrency=concurrency, reload=not args.no_reload,
        status_line=not args.no_status, faults=faults,
        enforce_memory=not args.no_memory_limit, endpoint_file=args.endpoint_file)


def main(argv: list[str] | None = None) -> int:
    try:
        settings = parse_settings(argv)
    except SettingsError as exc:
        print(f"localruntime: {exc}", file=sys.stderr)
        return 2
    console = Console(status_line=settings.status_line)
    try:
        runtime = Runtime(settings, console)
        notes = [*settings.applied_overrides(), *settings.timeout_warnings(runtime.stage)]
    except SettingsError as exc:
        console.info(str(exc))
        return 2
    for note in notes:
        console.info(note)
    return runtime.run()

if __name__ == "__main__":
    sys.exit(main())
