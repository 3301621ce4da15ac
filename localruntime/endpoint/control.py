"""The endpoint's control route: the fault plan in force, shown and switched at run time.

    GET    /_localruntime/faults                  the plan: {"rates", "seed", "version", "kinds",
                                                  "followed"}
    GET    /_localruntime/faults?after=V&wait=S   the same, once the version is not V (S s max)
    POST   /_localruntime/faults                  {"set": ["KIND=RATE", ...]} or {"clear": true}
    DELETE /_localruntime/faults                  clear

The runtime follows the plan with the long poll (`localruntime.faults.follow`); a change
answers once the runtime has it in force (`"applied": true`), or after
`APPLY_WAIT_SECONDS` (`false`; `"followed"` says whether a runtime follows this endpoint).

Ordinary AWS traffic never reaches the route: a request is the route's only if it carries no
AWS signature (every SDK call has one), names the endpoint itself as its host (never a
bucket, as virtual-hosted S3 does), and its path starts with `/_localruntime/`, which no
bucket can (bucket names start with a letter or digit). A browser cannot change the plan from
another page either: POST needs `Content-Type: application/json` and DELETE is not a simple
method, so both need a CORS preflight, which the route never grants.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from localruntime.faults import CONTROL_PATH, KINDS, FaultPlan, FaultSpecError, FaultSwitch

CONTROL_PREFIX = "/_localruntime/"
APPLY_WAIT_SECONDS = 2.0
MAX_WAIT_SECONDS = 60.0
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def is_control(environ: dict[str, Any]) -> bool:
    if not environ.get("PATH_INFO", "").startswith(CONTROL_PREFIX):
        return False
    if "HTTP_AUTHORIZATION" in environ:
        return False
    query = environ.get("QUERY_STRING", "")
    if "X-Amz-" in query or "Signature=" in query:
        return False
    try:
        host = urlsplit("//" + environ.get("HTTP_HOST", "")).hostname
    except ValueError:
        return False
    return host is not None and host in (*LOCAL_HOSTS, environ.get("SERVER_NAME"))


class _BadRequest(Exception):
    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status


class FaultControl:
    """Wraps the endpoint's WSGI application and answers the control route itself."""

    def __init__(self, application: WsgiApp, switch: FaultSwitch) -> None:
        self.application = application
        self.switch = switch
        self._acknowledged = 0
        self._followed = False
        self._acked = threading.Condition()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:
        if not is_control(environ):
            return self.application(environ, start_response)
        try:
            status, answer = self._answer(environ)
        except _BadRequest as exc:
            status, answer = exc.status, {"error": {"code": "bad_request", "message": str(exc)}}
        body = json.dumps(answer, sort_keys=True).encode()
        start_response(status, [("Content-Type", "application/json"),
                                ("Content-Length", str(len(body))),
                                ("Cache-Control", "no-store")])
        return [body]

    def _answer(self, environ: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        if environ["PATH_INFO"] != CONTROL_PATH:
            raise _BadRequest("404 Not Found", f"no such control route: {environ['PATH_INFO']} "
                              f"(there is {CONTROL_PATH})")
        method = environ.get("REQUEST_METHOD")
        if method == "GET":
            return "200 OK", self._show(parse_qs(environ.get("QUERY_STRING", "")))
        if method == "DELETE":
            return "200 OK", self._change(self.switch.plan.cleared())
        if method == "POST":
            return "200 OK", self._change(self._posted_plan(environ))
        raise _BadRequest("405 Method Not Allowed", f"{method}: use GET, POST or DELETE")

    def _state(self, version: int, plan: FaultPlan) -> dict[str, Any]:
        return {"rates": {k: v for k, v in plan.rates.items() if v > 0}, "seed": plan.seed,
                "version": version, "kinds": list(KINDS)}

    def _show(self, query: dict[str, list[str]]) -> dict[str, Any]:
        if "after" not in query:
            return {**self._state(self.switch.version, self.switch.plan),
                    "followed": self._followed}
        try:
            after = int(query["after"][0])
            wait = min(MAX_WAIT_SECONDS, float(query.get("wait", ["0"])[0]))
        except ValueError:
            raise _BadRequest("400 Bad Request", "after and wait are numbers") from None
        with self._acked:
            self._followed = True
            self._acknowledged = max(self._acknowledged, after)
            self._acked.notify_all()
        return self._state(*self.switch.wait_for_change(after, max(0.0, wait)))

    def _posted_plan(self, environ: dict[str, Any]) -> FaultPlan:
        if environ.get("CONTENT_TYPE", "").split(";")[0].strip() != "application/json":
            raise _BadRequest("415 Unsupported Media Type", "send Content-Type: application/json")
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            request = json.loads(environ["wsgi.input"].read(length) or b"{}")
        except ValueError:
            raise _BadRequest("400 Bad Request", 'body: not JSON; send {"set": ["KIND=RATE"]} '
                              'or {"clear": true}') from None
        if not isinstance(request, dict):
            raise _BadRequest("400 Bad Request", "body: a JSON object")
        if request.get("clear") is True:
            return self.switch.plan.cleared()
        specs = request.get("set")
        if not isinstance(specs, list) or not specs or not all(isinstance(s, str) for s in specs):
            raise _BadRequest("400 Bad Request", 'body: {"set": ["KIND=RATE", ...]} or '
                              '{"clear": true}')
        try:
            return self.switch.plan.updated(specs)
        except FaultSpecError as exc:
            raise _BadRequest("400 Bad Request", str(exc)) from None

    def _change(self, plan: FaultPlan) -> dict[str, Any]:
        version = self.switch.set(plan)
        with self._acked:
            applied = self._acked.wait_for(lambda: self._acknowledged >= version,
                                           APPLY_WAIT_SECONDS if self._followed else 0)
        return {**self._state(version, plan), "applied": applied, "followed": self._followed}
