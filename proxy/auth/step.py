"""The auth step of the pipeline: per route, built once at start-up from [routes.auth]
and [routes.access]; per request, in this order (cheapest refusal first):

    CORS preflight  -> 204 / 403 answered here (browsers send no token with preflights)
    access lists    -> 403 ip-denied | country-denied | referer-denied
    rate limit      -> 429 + Retry-After (per client address; Redis-shared when configured)
    token           -> 403 missing | expired | bad-signature | ... (edgeshield-auth-reason)
    strip           -> token parameters and cookies removed from the request, so the cache
                       key and the origin request are the same for every signed URL

The verifiers themselves are pure functions in proxy/auth/."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from config.schema import RouteSettings, Settings
from proxy.auth.access import (
    AccessPolicy,
    TrustedNetworks,
    cors_headers,
    is_preflight,
    preflight,
)
from proxy.auth.bunny import split_bunny_path_token
from proxy.auth.common import REASON_HEADER, AuthResult
from proxy.auth.native import split_path_token
from proxy.auth.playlist_tokens import ChildSigner
from proxy.auth.policy import (
    OPEN,
    AuthContext,
    AuthPolicy,
    build_policy,
    denial,
    log_denial,
    verify,
)
from proxy.auth.ratelimit import LocalRateLimiter, RateLimiter, too_many_requests
from proxy.auth.redact import Redactor
from proxy.cluster.hop import vouched
from proxy.deliver import send_response
from proxy.http.dates import format_http_date
from proxy.http.playlist_uris import playlist_kind
from proxy.http.vary import merge_vary
from proxy.request import Request
from proxy.tokenize import tokenizing_send

if TYPE_CHECKING:
    from proxy.exchange import Exchange

Header = tuple[bytes, bytes]
Send = Callable[[dict[str, Any]], Awaitable[None]]
log = logging.getLogger("edgeshield.auth")


@dataclass(frozen=True, slots=True)
class Answer:
    """A request answered by the guard instead of the cache: a preflight or a refusal."""

    status: int
    headers: list[Header]
    body: bytes
    outcome: str  # "deny" or "preflight"
    reason: str


@dataclass(frozen=True, slots=True, eq=False)
class Guard:
    route: str
    auth: AuthPolicy
    access: AccessPolicy
    limiter: RateLimiter | None = None
    # Child tokens for playlists requested with a query token ([routes.auth.playlists]).
    playlists: ChildSigner | None = None

    def rewrites(self, content_type: str | None, path: str) -> bool:
        """Might this answer be a playlist that gets child tokens? The fast path leaves
        those to the pipeline, which rewrites them on the way out (proxy/tokenize.py)."""
        return self.playlists is not None and playlist_kind(content_type, path) is not None

    @property
    def inline(self) -> bool:
        """Checkable without awaiting and without touching the response: the fast path
        may run it (no rate limit, no CORS headers to add)."""
        return self.limiter is None and self.access.cors is None


@dataclass(frozen=True, slots=True, eq=False)
class Guards:
    by_route: Mapping[str, Guard]
    trusted: TrustedNetworks
    # Native path tokens (/_t/<token>/...) are cut before routing when a route accepts them.
    path_marker: str | None
    # bunny.net directory tokens (/bcdn_token=.../...) likewise, from the raw path.
    bunny_paths: bool
    # What a log line or the admin page may show of a target (proxy/auth/redact.py).
    redact: Redactor

    def split_bunny(self, scope: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
        """(directory-token parameters, scope with the token segment removed)."""
        if not self.bunny_paths:
            return None, scope
        raw = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        params, rest = split_bunny_path_token(raw)
        if params is None:
            return None, scope
        return params, {**scope, "raw_path": rest.encode("latin-1"), "path": rest}

    def split_path(self, req: Request) -> str | None:
        """Cut a native path token from ``req.path`` (in place); the token or None."""
        if self.path_marker is None:
            return None
        token, rest = split_path_token(req.path, self.path_marker)
        if token is not None:
            req.path = rest
        return token


def build_guards(settings: Settings, route_names: list[str], redis_client: Any = None) -> Guards:
    """One Guard per route that has [routes.auth] or [routes.access] (``route_names`` in
    the order of settings.routes). Raises ValueError / KeyError_ for unloadable keys."""
    ctx: AuthContext | None = None
    by_route: dict[str, Guard] = {}
    marker: str | None = None
    bunny = False
    for name, spec in zip(route_names, settings.routes, strict=True):
        if spec.auth is None and spec.access is None:
            continue
        if spec.auth is not None and ctx is None:
            ctx = AuthContext.from_settings(settings.auth)
        policy = build_policy(spec.auth, ctx) if spec.auth is not None and ctx else OPEN
        if policy.marker is not None:
            marker = policy.marker
        bunny = bunny or (spec.auth is not None and "bunny" in spec.auth.schemes)
        by_route[name] = Guard(
            name,
            policy,
            AccessPolicy.from_settings(spec.access),
            _limiter(name, spec, redis_client),
            _child_signer(settings, spec, ctx),
        )
    return Guards(
        by_route,
        TrustedNetworks.from_settings(settings.server.trusted_proxies),
        marker,
        bunny,
        Redactor.from_settings(settings.auth, (r.auth.param for r in settings.routes if r.auth)),
    )


def _child_signer(
    settings: Settings, spec: RouteSettings, ctx: AuthContext | None
) -> ChildSigner | None:
    if spec.auth is None or spec.auth.playlists is None or ctx is None:
        return None
    return ChildSigner(
        spec.auth.playlists,
        ctx,
        native_param=spec.auth.param or settings.auth.native.param,
        schemes=spec.auth.schemes,
    )


def _limiter(name: str, spec: RouteSettings, redis_client: Any) -> RateLimiter | None:
    limit = spec.access.ratelimit if spec.access else None
    if limit is None:
        return None
    if limit.shared and redis_client is not None:
        from proxy.auth.ratelimit import RedisRateLimiter

        return RedisRateLimiter(
            redis_client,
            limit.rate,
            limit.burst,
            prefix=f"edgeshield:rl:{name}:",
            max_clients=limit.max_clients,
        )
    return LocalRateLimiter(limit.rate, limit.burst, max_clients=limit.max_clients)


def check_inline(
    guards: Guards,
    guard: Guard,
    req: Request,
    *,
    path_token: str | None = None,
    bunny_path: str | None = None,
    quiet: bool = False,
) -> Answer | AuthResult:
    """Access lists and token: the refusal, or the (ok) verification result, the request
    then made token-free in place. ``quiet``: no log line (the fast path declines, and
    the pipeline then logs)."""
    ip, country = req.client, req.forwarding.country  # trusted proxies: parse_request
    reason = guard.access.check(client_ip=ip, country=country, headers=req.headers)
    if reason:
        if not quiet:
            log.info("access denied route=%s client=%s reason=%s", guard.route, ip, reason)
        return _refusal(403, reason)
    auth = guard.auth
    result = verify(
        req, auth, client_ip=ip, path_token=path_token, bunny_path=bunny_path, country=country
    )
    if not result.ok:
        if not quiet:
            path = guards.redact.path(req.path)
            log_denial(result, route=guard.route, client=ip, path=path)
        status, headers, body = denial(result)
        return Answer(status, headers, body, "deny", result.reason)
    strip(auth, req)
    return result


async def admit(ex: Exchange, guard: Guard) -> tuple[Answer | None, Send]:
    """The pipeline's auth step: the answer (None: go on, the request now token-free)
    and the send its response goes out through (the route's CORS headers; a signed
    playlist's child tokens). A request over a signed cluster hop skips the checks:
    the peer that asks ran them on its client's request, and answers that client."""
    req = ex.req
    if vouched():  # over a signed hop: the asking peer checked the client (no CORS either)
        strip(guard.auth, req)  # a no-op but for a peer whose parameters differ
        return None, ex.send
    query = req.query  # as it came: the token is stripped below
    found = await _check(
        ex.state.guards, guard, req, path_token=ex.path_token, bunny_path=ex.bunny_path
    )
    send = ex.send
    if not isinstance(found, Answer) or found.outcome != "preflight":  # it has its own
        send = with_cors(guard, req.headers.get("origin"), send)
    if isinstance(found, Answer):
        return found, send
    ex.verified = found
    if guard.playlists is not None:
        send = tokenizing_send(ex, send, guard.playlists, guard.auth, found, query)
    return None, send


async def check(
    guards: Guards,
    guard: Guard,
    req: Request,
    *,
    path_token: str | None = None,
    bunny_path: str | None = None,
) -> Answer | None:
    """The whole auth step: None to go on (request now token-free), else the answer."""
    found = await _check(guards, guard, req, path_token=path_token, bunny_path=bunny_path)
    return found if isinstance(found, Answer) else None


async def _check(
    guards: Guards,
    guard: Guard,
    req: Request,
    *,
    path_token: str | None = None,
    bunny_path: str | None = None,
) -> Answer | AuthResult:
    cors = guard.access.cors
    if cors is not None and is_preflight(req.method, req.headers):
        answer = preflight(cors, req.headers)
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in answer.headers]
        reason = "" if answer.allowed else "cors-denied"
        return Answer(answer.status, headers, b"", "preflight", reason)
    if guard.limiter is not None:
        ip = req.client
        decision = await guard.limiter.acquire(ip)
        if not decision.allowed:
            log.info("rate limited route=%s client=%s", guard.route, ip)
            status, headers, body = too_many_requests(decision)
            headers.append((REASON_HEADER.encode(), b"rate-limited"))
            return Answer(status, headers, body, "deny", "rate-limited")
    return check_inline(guards, guard, req, path_token=path_token, bunny_path=bunny_path)


