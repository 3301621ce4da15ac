"""Show and switch the faults a running local runtime injects.

    python -m logctl faults [show]                         the rates in force
    python -m logctl faults set KIND=RATE [KIND=RATE ...]  set some, keep the others (all=RATE)
    python -m logctl faults clear                          no faults

The local runtime's endpoint (found as the other commands find it: --endpoint-url,
AWS_ENDPOINT_URL, the file `make local` writes) holds the plan behind a control route,
and every part of the runtime draws from it: a change is in force when this command
returns. The kinds and what each does: docs/guarantees.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from typing import Any

from logctl.cli import LogctlError, run, stage_from, stage_options
from logctl.stage import Stage

CONTROL_PATH = "/_localruntime/faults"
TIMEOUT_SECONDS = 10


def _call(stage: Stage, method: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    if not stage.is_local:
        raise LogctlError(f"stage {stage.name!r} is AWS: faults are injected by the local "
                          "runtime only", status=2)
    url = f"{stage.endpoint_url}{CONTROL_PATH}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=TIMEOUT_SECONDS) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read())["error"]["message"]
        except (ValueError, KeyError, TypeError):
            raise LogctlError(f"{stage.endpoint_url} has no fault control (HTTP {exc.code}): "
                              "is it the local runtime (make local)?") from None
        raise LogctlError(message, status=2 if exc.code == 400 else 1) from None
    except (OSError, ValueError) as exc:
        raise LogctlError(f"cannot reach {stage.endpoint_url}: is the local runtime running "
                          f"(make local)? ({exc})") from None


def show(stage: Stage) -> dict[str, Any]:
    return _call(stage, "GET")


def set_rates(stage: Stage, specs: list[str]) -> dict[str, Any]:
    """Set `KIND=RATE` for each spec; the other kinds keep their rates."""
    return _call(stage, "POST", {"set": specs})


def clear(stage: Stage) -> dict[str, Any]:
    return _call(stage, "DELETE")


def describe(state: dict[str, Any]) -> str:
    rates = state["rates"]
    return ", ".join(f"{kind}={rates[kind]:g}" for kind in state["kinds"]
                     if kind in rates) or "none"


def report(stage: Stage, state: dict[str, Any]) -> list[str]:
    lines = [f"faults on {stage.endpoint_url}: {describe(state)}"]
    if state.get("applied") is False:
        lines.append("(the runtime has not confirmed the change yet)" if state.get("followed")
                     else "(no runtime follows this endpoint: only the endpoint's own kinds "
                     "apply)")
    if "applied" not in state:
        lines.append(f"kinds: {', '.join(state['kinds'])}, or all (docs/guarantees.md)")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m logctl.faults", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     parents=[stage_options()])
    parser.add_argument("command", nargs="?", choices=("show", "set", "clear"), default="show",
                        help="show (the default), set KIND=RATE ..., or clear")
    parser.add_argument("specs", nargs="*", metavar="KIND=RATE",
                        help="for set: a rate from 0 to 1 per kind (all=RATE: every kind)")
    args = parser.parse_args(argv)
    if (args.command == "set") != bool(args.specs):
        parser.error("set takes KIND=RATE arguments; show and clear take none")

    def body() -> int:
        stage = stage_from(args)
        if args.command == "set":
            state = set_rates(stage, args.specs)
        elif args.command == "clear":
            state = clear(stage)
        else:
            state = show(stage)
        print("\n".join(report(stage, state)))
        return 0

    return run("faults", body)


if __name__ == "__main__":
    sys.exit(main())
