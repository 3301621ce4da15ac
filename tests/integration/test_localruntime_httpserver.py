"""The endpoint's HTTP server, with a small WSGI application that echoes what it got."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from localruntime.endpoint.httpserver import HttpServer


def echo_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    if environ["PATH_INFO"] == "/boom":
        raise RuntimeError("boom")
    body = environ["wsgi.input"].read()
    seen = {key: value for key, value in environ.items()
            if key.isupper() and isinstance(value, str)}
    seen["body"] = body.decode("latin-1")
    seen["preserved"] = environ.get("moto.preserved_header_names", {})
    payload = json.dumps(seen).encode()
    if environ["PATH_INFO"] == "/no-content":
        start_response("204 No Content", [])
        return []
    start_response("200 OK", [("Content-Type", "application/json")])
    return [payload[:10], payload[10:]]


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, int]]:
    httpd = HttpServer(("127.0.0.1", 0), echo_app)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[:2]
    httpd.shutdown()
    httpd.server_close()


class Connection:
    def __init__(self, address: tuple[str, int]) -> None:
        self.sock = socket.create_connection(address, timeout=5)
        self.reader = self.sock.makefile("rb")

    def send(self, raw: bytes) -> None:
        self.sock.sendall(raw)

    def response(self) -> tuple[int, dict[str, str], bytes]:
        status = self.reader.readline().decode()
        headers: dict[str, str] = {}
        while (line := self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            headers[name.lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        return int(status.split()[1]), headers, self.reader.read(length)

    def closed(self) -> bool:
        return self.reader.read(1) == b""


def test_requests_share_one_connection_and_bodies_arrive_whole(server) -> None:
    conn = Connection(server)
    for i in range(3):
        body = f"request {i}".encode()
        conn.send(b"POST /q?a=1 HTTP/1.1\r\nHost: sqs.local\r\nContent-Type: text/plain\r\n"
                  b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        status, headers, payload = conn.response()
        seen = json.loads(payload)
        assert status == 200 and "date" in headers
        assert seen["body"] == f"request {i}"
        assert seen["QUERY_STRING"] == "a=1" and seen["PATH_INFO"] == "/q"
        assert seen["HTTP_HOST"] == "sqs.local" and seen["CONTENT_TYPE"] == "text/plain"


def test_chunked_bodies_expect_continue_and_percent_encoded_paths(server) -> None:
    conn = Connection(server)
    conn.send(b"PUT /bucket/a%20b%C3%A9.txt HTTP/1.1\r\nHost: s3.local\r\n"
              b"Transfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n")
    assert conn.reader.readline() == b"HTTP/1.1 100 Continue\r\n"
    assert conn.reader.readline() == b"\r\n"
    conn.send(b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n")
    status, _, payload = conn.response()
    seen = json.loads(payload)
    assert status == 200 and seen["body"] == "hello world"
    assert seen["PATH_INFO"].encode("latin-1").decode() == "/bucket/a b\u00e9.txt"
    assert seen["REQUEST_URI"] == "/bucket/a%20b%C3%A9.txt"


def test_repeated_headers_join_and_underscored_metadata_names_are_kept(server) -> None:
    conn = Connection(server)
    conn.send(b"GET / HTTP/1.1\r\nHost: h\r\nX-Thing: 1\r\nX-Thing: 2\r\n"
              b"x-amz-meta-my_key: v\r\nX_Spoof: no\r\n\r\n")
    seen = json.loads(conn.response()[2])
    assert seen["HTTP_X_THING"] == "1,2"
    assert seen["HTTP_X_AMZ_META_MY_KEY"] == "v"
    assert seen["preserved"] == {"HTTP_X_AMZ_META_MY_KEY": "x-amz-meta-my_key"}
    assert "HTTP_X_SPOOF" not in seen


def test_head_and_204_answers_carry_no_body(server) -> None:
    conn = Connection(server)
    conn.send(b"GET /no-content HTTP/1.1\r\nHost: h\r\n\r\n"
              b"GET /again HTTP/1.1\r\nHost: h\r\n\r\n")
    status, headers, _ = conn.response()
    assert status == 204 and "content-length" not in headers
    status, _, payload = conn.response()
    assert status == 200 and json.loads(payload)["PATH_INFO"] == "/again"


def test_connection_close_and_http_1_0_close_after_the_answer(server) -> None:
    for request in (b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
                    b"GET / HTTP/1.0\r\nHost: h\r\n\r\n"):
        conn = Connection(server)
        conn.send(request)
        status, headers, _ = conn.response()
        assert status == 200 and headers["connection"] == "close"
        assert conn.closed()


@pytest.mark.parametrize("request_bytes", [
    b"NONSENSE\r\n\r\n",
    b"GET / HTTP/1.1\r\nno colon here\r\n\r\n",
    b"POST / HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
    b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
])
def test_malformed_requests_get_400_and_the_server_stays_up(server, request_bytes) -> None:
    conn = Connection(server)
    conn.send(request_bytes)
    status, _, _ = conn.response()
    assert status == 400
    assert conn.closed()
    again = Connection(server)
    again.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert again.response()[0] == 200


def test_an_application_error_answers_500_and_closes(server, capsys) -> None:
    conn = Connection(server)
    conn.send(b"GET /boom HTTP/1.1\r\nHost: h\r\n\r\n")
    status, _, body = conn.response()
    assert status == 500 and body == b"Internal Server Error"
    assert conn.closed()
