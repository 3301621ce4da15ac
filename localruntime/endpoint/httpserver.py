"""A small threaded HTTP/1.1 server for moto's WSGI application.

werkzeug's development server, which moto ships with, parses headers with the email
package, logs every request, closes every connection and, after each response, waits
up to 10 ms for stray request data. Here each connection gets a thread that reads a
request line, headers and a body (Content-Length or chunked), runs the application
with the environ werkzeug and moto's request handler would have built, and writes the
response in one send, keeping the connection open for the next request.
"""

from __future__ import annotations

import contextlib
import io
import socket
import socketserver
import struct
import sys
import time
import traceback
from collections.abc import Callable, Iterable
from email.utils import formatdate
from typing import Any
from urllib.parse import unquote, urlsplit

from moto.core.request import (
    PRESERVED_HEADER_NAMES_ENVIRON_KEY,
    environ_key_for_header,
    should_preserve_original_header_name,
)

from localruntime.endpoint.faults import RESET_BODY_KEY

MAX_LINE_BYTES = 65536
MAX_HEADERS = 200
IDLE_SECONDS = 300.0
NO_BODY_STATUSES = (204, 304)

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class BadRequest(Exception):
    """The request cannot be parsed; the connection answers 400 and closes."""


def _latin1_to_wsgi(text: str) -> str:
    # What werkzeug puts in PATH_INFO and friends (its "WSGI encoding dance").
    return text.encode().decode("latin1")


