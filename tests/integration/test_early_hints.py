"""An origin's 103 Early Hints (docs/deployment.md#early-hints): neither engine can send
an informational response through ASGI, and httpx drops the 103 before edgeshield sees
it, so the final answer is relayed and cached as if the 103 had not been sent. The
preload links still reach browsers as the final response's own Link field."""

from __future__ import annotations

import socket

from tests.support.origin_server import OriginServer
from tests.support.proxy_server import ProxyServer
from tests.support.raw_http import read_response

LINK = "</hero.css>; rel=preload; as=style"
PAGE = "<!doctype html><title>hinted</title>\n"


def test_an_origin_103_is_dropped_and_the_answer_relayed_and_cached(
    proxy: ProxyServer, origin: OriginServer
) -> None:
    origin.script(
        "/hinted.html",
        body=PAGE,
        early_hints=[LINK, "</hero.jpg>; rel=preload; as=image"],
        headers={"content-type": "text/html", "cache-control": "max-age=60", "link": LINK},
    )
    for _ in range(2):  # a miss, then a hit
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=15) as sock:
            sock.sendall(
                b"GET /hinted.html HTTP/1.1\r\nHost: media.example\r\n"
                b"Accept-Encoding: identity\r\nConnection: close\r\n\r\n"
            )
            answer = read_response(sock)
        assert answer.status == 200  # the first status line: no 103 went out
        assert answer.body == PAGE.encode()
        assert answer.header("link") == LINK
    assert origin.requests("/hinted.html") == 1
