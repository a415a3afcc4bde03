"""Storability, freshness lifetime and age for a shared cache (RFC 9111 3, 4.2; RFC 5861)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from proxy.http.cache_control import (
    MAX_DELTA_SECONDS,
    CacheControl,
    parse_cache_control,
    parse_targeted,
)
from proxy.http.dates import parse_http_date
from proxy.http.streaming import Rule, StreamingPolicy
from proxy.http.vary import parse_vary

__all__ = [
    "Freshness",
    "FreshnessPolicy",
    "response_freshness",
    "stale_when_disconnected",
]


@dataclass(frozen=True, slots=True)
class FreshnessPolicy:
    default_ttl: float | None = None  # lifetime when the origin gives none (heuristic statuses)
    override_ttl: float | None = None  # replaces any computed lifetime of a storable response
    negative_ttl: float = 0.0  # 404/410 without explicit freshness
    heuristic_fraction: float = 0.1  # RFC 9111 4.2.2 "typical setting ... 10%"
    heuristic_max: float = 86400.0
    stale_while_revalidate: float = 0.0  # used when the response carries none
    stale_if_error: float = 0.0  # used when the response carries none
    targeted_fields: tuple[str, ...] = ()  # RFC 9213 target list, highest precedence first
    # Lifetimes of HLS/DASH objects by kind (proxy/http/streaming.py); None = off.
    streaming: StreamingPolicy | None = None


@dataclass(frozen=True, slots=True)
class Freshness:
    storable: bool
    reason: str  # why not storable; "" when storable
    lifetime: float
    initial_age: float  # RFC 9111 4.2.3 corrected_initial_age
    stale_while_revalidate: float
    stale_if_error: float
    must_revalidate: bool  # never serve stale (must-/proxy-revalidate, s-maxage)
    no_cache: bool  # may store, but must revalidate before every reuse


# RFC 9110 15.1 / RFC 9111 4.2.2: may be stored and given a heuristic lifetime.
HEURISTIC_STATUSES = frozenset({200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501})
_NEGATIVE_STATUSES = frozenset({404, 410})
# The answers a streaming rule is about: the object itself (never an error page).
_STREAMING_STATUSES = frozenset({200, 203, 206})


def _age_value(raw: str | None) -> float:
    """RFC 9111 5.1: Age is delta-seconds; invalid means 0, repeats keep the first value."""
    if not raw:
        return 0.0
    v = raw.split(",", 1)[0].strip(" \t")
    if not (v.isascii() and v.isdigit()):
        return 0.0
    return float(MAX_DELTA_SECONDS if len(v) > 10 else min(int(v), MAX_DELTA_SECONDS))


def _directives(headers: Mapping[str, str], targeted: tuple[str, ...]) -> tuple[CacheControl, bool]:
    """RFC 9213 2.2: the first targeted field with a valid, non-empty value replaces
    Cache-Control *and* Expires for this cache. Returns (directives, targeted_used)."""
    for name in targeted:
        raw = headers.get(name)
        cc = parse_targeted(name, raw) if raw is not None else None
        if cc is not None:  # RFC 9213 2.1: an empty or invalid field is ignored
            return cc, True
    return parse_cache_control(headers.get("cache-control")), False


# Media types a default or heuristic lifetime may apply to even when the request carried
# a Cookie: the same bytes for everyone in practice (Cloudflare's default cacheable types).
STATIC_TYPE_PREFIXES = ("image/", "audio/", "video/", "font/")
STATIC_TYPES = frozenset(
    {
        "text/css",
        "text/javascript",
        "application/javascript",
        "application/wasm",
        "application/octet-stream",
        "application/pdf",
    }
)


def is_static_type(content_type: str | None) -> bool:
    media = (content_type or "").partition(";")[0].strip().lower()
    return media.startswith(STATIC_TYPE_PREFIXES) or media in STATIC_TYPES


def _not_storable(reason: str, initial_age: float) -> Freshness:
    return Freshness(False, reason, 0.0, initial_age, 0.0, 0.0, False, False)


def response_freshness(
    status: int,
    headers: Mapping[str, str],
    *,
    request_time: float,
    response_time: float,
    has_authorization: bool,
    policy: FreshnessPolicy,
    rule: Rule | None = None,
    has_cookie: bool = False,
) -> Freshness:
    """Decide whether a shared cache may store a response and for how long it is fresh.

    ``headers`` has lower-case names with repeated fields joined by ", ". A 304 is reported
    as not storable: it carries no representation; the caller merges its header fields into
    the stored response (RFC 9111 4.3.4) and calls this again with the stored status.
    ``rule`` is the streaming policy's for the object (proxy/http/streaming.py): its
    default replaces the route's default TTL and the heuristic, its ceiling caps the
    lifetime; the origin's explicit freshness still wins when shorter.
    """
    if status not in _STREAMING_STATUSES:
        rule = None
    date = parse_http_date(headers.get("date"))
    if date is None:  # RFC 9110 6.6.1: the receiving cache supplies Date
        date = response_time
    # RFC 9111 4.2.3, verbatim.
    apparent_age = max(0.0, response_time - date)
    response_delay = response_time - request_time
    corrected_age_value = _age_value(headers.get("age")) + response_delay
    initial_age = max(apparent_age, corrected_age_value)

    cc, targeted = _directives(headers, policy.targeted_fields)

    # RFC 9111 3: storage prohibitions, most specific first.
    if cc.no_store:
        return _not_storable("no-store", initial_age)
    if cc.private:  # RFC 9111 5.2.2.7: shared caches MUST NOT store
        return _not_storable("private", initial_age)
    if parse_vary(headers.get("vary")) is None:  # RFC 9111 4.1: Vary: * never matches
        return _not_storable("vary-star", initial_age)
    if "set-cookie" in headers:  # per-user state; shared caches do not keep it
        return _not_storable("set-cookie", initial_age)
    # RFC 9111 3.5: responses to authenticated requests need explicit permission.
    if has_authorization and not (cc.public or cc.must_revalidate or cc.s_maxage is not None):
        return _not_storable("authorization", initial_age)

    expires = None if targeted else headers.get("expires")
    explicit = cc.s_maxage is not None or cc.max_age is not None or cc.invalid
    explicit = explicit or expires is not None
    heuristic = status in HEURISTIC_STATUSES
    # RFC 9111 3: only final statuses; other than the heuristically cacheable ones, only with
    # explicit freshness. "public" alone would also permit it (RFC 9111 4.2.2) but that MAY
    # is not taken: it would let error pages be stored on a default TTL.
    if status < 200 or status > 599 or status == 304 or not (heuristic or explicit):
        return _not_storable("status", initial_age)

    # RFC 9111 4.2.1, first match wins.
    lifetime: float
    if cc.no_cache:  # RFC 9111 5.2.2.4: every reuse needs validation, so never fresh
        lifetime = 0.0
    elif policy.override_ttl is not None:
        lifetime = policy.override_ttl
    elif cc.invalid:  # RFC 9111 4.2.1: invalid freshness information means stale
        lifetime = 0.0
    elif cc.s_maxage is not None:
        lifetime = float(cc.s_maxage)
    elif cc.max_age is not None:
        lifetime = float(cc.max_age)
    elif expires is not None:
        exp = parse_http_date(expires)  # RFC 9111 5.3: invalid (e.g. "0") is in the past
        lifetime = max(0.0, exp - date) if exp is not None else 0.0
    elif status in _NEGATIVE_STATUSES:
        lifetime = policy.negative_ttl
    elif rule is not None:
        lifetime = rule.default
    elif has_cookie and not is_static_type(headers.get("content-type")):
        # A page or API answer fetched with cookies and no freshness may be one user's:
        # Varnish passes such requests, Cloudflare caches only static types by default.
        return _not_storable("cookie", initial_age)
    elif policy.default_ttl is not None:
        lifetime = policy.default_ttl
    else:
        lm = parse_http_date(headers.get("last-modified"))
        if lm is None or lm > date:
            return _not_storable("no-freshness", initial_age)
        lifetime = min(policy.heuristic_max, policy.heuristic_fraction * (date - lm))
    if rule is not None and rule.ceiling is not None:
        lifetime = min(lifetime, rule.ceiling)  # a live playlist, even under override_ttl

    # s-maxage implies proxy-revalidate (RFC 9111 5.2.2.10); RFC 9111 4.2.4 forbids stale
    # use under these and under no-cache, whatever RFC 5861 directives say.
    must_revalidate = cc.must_revalidate or cc.proxy_revalidate or cc.s_maxage is not None
    if must_revalidate or cc.no_cache:
        swr = sie = 0.0
    else:
        swr = (
            float(cc.stale_while_revalidate)
            if cc.stale_while_revalidate is not None
            else policy.stale_while_revalidate
        )
        sie = float(cc.stale_if_error) if cc.stale_if_error is not None else policy.stale_if_error
    return Freshness(True, "", lifetime, initial_age, swr, sie, must_revalidate, cc.no_cache)


def stale_when_disconnected(f: Freshness) -> bool:
    """RFC 9111 4.2.4: a cache that cannot reach the origin may serve a stale copy,
    unless must-revalidate, proxy-revalidate or s-maxage (5.2.2.2, 5.2.2.8, 5.2.2.10) or
    no-cache (5.2.2.4) said every reuse needs the origin's say."""
    return not (f.must_revalidate or f.no_cache)