class _DateHeader:
    """`Date:` for responses, formatted at most once a second."""

    def __init__(self) -> None:
        self._second = -1
        self._value = b""

    def __call__(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._value = f"Date: {formatdate(now, usegmt=True)}\r\n".encode()
            self._second = now
        return self._value


class RequestHandler(socketserver.StreamRequestHandler):
    rbufsize = 65536
    wbufsize = 0
    timeout = IDLE_SECONDS
    server: HttpServer

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def handle(self) -> None:
        try:
            while self._serve_one():
                pass
        except BadRequest as exc:
            self._send_error(400, str(exc))
        except OSError:
            return

    def _read_line(self) -> bytes:
        line = self.rfile.readline(MAX_LINE_BYTES + 1)
        if len(line) > MAX_LINE_BYTES:
            raise BadRequest("line too long")
        return line

    def _serve_one(self) -> bool:
        line = self._read_line()
        while line in (b"\r\n", b"\n"):
            line = self._read_line()
        if not line:
            return False
        parts = line.decode("latin-1").rstrip("\r\n").split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise BadRequest(f"bad request line {line[:100]!r}")
        method, target, version = parts
        if target.startswith("//"):
            target = "/" + target.lstrip("/")
        headers = self._read_headers()
        fields = {name.lower(): value for name, value in headers}
        if fields.get("expect", "").lower().strip(" \t") == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = self._read_body(fields)
        environ = self._environ(method, target, version, headers, body)
        keep_alive = (version == "HTTP/1.1"
                      and fields.get("connection", "").lower() != "close")
        self._respond(environ, method, keep_alive)
        return keep_alive

    def _read_headers(self) -> list[tuple[str, str]]:
        headers: list[tuple[str, str]] = []
        while True:
            line = self._read_line()
            if line in (b"\r\n", b"\n", b""):
                return headers
            text = line.decode("latin-1")
            if text[0] in " \t" and headers:
                name, value = headers[-1]
                headers[-1] = (name, value + text.rstrip("\r\n"))
                continue
            name, colon, value = text.partition(":")
            if not colon or len(headers) >= MAX_HEADERS:
                raise BadRequest("bad header line")
            headers.append((name, value.lstrip(" \t").rstrip("\r\n")))

    def _read_body(self, fields: dict[str, str]) -> bytes:
        if "chunked" in fields.get("transfer-encoding", "").lower():
            return self._read_chunked()
        length = fields.get("content-length", "").strip()
        if not length:
            return b""
        if not length.isdigit():
            raise BadRequest("bad Content-Length")
        body = self.rfile.read(int(length))
        if len(body) != int(length):
            raise ConnectionResetError("the client closed the connection mid-body")
        return body

    def _read_chunked(self) -> bytes:
        chunks = []
        while True:
            size_line = self._read_line().split(b";", 1)[0].strip()
            try:
                size = int(size_line, 16)
            except ValueError:
                raise BadRequest("bad chunk size") from None
            if size == 0:
                while self._read_line() not in (b"\r\n", b"\n", b""):
                    continue
                return b"".join(chunks)
            chunks.append(self.rfile.read(size))
            self.rfile.readline(MAX_LINE_BYTES)

    def _environ(self, method: str, target: str, version: str,
                 headers: list[tuple[str, str]], body: bytes) -> dict[str, Any]:
        url = urlsplit(target)
        path = f"/{url.netloc}{url.path}" if not url.scheme and url.netloc else url.path
        host, port = self.server.server_address[:2]
        environ: dict[str, Any] = {
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            "SERVER_SOFTWARE": "localruntime",
            "REQUEST_METHOD": method,
            "SCRIPT_NAME": "",
            "PATH_INFO": _latin1_to_wsgi(unquote(path)),
            "QUERY_STRING": _latin1_to_wsgi(url.query),
            "REQUEST_URI": _latin1_to_wsgi(target),
            "RAW_URI": _latin1_to_wsgi(target),
            "REMOTE_ADDR": self.client_address[0],
            "REMOTE_PORT": self.client_address[1],
            "SERVER_NAME": host,
            "SERVER_PORT": str(port),
            "SERVER_PROTOCOL": version,
        }
        for name, value in headers:
            if "_" in name:
                continue
            key = environ_key_for_header(name)
            value = value.replace("\r\n", "")
            if key.startswith("HTTP_") and key in environ:
                value = f"{environ[key]},{value}"
            environ[key] = value
        if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
            environ["wsgi.input_terminated"] = True
        if url.scheme and url.netloc:
            environ["HTTP_HOST"] = url.netloc
        self._preserve_underscored_headers(environ, headers)
        return environ

    @staticmethod
    def _preserve_underscored_headers(environ: dict[str, Any],
                                      headers: list[tuple[str, str]]) -> None:
        """S3 metadata names may hold underscores, which WSGI cannot carry: keep them the
        way moto's own request handler does."""
        dashed = {environ_key_for_header(name) for name, _ in headers if "_" not in name}
        names: dict[str, str] = {}
        values: dict[str, list[str]] = {}
        for name, value in headers:
            if not should_preserve_original_header_name(name):
                continue
            key = environ_key_for_header(name)
            if key in dashed:
                continue
            names.setdefault(key, name)
            values.setdefault(key, []).append(value.replace("\r\n", ""))
        for key, key_values in values.items():
            environ[key] = ",".join(key_values)
        environ[PRESERVED_HEADER_NAMES_ENVIRON_KEY] = names

    def _respond(self, environ: dict[str, Any], method: str, keep_alive: bool) -> None:
        started: list[Any] = []
        written: list[bytes] = []

        def start_response(status: str, headers: list[tuple[str, str]],
                           exc_info: Any = None) -> Callable[[bytes], None]:
            if exc_info and started:
                raise exc_info[1].with_traceback(exc_info[2])
            started[:] = [status, headers]
            return written.append

        try:
            result = self.server.app(environ, start_response)
            try:
                written.extend(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        except Exception:  # noqa: BLE001 - one failed request answers 500, the server stays up
            traceback.print_exc()
            self._send_error(500, "Internal Server Error")
            raise ConnectionAbortedError from None
        status, headers = started
        body = b"".join(written)
        code = int(status.split(" ", 1)[0])
        lines = [f"HTTP/1.1 {status}\r\n".encode("latin-1"), self.server.date()]
        has_length = False
        for name, value in headers:
            lowered = name.lower()
            if lowered == "transfer-encoding" or lowered == "connection":
                continue
            has_length = has_length or lowered == "content-length"
            lines.append(f"{name}: {value}\r\n".encode("latin-1"))
        bodiless = method == "HEAD" or code < 200 or code in NO_BODY_STATUSES
        if not has_length and not bodiless:
            lines.append(f"Content-Length: {len(body)}\r\n".encode())
        if not keep_alive:
            lines.append(b"Connection: close\r\n")
        lines.append(b"\r\n")
        if environ.get(RESET_BODY_KEY) and not bodiless:
            self._reset_mid_body(b"".join(lines), body)
        if not bodiless:
            lines.append(body)
        self.wfile.write(b"".join(lines))

    def _reset_mid_body(self, head: bytes, body: bytes) -> None:
        """Send the head and half the body, then reset the connection (an injected fault)."""
        self.wfile.write(head + body[: len(body) // 2])
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                   struct.pack("ii", 1, 0))
        raise ConnectionResetError("fault injected: connection reset mid-body")

    def _send_error(self, code: int, message: str) -> None:
        text = message.encode("utf-8", "replace")
        reason = "Bad Request" if code == 400 else "Internal Server Error"
        head = (f"HTTP/1.1 {code} {reason}\r\nContent-Type: text/plain\r\n"
                f"Content-Length: {len(text)}\r\nConnection: close\r\n\r\n")
        with contextlib.suppress(OSError):
            self.wfile.write(head.encode() + text)


class HttpServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: WsgiApp) -> None:
        self.app = app
        self.date = _DateHeader()
        super().__init__(address, RequestHandler)
