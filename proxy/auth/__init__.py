"""Signed URLs, vendor-compatible tokens and access control.

Start-up::

    ctx = AuthContext.from_settings(settings.auth)            # loads keys once
    policy = build_policy(route_settings.auth, ctx)           # per route
    access = AccessPolicy.from_settings(route_settings.access)
    trusted = TrustedNetworks.from_settings(settings.server.trusted_proxies)

Per request (after parse_request, before routing, then in the auth step)::

    path_token, path = split_path_token(req.path, marker)     # native /_t/<token>/...
    ip = client_ip(req.client, req.headers, trusted)
    result = verify(req, policy, client_ip=ip, path_token=path_token)
    if not result.ok: status, headers, body = denial(result)
    cache_query = policy.strip_token(req.query)
"""

from proxy.auth.access import (
    AccessPolicy,
    CorsPolicy,
    PreflightAnswer,
    TrustedNetworks,
    client_ip,
    cors_headers,
    country_of,
    is_preflight,
    preflight,
    referer_allowed,
)
from proxy.auth.bunny import split_bunny_path_token
from proxy.auth.common import REASON_HEADER, REASONS, AuthInput, AuthResult
from proxy.auth.keys import Key, KeyRing
from proxy.auth.native import (
    mint_token,
    sign_url,
    signed_cookie,
    split_path_token,
    token_free_path,
)
from proxy.auth.policy import (
    OPEN,
    AuthContext,
    AuthPolicy,
    build_policy,
    denial,
    log_denial,
    strip_token,
    verify,
)
from proxy.auth.ratelimit import (
    LocalRateLimiter,
    RateDecision,
    RedisRateLimiter,
    too_many_requests,
)

__all__ = [
    "OPEN",
    "REASONS",
    "REASON_HEADER",
    "AccessPolicy",
    "AuthContext",
    "AuthInput",
    "AuthPolicy",
    "AuthResult",
    "CorsPolicy",
    "Key",
    "KeyRing",
    "LocalRateLimiter",
    "PreflightAnswer",
    "RateDecision",
    "RedisRateLimiter",
    "TrustedNetworks",
    "build_policy",
    "client_ip",
    "cors_headers",
    "country_of",
    "denial",
    "is_preflight",
    "log_denial",
    "mint_token",
    "preflight",
    "referer_allowed",
    "sign_url",
    "signed_cookie",
    "split_bunny_path_token",
    "split_path_token",
    "strip_token",
    "token_free_path",
    "too_many_requests",
    "verify",
]
