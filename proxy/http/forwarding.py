"""Which header fields cross the proxy, in each direction (RFC 9110 7.6, RFC 9111 3.2)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from proxy.http.dates import format_http_date
from proxy.http.headers import hop_by_hop
from proxy.http.vary import normalize_accept_encoding

# Request fields the cache answers itself; the origin gets an unconditional full GET.
LOCALLY_ANSWERED = frozenset(
    {"range", "if-range", "if-match", "if-none-match", "if-modified-since", "if-unmodified-since"}
)
# Response fields this cache recomputes per response (RFC 9111 5.1 Age; RFC 9211: the
# upstream Cache-Status is kept separately and listed before ours).
RECOMPUTED = frozenset({"age", "content-length", "cache-status", "server-timing"})
# RFC 9111 3.2: fields of a 304 that must not replace the stored ones.
NOT_UPDATED_BY_304 = frozenset(
    {"content-length", "content-encoding", "content-range", "transfer-encoding"}
)
# Where a request came from, as proxies tell it: never taken from a client. The origin
# gets one set of X-Forwarded-For/-Proto/-Host, edgeshield's (from `Forwarding`).
FORWARDING = frozenset(
    {"x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "forwarded", "x-real-ip"}
)
# Tunnelled methods: an origin that honours one on a GET answers for another method,
# and the cache would store that answer under the GET (a 405 served to everyone).
METHOD_OVERRIDE = frozenset({"x-http-method-override", "x-http-method", "x-method-override"})
# The request id: logged, sent to the origin, shown on error answers. One a trusted proxy
# sent is kept when it is a short token of these characters (UUIDs, hex, base64, the
# ids of common load balancers); anything else could forge or break a log line.
REQUEST_ID = "x-request-id"
_REQUEST_ID = re.compile(r"[A-Za-z0-9+/=_.:-]{1,128}")


# Response fields that belong to one request: never stored or relayed from the origin.
PER_REQUEST = frozenset({REQUEST_ID})


def valid_request_id(value: str) -> bool:
    return _REQUEST_ID.fullmatch(value) is not None


@dataclass(frozen=True, slots=True)
class Forwarding:
    """How the request reached this proxy, as far as the socket and the trusted proxies
    in front vouch for it; worked out once per request (proxy/auth/access.py
    `forwarding`)."""

    # The client, the trusted proxies it came through, in order, and the socket peer:
    # (peer,) when the peer is not a trusted proxy.
    chain: tuple[str, ...]
    # The scheme the client used, when a trusted proxy says ("http" or "https").
    proto: str | None = None
    # The client's country from a trusted proxy's geo header.
    country: str | None = None

    @property
    def client(self) -> str:
        return self.chain[0]

    @property
    def peer(self) -> str:
        return self.chain[-1]


def origin_request_headers(
    request_headers: Iterable[tuple[str, str]],
    *,
    forwarding: Forwarding,
    scheme: str,
    host: str,
    cacheable: bool,
    method_override: bool = False,
    etag: str | None = None,
    last_modified: float | None = None,
    request_id: str | None = None,
) -> list[tuple[str, str]]:
    """Client fields to forward. For a cache fetch, range and conditional fields are the
    cache's to answer; the validators of a stale entry are added instead (RFC 9111 4.3.1),
    and method-override fields are dropped unless the route forwards them. Forwarding
    fields are always edgeshield's own: the chain trusted proxies vouched for, the host
    the cache key holds (what the origin answers for must be what the key names), and
    `request_id` in place of whatever X-Request-Id the client sent."""
    headers = list(request_headers)
    drop = hop_by_hop(headers) | FORWARDING | {"host"}
    if request_id is not None:
        drop |= {REQUEST_ID}
    if cacheable:
        drop |= LOCALLY_ANSWERED if method_override else LOCALLY_ANSWERED | METHOD_OVERRIDE
    out: list[tuple[str, str]] = []
    for name, value in headers:
        if name in drop:
            continue
        if name == "accept-encoding" and cacheable:
            value = normalize_accept_encoding(value)
            if not value:
                continue
        out.append((name, value))
    out.append(("x-forwarded-for", ", ".join(forwarding.chain)))
    out.append(("x-forwarded-proto", forwarding.proto or scheme))
    out.append(("x-forwarded-host", host))
    out.append(("via", "1.1 edgeshield"))
    if request_id is not None:
        out.append((REQUEST_ID, request_id))
    if cacheable and etag:
        out.append(("if-none-match", etag))
    if cacheable and last_modified is not None:
        out.append(("if-modified-since", format_http_date(last_modified)))
    return out


def client_response_headers(
    origin_headers: Iterable[tuple[str, str]],
    *,
    strip: Iterable[str],
    downstream_cache_control: str | None,
    now: float,
    answers_ranges: bool,
) -> list[tuple[bytes, bytes]]:
    """The stored/forwarded response's fields as clients see them (without the fields
    computed per response: content-length, age, cache-status, server-timing; without
    an X-Request-Id, which names the request that fetched it, not the one answered; and
    without Accept-Ranges when this cache answers ranges itself)."""
    headers = list(origin_headers)
    drop = hop_by_hop(headers) | RECOMPUTED | PER_REQUEST | frozenset(strip)
    if answers_ranges:
        drop |= {"accept-ranges"}
    if downstream_cache_control is not None:
        drop |= {"cache-control"}
    out: list[tuple[bytes, bytes]] = []
    has_date = False
    for name, value in headers:
        if name in drop:
            continue
        has_date = has_date or name == "date"
        out.append((name.encode("latin-1"), value.encode("latin-1")))
    if downstream_cache_control is not None:
        out.append((b"cache-control", downstream_cache_control.encode("latin-1")))
    if not has_date:  # RFC 9110 6.6.1: a cache with a clock supplies Date
        out.append((b"date", format_http_date(now).encode()))
    return out


def merge_304(
    stored: Iterable[tuple[str, str]], update: Iterable[tuple[str, str]]
) -> list[tuple[str, str]]:
    """RFC 9111 4.3.4: fields in the 304 replace the stored ones of the same name."""
    update = list(update)
    drop = NOT_UPDATED_BY_304 | hop_by_hop(update)
    fresh = [(n, v) for n, v in update if n not in drop]
    replaced = {n for n, _ in fresh}
    return [(n, v) for n, v in stored if n not in replaced] + fresh


def joined(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in headers:
        out[name] = f"{out[name]}, {value}" if name in out else value
    return out
