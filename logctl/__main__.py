"""Run a logctl command: python -m logctl COMMAND [ARGS...]."""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "provision": ("logctl.provision", "create the bucket, queues, table and alarms"),
    "policy": ("logctl.policy", "write each stage's IAM policy from its names"),
    "deploy": ("logctl.deploy", "provision and chalice deploy a stage"),
    "destroy": ("logctl.destroy", "delete a stage: chalice delete and what provision made"),
    "generate": ("logctl.generate", "write a synthetic NDJSON log file"),
    "upload": ("logctl.upload", "upload log files and optionally wait for results"),
    "send": ("logctl.send", "stream log events (a file or stdin) into the ingest stream"),
    "results": ("logctl.results", "list result records or show one job"),
    "dlq": ("logctl.dlq", "inspect or redrive the dead-letter queue"),
    "faults": ("logctl.faults", "show or switch a running local runtime's injected faults"),
    "rollups": ("logctl.rollups", "recompute the rollups of a range of hours from the records"),
    "dashboard": ("logctl.dashboard", "print or serve (aws: signing requests) the dashboard"),
}


def usage() -> str:
    lines = ["usage: python -m logctl COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<10} {summary}" for name, (_, summary) in COMMANDS.items()]
    lines += ["", "python -m logctl COMMAND --help shows a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"logctl: unknown command {command!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[command][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
