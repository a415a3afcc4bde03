"""The fresh-memory-hit fast path: the one request shape that dominates an origin
shield's traffic, answered straight from the raw ASGI scope.

A plain GET (no range, no precondition, no credentials) for a URL whose fresh entry sits
in the memory tier is answered here without building a Request: the raw (host, path,
query) bytes map to a memoised plan (cache key and route, computed once by the same
functions the full pipeline uses), and the entry carries its client headers memoised
per (age, ttl) second. Anything else, or anything unusual, returns False and the full
pipeline handles the request, so the answers are the same bytes either way (a test
compares them). Varnish keeps its hit path short for the same reason."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from proxy.archive import signed as signed_archive
from proxy.archive.serve import is_manifest
from proxy.auth.access import forwarding
from proxy.auth.native import split_path_token
from proxy.auth.policy import strip_token
from proxy.auth.step import Answer, Guard, check_inline
from proxy.cache.entry import Entry
from proxy.cache.keys import url_key, valid_query
from proxy.cluster.hop import vouched
from proxy.deliver import WHOLE_MAX, Send, fresh_hit_fields, send_sliced
from proxy.disconnect import CLIENT_GONE, ClientGone, until_disconnect
from proxy.exchange import Outcome, Receive
from proxy.http.authority import BadAuthority, parse_authority
from proxy.http.paths import BadPath
from proxy.http.streaming import Kind, kind_of
from proxy.observe import Tracked, hit_fragment, record, record_hit
from proxy.prefetch import fast_hit_declines
from proxy.request import TARGET_AUTHORITY, Request
from proxy.serve.state import AppState
from routing.rules import Route

# Request fields that need the full pipeline: answered locally from the entry (ranges,
# preconditions) or changing what may be served (credentials, RFC 9111 3.5).
SLOW_FIELDS = frozenset(
    {
        b"range",
        b"if-range",
        b"if-match",
        b"if-none-match",
        b"if-modified-since",
        b"if-unmodified-since",
        b"authorization",
    }
)
MAX_PLANS = 16384
MEMO_SECONDS = 60.0


@dataclass(slots=True)
class Plan:
    key: str
    route: Route
    host: str
    labels: tuple[tuple[str, str, str], tuple[str, str], tuple[str]]
    # The constant part of this URL's hit log line, made for (status, body length).
    fragment: bytes = b""
    made_for: tuple[int, int] = (0, -1)
    # Routes with inline auth/access checks (proxy/auth/step.py): the checks run on every
    # request; path is token-free, query still carries the token.
    guard: Guard | None = None
    path: str = ""
    query: str = ""
    path_token: str | None = None
    # A passed check, memoised: (peer, cookie and forwarding fields, valid until).
    verified: tuple[str, tuple[bytes | None, bytes | None], float] | None = None
    # Hits answered here, for the admin page's top objects (proxy/ops/top_objects.py).
    hits: int = 0
    # A segment URL on a route that prefetches: how many segments follow it.
    prefetch: int = 0


class HitFastPath:
    def __init__(self, state: AppState, reserved_paths: frozenset[str]) -> None:
        self.state = state
        self.reserved = reserved_paths
        # (host, raw path, query) -> Plan, or None when the route needs the full pipeline.
        self.plans: dict[tuple[bytes, bytes, bytes], Plan | None] = {}
        server = state.settings.server
        self.max_url = server.max_url_bytes
        self.max_headers = server.max_header_bytes
        self.bans = state.cache.bans  # one attribute away on every hit
        # The forwarding field trusted proxies set: part of what a memoised check saw.
        self.fwd_field = server.trusted_proxies.header.encode()
        trusted = state.guards.trusted
        self.trusted = trusted if trusted.networks else None

    async def serve(
        self, scope: dict[str, Any], send: Send, receive: Receive | None = None
    ) -> bool:
        """True when the request was answered here. With `receive`, a body of several
        slices is sent while watching for the client to leave."""
        started = time.perf_counter()
        host = b""
        size = 0
        encodings = False
        for name, value in scope["headers"]:
            size += len(name) + len(value) + 4
            if name == b"host":
                if host:
                    return False  # two Host fields: the full pipeline refuses them
                host = value
            elif name in SLOW_FIELDS:
                return False
            elif name == b"accept-encoding":
                encodings = True
        raw_path: bytes | None = scope.get("raw_path")
        query: bytes = scope["query_string"]
        if not host or raw_path is None or size > self.max_headers:
            return False
        extensions = scope.get("extensions")
        if extensions and TARGET_AUTHORITY in extensions:
            return False  # absolute-form: the full pipeline checks it against Host
        if len(raw_path) + len(query) > self.max_url:
            return False
        plan_key = (host, raw_path, query)
        try:
            plan = self.plans[plan_key]
        except KeyError:
            plan = self._plan(scope, host, raw_path, query)
            if len(self.plans) >= MAX_PLANS:
                self.plans.clear()  # bounded; plans are cheap to rebuild
            self.plans[plan_key] = plan
        if plan is None:
            return False
        state = self.state
        memory = state.cache.memory
        # Counted for admission only when answered here: a request this path declines is
        # counted by the pipeline's lookup (counting both would double every miss).
        found = memory.peek(plan.key)
        now = time.time()
        if type(found) is not Entry or not now < found.fresh_until:
            return False
        if found.ban_gen != self.bans.generation:
            return False  # a ban may cover it: the full lookup decides
        policy = plan.route.compression
        body = found.body
        if encodings and policy is not None and policy.may_apply(found.content_type, len(body)):
            return False  # the full pipeline sends it in a coding (proxy/compress.py)
        if plan.guard is not None and plan.guard.rewrites(found.content_type, plan.path):
            return False  # a playlist that may get child tokens (proxy/tokenize.py)
        if found.hit_head is None and is_manifest(found.headers):
            return False  # the pipeline sends its ZIP (proxy/archive/); checked once per entry
        if plan.prefetch and fast_hit_declines(state, plan.key, plan.prefetch, now):
            return False  # the pipeline answers, and prefetches what follows (proxy/prefetch.py)
        if plan.guard is not None and not self._allowed(plan, scope, now):
            return False  # the full pipeline answers (and logs) the refusal
        memory.get(plan.key)
        headers = _hit_headers(found, now)
        await send({"type": "http.response.start", "status": found.status, "headers": headers})
        sent = len(body)
        if sent <= WHOLE_MAX:
            await send({"type": "http.response.body", "body": body})
        elif receive is None:
            await send_sliced(send, body)
        else:  # bounded messages: a stalled client makes the server hold a slice, not this
            out = Tracked(_yielding(send))
            try:
                await until_disconnect(receive, send_sliced(out, body))
            except ClientGone:  # logged with what went out, as the pipeline does
                self._gone(scope, plan, found.status, out.sent, started, now)
                return True
        plan.hits += 1
        if plan.made_for != (found.status, sent):
            route = plan.route
            plan.labels = (
                (route.name, str(found.status), "hit"),
                (route.name, "hit"),
                (route.name,),
            )
            plan.fragment = hit_fragment(
                scope,
                host=plan.host,
                status=found.status,
                route=route.name,
                origin=route.origin.name,
                sent=sent,
                redact=state.guards.redact,
            )
            plan.made_for = (found.status, sent)
        record_hit(
            state,
            scope,
            labels=plan.labels,
            fragment=plan.fragment,
            sent=sent,
            started=started,
            now=now,
            client=None if self.trusted is None else self._client(scope),
        )
        return True

    def _gone(
        self, scope: dict[str, Any], plan: Plan, status: int, sent: int, started: float, now: float
    ) -> None:
        route = plan.route
        record(
            self.state,
            scope,
            host=plan.host,
            status=CLIENT_GONE,
            outcome=Outcome.HIT,
            route=route.name,
            origin=route.origin.name,
            sent=sent,
            started=started,
            now=now,
            reason="client gone",
            client=None if self.trusted is None else self._client(scope),
        )

    def _plan(
        self, scope: dict[str, Any], host: bytes, raw_path: bytes, query: bytes
    ) -> Plan | None:
        if scope["path"] in self.reserved:
            return None
        state = self.state
        try:
            path = state.normalize(raw_path.decode("latin-1"))
            query_text = query.decode("ascii")
        except (BadPath, UnicodeDecodeError):
            return None
        try:
            hostname = parse_authority(host.decode("latin-1")).host
        except BadAuthority:
            return None  # the full pipeline refuses it
        guards = state.guards
        if guards.bunny_paths and raw_path.startswith(b"/bcdn_token="):
            return None
        path_token = None
        if guards.path_marker is not None:
            path_token, path = split_path_token(path, guards.path_marker)
        route = state.routes.match(hostname, path)
        # Only plain cached routes: steering, image variants, rate limits and CORS take
        # the full pipeline.
        if (
            route is None
            or not route.policy.enabled
            or route.steering is not None
            or route.images
            or route.policy.slice_bytes
        ):
            return None
        guard = guards.by_route.get(route.name)
        if guard is not None and not guard.inline:
            return None
        key_query = strip_token(query_text, guard.auth.strip_params) if guard else query_text
        if not valid_query(key_query) or signed_archive.asks(key_query):
            return None  # (the archive form is answered, or refused, by the pipeline)
        name = route.name
        labels = ((name, "200", "hit"), (name, "hit"), (name,))
        return Plan(
            key=url_key(hostname, path, key_query),
            route=route,
            host=hostname,
            labels=labels,
            guard=guard,
            path=path,
            query=query_text,
            path_token=path_token,
            prefetch=route.policy.prefetch_segments if kind_of(path, None) is Kind.SEGMENT else 0,
        )

    def _client(self, scope: dict[str, Any]) -> str:
        """The client address behind trusted proxies, for the log line (as parse_request)."""
        assert self.trusted is not None
        peer = str((scope.get("client") or ("",))[0])
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        return forwarding(peer, headers, self.trusted).client

    def _allowed(self, plan: Plan, scope: dict[str, Any], now: float) -> bool:
        """The route's inline checks (proxy/auth/step.py). A native token that verified is
        remembered for the same peer, cookie and forwarding fields until its expiry (at
        most MEMO_SECONDS): the answer is a pure function of those, the plan's URL and
        the time, and this keeps verification off most hits of a popular signed URL."""
        guard = plan.guard
        assert guard is not None
        if vouched():
            return True  # a signed hop: the asking peer checked (proxy/cluster/peers.py)
        client = scope.get("client") or ("", 0)
        peer = str(client[0])
        fwd_name = self.fwd_field
        cookie = fwd = None
        for name, value in scope["headers"]:
            if name == b"cookie":
                cookie = value
            elif name == fwd_name:
                fwd = value
        memo = plan.verified
        if memo is not None and now < memo[2] and memo[0] == peer and memo[1] == (cookie, fwd):
            return True
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        req = Request(
            method="GET",
            path=plan.path,
            query=plan.query,
            headers=headers,
            header_list=[],
            host=plan.host,
            forwarding=forwarding(peer, headers, self.state.guards.trusted),
            scheme=scope.get("scheme", "http"),
            now=now,
        )
        found = check_inline(self.state.guards, guard, req, path_token=plan.path_token, quiet=True)
        if isinstance(found, Answer):
            plan.verified = None
            return False
        expires = found.claims.get("exp") if found.scheme == "native" else None
        if guard.access.pure and isinstance(expires, str) and expires.isdigit():
            plan.verified = (peer, (cookie, fwd), min(float(expires), now + MEMO_SECONDS))
        return True


def _hit_headers(entry: Entry, now: float) -> list[tuple[bytes, bytes]]:
    """The entry's full headers plus Age and Cache-Status, memoised on the entry for as
    long as both stay the same whole second."""
    age = entry.age(now)
    ttl = int(entry.fresh_until - now)
    memo = entry.hit_head
    if memo is not None and memo[0] == age and memo[1] == ttl:
        return memo[2]
    headers = [*entry.full_headers, *fresh_hit_fields(entry, age, now)]
    entry.hit_head = (age, ttl, headers)
    return headers


def _yielding(send: Send) -> Send:
    """`send`, then a turn of the event loop: after a disconnect both engines return from
    sends at once, and the slices would all count as sent before the watcher could run."""

    async def send_and_yield(message: dict[str, Any]) -> None:
        await send(message)
        await asyncio.sleep(0)

    return send_and_yield
