"""Open a stage's dashboard.

    python -m logctl.dashboard                      # local: check `make local` serves it, print it
    python -m logctl.dashboard --stage aws [--port 8000] [--api-url URL]

On AWS every route takes only SigV4-signed requests (IAM auth), which a browser cannot
make. For `aws` this command serves the dashboard on http://127.0.0.1:PORT/ and signs
each request it forwards to the deployed API with your AWS credentials (they need
`execute-api:Invoke` on the API). The API URL comes from `.chalice/deployed/aws.json`
(written by `chalice deploy`) unless --api-url gives it. Ctrl-C stops it.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

from logctl.cli import LogctlError, positive_int, run, stage_from, stage_options
from logctl.stage import PROJECT_ROOT, Stage

DEFAULT_PORT = 8000
FORWARD_TIMEOUT_SECONDS = 30


def deployed_rest_api(stage: Stage, project: Path = PROJECT_ROOT) -> dict[str, Any]:
    """The rest_api resource `chalice deploy` recorded in .chalice/deployed/<stage>.json."""
    path = project / ".chalice" / "deployed" / f"{stage.name}.json"
    try:
        resources = json.loads(path.read_text())["resources"]
    except (OSError, ValueError, KeyError) as exc:
        raise LogctlError(f"cannot read the deployed API from {path} ({exc}): deploy first "
                          "(make deploy-aws) or pass --api-url") from None
    for resource in resources:
        if resource.get("resource_type") == "rest_api":
            return dict(resource)
    raise LogctlError(f"{path} lists no REST API: deploy first (make deploy-aws)")


def deployed_api_url(stage: Stage, project: Path = PROJECT_ROOT) -> str:
    return str(deployed_rest_api(stage, project)["rest_api_url"])


class SigningHandler(BaseHTTPRequestHandler):
    """Forwards GET and POST to `api_url` + path, signed for execute-api."""

    api_url: str
    credentials: Any
    region: str

    def do_GET(self) -> None:
        self._forward()

    def do_POST(self) -> None:
        self._forward()

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        url = self.api_url.rstrip("/") + "/" + self.path.lstrip("/")
        headers = {"Content-Type": self.headers["Content-Type"]} if body else {}
        signed = AWSRequest(method=self.command, url=url, data=body, headers=headers)
        SigV4Auth(self.credentials, "execute-api", self.region).add_auth(signed)
        request = urllib.request.Request(url, data=body, method=self.command,
                                         headers=dict(signed.headers.items()))
        try:
            with urllib.request.urlopen(request, timeout=FORWARD_TIMEOUT_SECONDS) as answer:
                self._reply(answer.status, answer.headers.get("Content-Type"), answer.read())
        except urllib.error.HTTPError as answer:
            self._reply(answer.code, answer.headers.get("Content-Type"), answer.read())
        except (urllib.error.URLError, OSError) as exc:
            message = {"error": {"code": "bad_gateway", "message": f"{url}: {exc}"}}
            self._reply(502, "application/json", json.dumps(message).encode())

    def _reply(self, status: int, content_type: str | None, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type or "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"dashboard: {format % args}\n")


def signing_proxy(api_url: str, credentials: Any, region: str, port: int,
                  host: str = "127.0.0.1") -> ThreadingHTTPServer:
    handler = type("Handler", (SigningHandler,), {
        "api_url": api_url, "credentials": credentials, "region": region})
    return ThreadingHTTPServer((host, port), handler)


def check_local(port: int) -> str:
    url = f"http://127.0.0.1:{port}/"
    try:
        with urllib.request.urlopen(url + "health", timeout=5):
            return url
    except (urllib.error.URLError, OSError) as exc:
        raise LogctlError(f"nothing answers on {url} ({exc}): start `make local` "
                          "(it serves the dashboard on API_PORT, default 8000)") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m logctl.dashboard", description=__doc__, parents=[stage_options()],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=positive_int, default=DEFAULT_PORT,
                        help="local: the API port of `make local`; aws: the port to serve on")
    parser.add_argument("--api-url", default=None, help="aws: the deployed API's URL")
    args = parser.parse_args(argv)

    def body() -> int:
        stage = stage_from(args)
        if stage.is_local:
            print(f"dashboard: {check_local(args.port)}")
            return 0
        credentials = boto3.session.Session(region_name=stage.region).get_credentials()
        if credentials is None:
            raise LogctlError("no AWS credentials: run `aws configure` (or export them)")
        api_url = args.api_url or deployed_api_url(stage)
        try:
            server = signing_proxy(api_url, credentials, stage.region, args.port)
        except OSError as exc:
            raise LogctlError(f"cannot listen on 127.0.0.1:{args.port}: {exc}") from None
        print(f"dashboard: http://127.0.0.1:{args.port}/ (signed requests to {api_url}; "
              "Ctrl-C stops)", flush=True)
        try:
            server.serve_forever()
        finally:
            server.server_close()
        return 0

    return run("dashboard", body)


if __name__ == "__main__":
    sys.exit(main())
