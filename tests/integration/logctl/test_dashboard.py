"""logctl.dashboard: the local URL check, and the signing proxy the aws stage uses."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from botocore.credentials import Credentials

from localruntime.background import free_port
from logctl import dashboard
from logctl.stage import load_stage


class Upstream(BaseHTTPRequestHandler):
    """Stands in for API Gateway: records each request and answers 404 with a JSON body."""

    seen: ClassVar[list[dict[str, Any]]] = []

    def do_GET(self) -> None:
        self._record(b"")

    def do_POST(self) -> None:
        self._record(self.rfile.read(int(self.headers["Content-Length"])))

    def _record(self, body: bytes) -> None:
        self.seen.append({"method": self.command, "path": self.path,
                          "headers": dict(self.headers), "body": body})
        answer = json.dumps({"error": {"code": "not_found"}}).encode()
        self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: Any) -> None:
        pass


def serve(server: ThreadingHTTPServer) -> Iterator[ThreadingHTTPServer]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def proxy() -> Iterator[str]:
    Upstream.seen = []
    upstream = ThreadingHTTPServer(("127.0.0.1", free_port()), Upstream)
    api_url = f"http://127.0.0.1:{upstream.server_address[1]}/api/"
    port = free_port()
    signing = dashboard.signing_proxy(api_url, Credentials("AKIDEXAMPLE", "secret"),
                                      "eu-west-1", port)
    for _ in serve(upstream):
        for _ in serve(signing):
            yield f"http://127.0.0.1:{port}"


def test_the_proxy_signs_every_request_for_execute_api(proxy: str) -> None:
    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.urlopen(proxy + "/jobs?status=failed")
    body = json.dumps({"name": "a.ndjson", "size": 3}).encode()
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(urllib.request.Request(
            proxy + "/uploads", data=body, headers={"Content-Type": "application/json"}))

    assert answer.value.code == 404
    assert json.loads(answer.value.read()) == {"error": {"code": "not_found"}}
    get, post = Upstream.seen
    assert get["path"] == "/api/jobs?status=failed"
    assert post["path"] == "/api/uploads" and post["body"] == body
    for request in (get, post):
        auth = request["headers"]["Authorization"]
        assert auth.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
        assert "/eu-west-1/execute-api/aws4_request" in auth
        assert "X-Amz-Date" in request["headers"]


def test_an_unreachable_api_is_a_502_with_a_reason() -> None:
    port = free_port()
    dead = f"http://127.0.0.1:{free_port()}/api/"
    for _ in serve(dashboard.signing_proxy(dead, Credentials("a", "b"), "us-east-1", port)):
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health")
    assert answer.value.code == 502
    assert dead in json.loads(answer.value.read())["error"]["message"]


def test_the_api_url_comes_from_chalice_deployed_state(tmp_path: Path) -> None:
    stage = load_stage("aws", endpoint_url=None)
    deployed = tmp_path / ".chalice" / "deployed"
    deployed.mkdir(parents=True)
    (deployed / "aws.json").write_text(json.dumps({"resources": [
        {"name": "worker", "resource_type": "lambda_function"},
        {"name": "rest_api", "resource_type": "rest_api",
         "rest_api_url": "https://abc.execute-api.us-east-1.amazonaws.com/api/"}]}))

    assert dashboard.deployed_api_url(stage, tmp_path) == (
        "https://abc.execute-api.us-east-1.amazonaws.com/api/")
    with pytest.raises(dashboard.LogctlError, match="deploy first"):
        dashboard.deployed_api_url(stage, tmp_path / "nowhere")


def test_local_without_a_running_api_says_how_to_start_it(
        capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    assert dashboard.main(["--stage", "local", "--port", str(port)]) == 1
    assert "make local" in capsys.readouterr().err
