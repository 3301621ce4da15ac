"""HTTP/1.1 keep-alive for moto's werkzeug server.

Werkzeug's development server closes every connection: after each response it drains the
socket, which on a reused connection would swallow the next request. Reading the request
body up front (it has a Content-Length) and hiding the socket's reader from that drain
makes the connection safe to reuse, which saves a TCP connect and a thread start per AWS
call. Requests with a chunked body keep werkzeug's behaviour and close their connection.
"""

from __future__ import annotations

import io
import socket
from typing import Any

from moto.moto_server.werkzeug_app import MotoRequestHandler


class KeepAliveRequestHandler(MotoRequestHandler):
    _body: bytes | None = None

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def run_wsgi(self) -> None:
        chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        if chunked:
            self._body = None
            super().run_wsgi()
            return
        if self.headers.get("Expect", "").lower().strip(" \t") == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            del self.headers["Expect"]
        length = self.headers.get("Content-Length", "")
        size = int(length) if length.isdigit() else 0
        self._body = self.rfile.read(size) if size else b""
        socket_reader = self.rfile
        self.rfile = io.BytesIO()
        try:
            super().run_wsgi()
        finally:
            self.rfile = socket_reader
            self._body = None

    def make_environ(self) -> dict[str, Any]:
        environ = super().make_environ()
        if self._body is not None:
            environ["wsgi.input"] = io.BytesIO(self._body)
        return environ

    def send_header(self, keyword: str, value: str) -> None:
        if (keyword.lower() == "connection" and value.lower() == "close"
                and self._body is not None):
            return
        super().send_header(keyword, value)
