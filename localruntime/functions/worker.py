"""A warm handler process: imports the app once, then runs invocations sent by the runtime.

    python -m localruntime.functions.worker --function NAME --handler app.NAME \
        --timeout S --memory MB

Protocol: one JSON object per line. The runtime writes `{"request_id", "event"}` to
stdin; the process answers on its original stdout with `{"ready", "init_ms"}` once, then
`{"request_id", "ok", "result" | "error"}` per invocation. Whatever the handler prints goes
to stderr, as a Lambda function's output goes to its log.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
import traceback
from typing import IO, Any

from localruntime.gcpolicy import keep_full_collections_short


class LambdaContext:
    """The attributes and method of the context object Lambda passes to a Python handler."""

    def __init__(self, request_id: str, function_name: str, memory_mb: int,
                 timeout_seconds: float, region: str) -> None:
        self.aws_request_id = request_id
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = memory_mb
        self.invoked_function_arn = (
            f"arn:aws:lambda:{region}:123456789012:function:{function_name}")
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = f"local/[$LATEST]{request_id.replace('-', '')}"
        self.identity = None
        self.client_context = None
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _protocol_channel() -> IO[bytes]:
    """Keep the real stdout for answers; point fd 1 (and print) at stderr."""
    channel = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    sys.stdout.reconfigure(line_buffering=True)
    return channel


def _send(channel: IO[bytes], message: dict[str, Any]) -> None:
    channel.write(json.dumps(message, default=str, separators=(",", ":")).encode() + b"\n")


def _load_handler(handler: str) -> Any:
    module_name, _, attribute = handler.rpartition(".")
    module = importlib.import_module(module_name or "app")
    return getattr(module, attribute)


def _error(exc: BaseException) -> dict[str, Any]:
    return {"errorType": type(exc).__name__, "errorMessage": str(exc),
            "stackTrace": traceback.format_exception(exc)}


def serve(args: argparse.Namespace) -> int:
    channel = _protocol_channel()
    sys.path.insert(0, os.getcwd())
    started = time.perf_counter()
    try:
        handler = _load_handler(args.handler)
    except BaseException as exc:  # noqa: BLE001 - an init failure is reported, not raised
        traceback.print_exc()
        _send(channel, {"ready": False, "error": _error(exc)})
        return 1
    init_ms = round((time.perf_counter() - started) * 1000, 3)
    # What the import built (SDK models, clients) lives as long as the process: keep it out
    # of the collector's full passes, which would otherwise stall an invocation now and then.
    keep_full_collections_short()
    _send(channel, {"ready": True, "init_ms": init_ms, "pid": os.getpid()})
    function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", args.function)
    region = os.environ.get("AWS_REGION", "us-east-1")
    for line in sys.stdin.buffer:
        request = json.loads(line)
        context = LambdaContext(request["request_id"], function_name, args.memory,
                                args.timeout, region)
        try:
            result = handler(request["event"], context)
            reply = {"request_id": request["request_id"], "ok": True, "result": result}
        except Exception as exc:  # noqa: BLE001 - a handler error fails the invocation only
            traceback.print_exc()
            reply = {"request_id": request["request_id"], "ok": False, "error": _error(exc)}
        sys.stdout.flush()
        _send(channel, reply)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="warm handler process of the local runtime")
    parser.add_argument("--function", required=True)
    parser.add_argument("--handler", required=True, help="module.attribute, e.g. app.worker")
    parser.add_argument("--timeout", type=float, required=True, help="seconds")
    parser.add_argument("--memory", type=int, default=128, help="MB (reported only)")
    return serve(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
