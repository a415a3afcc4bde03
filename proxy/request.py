"""The client request as the pipeline needs it, parsed once from the ASGI scope."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from proxy.http.paths import BadPath
from routing.rules import host_of


class Rejected(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(slots=True)
class Request:
    method: str
    path: str  # normalised, percent-encoded
    query: str
    headers: dict[str, str]  # lower-case names, repeated fields joined
    header_list: list[tuple[str, str]]
    host: str
    client: str
    scheme: str
    now: float

    @property
    def target(self) -> str:
        return f"{self.path}?{self.query}" if self.query else self.path


def parse_request(
    scope: dict[str, Any],
    *,
    normalize: Callable[[str], str],
    max_url_bytes: int,
    max_header_bytes: int,
) -> Request:
    """Runs on every request, hits included, so the common case is kept to a few C-level
    operations. ASGI servers hand over lower-case header names (uvicorn does)."""
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
    query: bytes = scope.get("query_string", b"")
    if len(raw_path) + len(query) > max_url_bytes:
        raise Rejected(414, "uri too long")
    raw = scope["headers"]
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in raw}
    if len(headers) == len(raw):
        header_list = list(headers.items())
    else:  # a repeated field: keep every line, join the values (RFC 9110 5.3)
        header_list = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in raw]
        headers = {}
        for name, value in header_list:
            if name in headers:
                headers[name] = f"{headers[name]}{'; ' if name == 'cookie' else ', '}{value}"
            else:
                headers[name] = value
    if sum(map(len, headers.values())) + sum(map(len, headers)) + 4 * len(raw) > max_header_bytes:
        raise Rejected(431, "request header fields too large")
    try:
        path = normalize(raw_path.decode("latin-1"))
        query_text = query.decode("ascii")
    except BadPath as exc:
        raise Rejected(400, f"bad path: {exc.reason}") from None
    except UnicodeDecodeError:
        raise Rejected(400, "bad query: non-ascii bytes") from None
    authority = headers.get("host")
    if authority is None:
        if scope.get("http_version") == "1.1":
            raise Rejected(400, "missing host")  # RFC 9112 3.2
        server = scope.get("server") or ("", 0)
        authority = str(server[0])
    client = scope.get("client") or ("", 0)
    return Request(
        method=scope["method"],
        path=path,
        query=query_text,
        headers=headers,
        header_list=header_list,
        host=host_of(authority),
        client=str(client[0]),
        scheme=scope.get("scheme", "http"),
        now=time.time(),
    )
