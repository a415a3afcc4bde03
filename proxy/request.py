"""The client request as the pipeline needs it, parsed once from the ASGI scope."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from proxy.auth.access import TrustedNetworks, forwarding
from proxy.cache.keys import url_key, valid_query
from proxy.http.authority import BadAuthority, parse_authority, same_authority
from proxy.http.forwarding import Forwarding
from proxy.http.paths import BadPath

# The authority of an absolute-form request target, where the HTTP server exposes it
# (proxy/serve/server_protocol.py), under this key of scope["extensions"].
TARGET_AUTHORITY = "edgeshield.target_authority"


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
    forwarding: Forwarding  # client address, proxies, peer: see `client`
    scheme: str
    now: float
    # The origin that answered, for the access log (a group may fail over to another).
    answered_by: str | None = None
    # X-Request-Id, as the pipeline decided it (proxy/serve/request_ids.py): to the origin.
    request_id: str | None = None

    @property
    def client(self) -> str:
        """The client's address: the socket peer, or whom trusted proxies vouch for."""
        return self.forwarding.client

    @property
    def target(self) -> str:
        return f"{self.path}?{self.query}" if self.query else self.path

    @property
    def key(self) -> str:
        """The cache key of the (token-free) URL: proxy/cache/keys.py."""
        return url_key(self.host, self.path, self.query)


def parse_request(
    scope: dict[str, Any],
    *,
    normalize: Callable[[str], str],
    max_url_bytes: int,
    max_header_bytes: int,
    trusted: TrustedNetworks | None = None,
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
    if not valid_query(query_text):
        raise Rejected(400, "bad query: space or control bytes")
    host = request_host(scope, headers.get("host"), len(headers) != len(raw))
    peer = str((scope.get("client") or ("",))[0])
    return Request(
        method=scope["method"],
        path=path,
        query=query_text,
        headers=headers,
        header_list=header_list,
        host=host,
        forwarding=Forwarding((peer,)) if trusted is None else forwarding(peer, headers, trusted),
        scheme=scope.get("scheme", "http"),
        now=time.time(),
    )


def request_host(scope: dict[str, Any], field: str | None, repeated: bool) -> str:
    """The validated host the request names, lower-case without port (RFC 9110 7.2,
    RFC 9112 3.2). `field` is the (joined) Host value; `repeated` says some field came
    twice, and a second Host is refused rather than picked from."""
    if repeated and sum(1 for name, _ in scope["headers"] if name == b"host") > 1:
        raise Rejected(400, "more than one host")
    target = (scope.get("extensions") or {}).get(TARGET_AUTHORITY)
    http11 = scope.get("http_version") not in ("1.0", "1")  # granian says "1" for 1.0
    try:
        if not field and (field is None or not http11):
            if http11:  # HTTP/1.1 and later name the host (RFC 9112 3.2)
                raise Rejected(400, "missing host")
            if target is not None:
                return parse_authority(target).host
            address = str((scope.get("server") or ("",))[0])
            return f"[{address}]" if ":" in address else address
        authority = parse_authority(field)
        if target is not None and not same_authority(authority, parse_authority(target)):
            raise Rejected(400, "host differs from the request target")
    except BadAuthority as exc:
        raise Rejected(400, exc.reason) from None
    return authority.host
