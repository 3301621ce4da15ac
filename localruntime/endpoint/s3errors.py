"""S3's error answers: a status line and the XML body S3 sends with it."""

from __future__ import annotations

import uuid
from xml.sax.saxutils import escape

HOST_ID = "localruntime"


def request_id() -> str:
    return uuid.uuid4().hex[:16].upper()


def error_body(code: str, message: str, fields: dict[str, str] | None = None) -> bytes:
    """`<Error><Code>…</Code><Message>…</Message>…fields…<RequestId/><HostId/></Error>`."""
    extra = "".join(f"<{name}>{escape(value)}</{name}>" for name, value in (fields or {}).items())
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
            f"<Message>{escape(message)}</Message>{extra}<RequestId>{request_id()}</RequestId>"
            f"<HostId>{HOST_ID}</HostId></Error>").encode()
