"""uvicorn's httptools protocol, keeping the authority of an absolute-form target.

uvicorn parses `GET http://a.example/x HTTP/1.1` into the path "/x" and drops the
authority, so the app would cache by a Host field that may name another site (RFC 9112
3.2.2 says the target's authority wins). This subclass hands that authority to the app
in scope["extensions"], where proxy/request.py compares it with Host.

uvicorn has no header-read timeout: a connection that sends nothing, or a head one byte
at a time, is held forever (its keep-alive timer starts only after a response, and any
byte stops it). `[server] header_read_timeout` (uvicorn's timeout_keep_alive here) also
bounds the time from the connection's start, or its previous response, to a complete head,
and a head larger than `max_header_bytes + max_url_bytes` (uvicorn's
h11_max_incomplete_event_size here; httptools has no bound) gets a 431 and a close.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from proxy.request import TARGET_AUTHORITY

HEAD_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; charset=utf-8"
    b"\r\ncontent-length: 32\r\nconnection: close\r\n\r\nrequest header fields too large\n"
)


class AuthorityKeepingProtocol(HttpToolsProtocol):
    _head_timer: asyncio.TimerHandle | None = None
    _head_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._head_timer is None:  # the head is complete: a body, or not reading
            return
        self._head_bytes += len(data)
        limit = self.config.h11_max_incomplete_event_size
        if limit is not None and self._head_bytes > limit and not self.transport.is_closing():
            self.transport.write(HEAD_TOO_LARGE)
            self.transport.close()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.timeout_keep_alive_task is not None:  # idle, waiting for the next head
            self._arm_head_timer()

    def _arm_head_timer(self) -> None:
        self._stop_head_timer()
        self._head_bytes = 0
        self._head_timer = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def on_headers_complete(self) -> None:
        self._stop_head_timer()
        url = self.url
        if url[:1] not in (b"/", b"*"):
            try:
                parsed = httptools.parse_url(url)
            except httptools.HttpParserInvalidURLError:
                parsed = None
            authority = b""
            if parsed is not None and parsed.host and not parsed.userinfo:
                host = parsed.host
                if b":" in host:  # httptools strips the brackets of an IPv6 literal
                    host = b"[" + host + b"]"
                authority = host if parsed.port is None else b"%s:%d" % (host, parsed.port)
            # An unusable one (none, or with userinfo: RFC 9110 4.2.4) is still recorded:
            # it never parses, so the request is refused.
            scope: dict[str, Any] = self.scope  # type: ignore[assignment]
            scope.setdefault("extensions", {})[TARGET_AUTHORITY] = (
                authority.decode("latin-1") or "/"
            )
        super().on_headers_complete()