def strip(auth: AuthPolicy, req: Request) -> None:
    """Token parameters and cookies out of the request (cache key, origin request)."""
    if auth.strip_params and req.query:
        req.query = auth.strip_token(req.query)
    if auth.strip_cookie_names and "cookie" in req.headers:
        kept = auth.strip_cookies(req.headers["cookie"])
        req.header_list = [(k, v) for k, v in req.header_list if k != "cookie"]
        if kept is None:
            del req.headers["cookie"]
        else:
            req.headers["cookie"] = kept
            req.header_list.append(("cookie", kept))


def _refusal(status: int, reason: str) -> Answer:
    headers = [
        (REASON_HEADER.encode(), reason.encode()),
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"cache-control", b"no-store"),
    ]
    return Answer(status, headers, f"forbidden: {reason}\n".encode(), "deny", reason)


def with_cors(guard: Guard, origin: str | None, send: Send) -> Send:
    """``send`` that adds the route's CORS headers (and Vary: Origin when the answer
    depends on it) to the response head; unchanged when the route has no CORS."""
    cors = guard.access.cors
    if cors is None:
        return send
    extra = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in cors_headers(cors, origin)]
    if not extra:
        return send

    async def send_with_cors(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": merge_vary([*message["headers"], *extra])}
        await send(message)

    return send_with_cors


async def send_answer(send: Send, answer: Answer) -> int:
    headers = [
        *answer.headers,
        (b"content-length", str(len(answer.body)).encode()),
        (b"date", format_http_date(time.time()).encode()),
    ]
    return await send_response(send, answer.status, headers, answer.body)
