"""uvicorn's httptools protocol, keeping the authority of an absolute-form target.

uvicorn parses `GET http://a.example/x HTTP/1.1` into the path "/x" and drops the
authority, so the app would cache by a Host field that may name another site (RFC 9112
3.2.2 says the target's authority wins). This subclass hands that authority to the app
in scope["extensions"], where proxy/request.py compares it with Host.
"""

from __future__ import annotations

from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from proxy.request import TARGET_AUTHORITY


class AuthorityKeepingProtocol(HttpToolsProtocol):
    def on_headers_complete(self) -> None:
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
