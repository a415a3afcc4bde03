"""Hop-by-hop abuse by an origin, replayed against a real `edgeshield serve` (issue 16):
a response whose Connection field lists the fields that frame or decode it. RFC 9110
7.6.1 forbids listing end-to-end fields; honouring it stored gzip bytes without their
Content-Encoding, so every client got an undecodable body from the cache. Fields that
frame or decode a message are never Connection options (proxy/http/headers.py); anything
else listed stays at this hop. Each attack: a clean, complete answer, then a clean client
gets the same right bytes from the cache."""

from __future__ import annotations

import base64
import gzip
import uuid

import httpx
import pytest

from tests.support.origin_server import OriginServer
from tests.support.proxy_server import ProxyServer

TEXT = b"the right bytes " * 64


@pytest.mark.parametrize(
    "listed",
    [
        "content-encoding, x-private",
        "Content-Type , X-Private",
        "content-length, x-private",
        "close, content-encoding, content-type, content-length, x-private",
    ],
)
def test_connection_cannot_strip_framing_fields(
    origin: OriginServer, proxy: ProxyServer, listed: str
) -> None:
    path = f"/hop/{uuid.uuid4().hex}"
    origin.script(
        path,
        body_base64=base64.b64encode(gzip.compress(TEXT)).decode(),
        headers=[
            ["content-type", "text/plain; charset=utf-8"],
            ["content-encoding", "gzip"],
            ["cache-control", "max-age=60"],
            ["x-private", "for this hop only"],
            ["connection", listed],
        ],
    )
    with httpx.Client(base_url=proxy.url, timeout=10) as client:
        first = client.get(path)
        again = client.get(path)  # a clean client, from the cache
    for response in (first, again):
        assert response.status_code == 200
        assert response.headers["content-encoding"] == "gzip"
        assert response.headers["content-type"] == "text/plain; charset=utf-8"
        assert response.content == TEXT  # httpx decoded the gzip body
        assert "x-private" not in response.headers
    assert "hit" in again.headers["cache-status"]
    assert origin.requests(path) == 1
