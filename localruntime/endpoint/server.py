"""The AWS endpoint: moto's application, adjusted by `localruntime.endpoint.motofixes` (behaviour)
and `localruntime.endpoint.motospeed` (speed), served by `localruntime.endpoint.httpserver`.
In front of moto, outermost first: the control route (`control`), S3's presigned-URL rules
(`presigned`), injected faults (`faults`).

    python -m localruntime.endpoint.server [--host 127.0.0.1] [--port 4566]
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from types import FrameType
from typing import Any

from localruntime.endpoint import motofixes, motoguard, motospeed
from localruntime.endpoint.control import FaultControl
from localruntime.endpoint.faults import FaultingApp
from localruntime.endpoint.presigned import PresignedUrls
from localruntime.faults import FaultPlan, FaultSwitch
from localruntime.gcpolicy import keep_full_collections_short


def _exit(signum: int, frame: FrameType | None) -> None:
    sys.exit(0)


def _exit_when_parent_goes() -> None:
    """Stdin is a pipe from the runtime: end of file means the runtime is gone."""
    while os.read(0, 4096):
        continue
    os._exit(0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="moto server for the local runtime")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4566)
    parser.add_argument("--exit-with-parent", action="store_true",
                        help="exit when stdin (a pipe from the runtime) closes")
    parser.add_argument("--faults", default=None, metavar="JSON",
                        help="the fault plan (localruntime.faults) at start; the control "
                        "route (localruntime.endpoint.control) changes it")
    args = parser.parse_args(argv)
    if args.exit_with_parent:
        threading.Thread(target=_exit_when_parent_goes, daemon=True).start()

    os.environ.setdefault("MOTO_PORT", str(args.port))
    # CORS headers serve browsers; the clients here are SDKs, and the headers cost per request.
    os.environ.setdefault("MOTO_DISABLE_GLOBAL_CORS", "true")
    try:
        off = motospeed.switched_off(os.environ.get(motospeed.OFF_VARIABLE))
    except ValueError as exc:
        print(f"endpoint: {exc}", file=sys.stderr)
        return 2
    try:
        motoguard.check_version()
        motospeed.apply(off)
        motofixes.apply()
    except motoguard.MotoMismatch as exc:
        print(f"endpoint: {exc}", file=sys.stderr)
        return 2
    if off:
        print(f"endpoint: speed-ups off: {', '.join(sorted(off))}", file=sys.stderr)

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    from localruntime.endpoint.httpserver import HttpServer

    signal.signal(signal.SIGTERM, _exit)
    signal.signal(signal.SIGINT, _exit)
    application: Any = motofixes.atomic(DomainDispatcherApplication(create_backend_app))
    faults = FaultSwitch(FaultPlan.from_json(args.faults) if args.faults else None)
    application = FaultControl(PresignedUrls(FaultingApp(application, faults)), faults)
    try:
        server = HttpServer((args.host, args.port), application)
    except OSError as exc:
        print(f"endpoint: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}",
              file=sys.stderr)
        return 2
    try:
        motofixes.start_ttl_sweeper(dict(os.environ))
    except ValueError as exc:
        print(f"endpoint: {exc}", file=sys.stderr)
        return 2
    keep_full_collections_short()
    print(f"endpoint: listening on http://{args.host}:{args.port}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
