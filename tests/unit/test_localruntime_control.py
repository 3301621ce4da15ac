"""The endpoint's control route: shows and switches the fault plan, and takes no AWS request."""

from __future__ import annotations

import io
import json
import threading
from typing import Any

import pytest

from localruntime.endpoint.control import FaultControl
from localruntime.faults import CONTROL_PATH, FaultPlan, FaultSwitch


def request(method: str = "GET", path: str = CONTROL_PATH, query: str = "",
            body: Any = None, content_type: str = "application/json",
            **headers: str) -> dict[str, Any]:
    data = json.dumps(body).encode() if body is not None else b""
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query,
               "HTTP_HOST": "127.0.0.1:4566", "SERVER_NAME": "127.0.0.1",
               "CONTENT_TYPE": content_type, "CONTENT_LENGTH": str(len(data)),
               "wsgi.input": io.BytesIO(data)}
    environ.update({f"HTTP_{name.upper()}": value for name, value in headers.items()})
    return environ


class Served:
    """The control route over a stand-in for moto that records what reached it."""

    def __init__(self, plan: FaultPlan | None = None) -> None:
        self.switch = FaultSwitch(plan)
        self.passed: list[dict[str, Any]] = []
        self.app = FaultControl(self._moto, self.switch)

    def _moto(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        self.passed.append(environ)
        start_response("200 OK", [])
        return [b"moto"]

    def __call__(self, environ: dict[str, Any]) -> tuple[int, Any]:
        status: list[str] = []
        body = b"".join(self.app(environ, lambda s, h: status.append(s)))
        return int(status[0].split()[0]), body if body == b"moto" else json.loads(body)


def test_show_set_and_clear() -> None:
    served = Served(FaultPlan({"kill": 0.5}, seed=7))
    status, state = served(request())
    assert status == 200 and state["rates"] == {"kill": 0.5} and state["version"] == 1
    assert "s3_get_reset" in state["kinds"] and state["seed"] == 7
    status, state = served(request("POST", body={"set": ["s3_get_reset=1"]}))
    assert status == 200 and state["rates"] == {"kill": 0.5, "s3_get_reset": 1.0}
    assert state["version"] == 2 and state["applied"] is False
    assert served.switch.plan.rate("s3_get_reset") == 1.0 and served.switch.plan.seed == 7
    status, state = served(request("DELETE"))
    assert status == 200 and state["rates"] == {} and not served.switch.plan.active
    served(request("POST", body={"set": ["kill=1"]}))
    assert served(request("POST", body={"clear": True}))[1]["rates"] == {}
    assert served.passed == []


@pytest.mark.parametrize(("environ", "status", "words"), [
    (request("POST", body={"set": ["explode=1"]}), 400, "unknown kind 'explode'"),
    (request("POST", body={"set": ["kill=2"]}), 400, "between 0 and 1"),
    (request("POST", body={"set": []}), 400, '{"set"'),
    (request("POST", body=["kill=1"]), 400, "JSON object"),
    (request("POST", body={"set": ["kill=1"]}, content_type="text/plain"), 415,
     "application/json"),
    (request("PUT", body={"set": ["kill=1"]}), 405, "GET, POST or DELETE"),
    (request(path="/_localruntime/other"), 404, CONTROL_PATH),
    (request(query="after=x"), 400, "numbers"),
])
def test_bad_requests_change_nothing_and_say_why(environ: dict, status: int,
                                                 words: str) -> None:
    served = Served(FaultPlan({"kill": 0.5}))
    answer_status, answer = served(environ)
    assert answer_status == status and words in answer["error"]["message"]
    assert served.switch.plan == FaultPlan({"kill": 0.5}) and served.switch.version == 1


@pytest.mark.parametrize("environ", [
    request(AUTHORIZATION="AWS4-HMAC-SHA256 Credential=test/20261206/us-east-1/s3/aws4_request"),
    request(query="X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=00"),
    request(HOST="_localruntime.localhost:4566"),
    request(HOST="bucket.s3.localhost.localstack.cloud:4566"),
    request(path="/bucket/_localruntime/faults"),
], ids=["signed", "presigned", "virtual-host", "virtual-host-s3", "a key"])
def test_aws_requests_never_reach_the_route(environ: dict) -> None:
    served = Served()
    assert served(environ) == (200, b"moto")
    assert len(served.passed) == 1


def test_a_follower_long_polls_and_a_change_waits_until_it_has_it() -> None:
    served = Served()
    seen: list[dict] = []

    def follower() -> None:
        _, state = served(request(query="after=1&wait=30"))
        seen.append(state)
        served(request(query=f"after={state['version']}&wait=0"))

    thread = threading.Thread(target=follower)
    thread.start()
    while not served.app._followed:
        threading.Event().wait(0.01)
    _, state = served(request("POST", body={"set": ["kill=1"]}))
    thread.join()
    assert seen[0]["rates"] == {"kill": 1.0} and seen[0]["version"] == 2
    assert state["applied"] is True
