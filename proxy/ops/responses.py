"""The answers of the operations endpoints, as Starlette responses with exactly the
fields given: never stored (`Cache-Control: no-store`), dated (the engines add no Date of
their own to an answer that has one), and to a HEAD the head alone, with the length of the
body it stands for."""

from __future__ import annotations

import time
from collections.abc import Iterable

from starlette.requests import Request
from starlette.responses import Response

from proxy.http.dates import format_http_date

Header = tuple[bytes, bytes]
TEXT = b"text/plain; charset=utf-8"


def respond(status: int, fields: Iterable[Header], body: bytes = b"") -> Response:
    """Starlette adds no field of its own: Content-Type and Content-Length are given."""
    headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in fields}
    return Response(body, status, headers)


def _fields(content_type: bytes, length: int) -> list[Header]:
    return [
        (b"content-type", content_type),
        (b"content-length", b"%d" % length),
        (b"cache-control", b"no-store"),
        (b"date", format_http_date(time.time()).encode()),
    ]


def answer(
    request: Request,
    body: bytes,
    content_type: bytes,
    status: int = 200,
    extra: Iterable[Header] = (),
) -> Response:
    head_only = request.method == "HEAD"
    return respond(status, [*_fields(content_type, len(body)), *extra], b"" if head_only else body)


def error(status: int, reason: str, extra: Iterable[Header] = ()) -> Response:
    """`<status> <reason>` in plain text, as the proxy's own refusals (deliver.send_error)."""
    body = f"{status} {reason}\n".encode()
    return respond(status, [*_fields(TEXT, len(body)), *extra], body)
