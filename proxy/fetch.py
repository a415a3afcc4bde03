"""Fetch: one origin exchange feeding a collapsed Fetch, and storing what may be stored.

Per-request origin failures are logged at debug level only: the access log line carries
the reason for every request, and origin state changes are logged where origin health is
kept, so an origin outage never becomes a log storm."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import partial
from typing import TypeVar

from proxy.cache.collapse import Fetch, Head
from proxy.cache.entry import Entry
from proxy.compress import vary_for
from proxy.exchange import Exchange
from proxy.http.dates import parse_http_date
from proxy.http.forwarding import client_response_headers, joined, merge_304, origin_request_headers
from proxy.http.freshness import (
    Freshness,
    response_freshness,
    stale_when_disconnected,
)
from proxy.http.origin_answer import unrequested_range
from proxy.http.streaming import rule_for
from proxy.http.surrogate import surrogate_keys
from proxy.http.vary import parse_vary, variant_key
from proxy.request import Request
from proxy.serve.state import AppState
from routing.origins.base import (
    BadOriginPath,
    OriginError,
    OriginRequest,
    OriginResponse,
    OriginTimeout,
    OriginUnavailable,
)
from routing.rules import Route, rewrite

# How long a key stays hit-for-miss after an unstorable response (Varnish uses 120 s).
HIT_FOR_MISS_SECONDS = 120.0
# Bytes a slow consumer may fall behind a stream too large to keep before the origin
# waits: what a stalled client costs on a pass-through (plus a chunk the server holds).
STREAM_WINDOW = 256 * 1024
STALE_IF_ERROR_STATUSES = frozenset({500, 502, 503, 504})


def new_fetch(key: str) -> Fetch:
    return Fetch(key, window=STREAM_WINDOW)


F = TypeVar("F", bound=Fetch)


def join_or_start(
    state: AppState,
    req: Request,
    key: str,
    start: Callable[[bool], F],
    *,
    kind: type[F],
    collapse: bool = True,
) -> tuple[F, bool]:
    """One producer per key: the fetch of `kind` under way for `key`, joined (True), or
    a new one, `start(register)` (False). A hit-for-miss key (`collapse` False) or a
    request with credentials starts its own, unregistered."""
    collapse = collapse and "authorization" not in req.headers
    found = state.inflight.get(key) if collapse else None
    if isinstance(found, kind):
        state.stats.inc("edgeshield_collapsed_requests", ())
        return found, True
    return start(collapse), False


def refresh_in_background(state: AppState, key: str, start: Callable[[bool], Fetch]) -> None:
    """stale-while-revalidate: one background refresh per key (it collapses too)."""
    if state.inflight.get(key) is None:
        start(True)


def start_fetch(ex: Exchange, stale: Entry | None, register: bool) -> Fetch:
    """The origin fetch of the exchange's object (`produce`), registered for others to
    join."""
    fetch = new_fetch(ex.key)
    fetch.asked = ex.state.cache.memory.frequency(ex.key)
    if register:
        ex.state.inflight.add(fetch)
    ex.state.spawn(produce(ex.state, fetch, ex.route, ex.req, stale))
    return fetch


def fetch_object(ex: Exchange, stale: Entry | None, *, collapse: bool) -> tuple[Fetch, bool]:
    """Join or start the origin fetch of the exchange's object: (fetch, joined)."""
    start = partial(start_fetch, ex, stale)
    cluster = ex.state.cluster  # a hop never joins a relay (proxy/cluster/peers.py)
    if cluster is not None and not cluster.may_join(ex.state.inflight.get(ex.key)):
        collapse = False
    return join_or_start(ex.state, ex.req, ex.key, start, kind=Fetch, collapse=collapse)


def revalidate_in_background(ex: Exchange, stale: Entry | None) -> None:
    refresh_in_background(ex.state, ex.key, partial(start_fetch, ex, stale))


async def send(route: Route, request: OriginRequest) -> tuple[OriginResponse, str]:
    """Through the route's origin group: health-aware selection, retries, failover and
    hedging live in routing/groups.py. Returns the response and the origin that answered."""
    return await route.group.fetch(request)


def origin_request(
    route: Route, req: Request, *, cacheable: bool, stale: Entry | None, body: bytes = b""
) -> OriginRequest:
    headers = origin_request_headers(
        req.header_list,
        forwarding=req.forwarding,
        scheme=req.scheme,
        host=req.host,
        cacheable=cacheable,
        method_override=route.policy.forward_method_override,
        etag=stale.etag if stale else None,
        last_modified=stale.last_modified if stale and not stale.etag else None,
        request_id=req.request_id,
    )
    # A cache fetch is always a GET: a HEAD miss fills the cache too (Varnish does this).
    method = "GET" if cacheable else req.method
    path = rewrite(route, req.path)
    return OriginRequest(method=method, path=path, query=req.query, headers=headers, body=body)


@dataclass(frozen=True, slots=True)
class Timing:
    """When an origin exchange was sent and answered, and by which origin."""

    request_time: float
    response_time: float
    origin_ms: float
    origin: str


def _head(
    route: Route,
    resp: OriginResponse,
    headers: list[tuple[str, str]],
    freshness: Freshness | None,
    t: Timing,
    *,
    fwd: str,
) -> Head:
    fields = joined(headers)
    vary = parse_vary(fields.get("vary"))
    policy = route.policy
    upstream = fields.get("cache-status")
    client_headers = client_response_headers(
        headers,
        strip=(f.lower() for f in policy.strip_fields),
        downstream_cache_control=policy.downstream_cache_control,
        now=t.response_time,
        answers_ranges=freshness is not None,
    )
    if freshness is not None:  # a cached answer: stored per coding, sent in any (compress.py)
        vary, client_headers = vary_for(
            route.compression, resp.status, fields, vary, client_headers, resp.content_length
        )
    if freshness is not None and freshness.initial_age >= 1:
        client_headers.append((b"age", str(int(freshness.initial_age)).encode()))
    return Head(
        status=resp.status,
        headers=client_headers,
        content_length=resp.content_length,
        etag=fields.get("etag"),
        last_modified=parse_http_date(fields.get("last-modified")),
        content_type=fields.get("content-type"),
        shareable=freshness is not None and freshness.storable and vary is not None,
        vary=vary or (),
        fwd=fwd,
        fwd_status=resp.status,
        origin_ms=t.origin_ms,
        upstream_status=upstream.encode("latin-1") if upstream else None,
        ranges="bytes" in fields.get("accept-ranges", "").lower().replace(" ", "").split(","),
    )


def _freshness(
    route: Route,
    req: Request,
    status: int,
    headers: list[tuple[str, str]],
    t: Timing,
    body: bytes | None = None,
) -> Freshness:
    """RFC 9111 freshness with the streaming policy's rule for the object (by path, type
    and, once `body` is in, a playlist's kind)."""
    fields = joined(headers)
    rule = rule_for(route.freshness.streaming, req.path, fields.get("content-type"), body)
    return response_freshness(
        status,
        fields,
        request_time=t.request_time,
        response_time=t.response_time,
        has_authorization="authorization" in req.headers,
        has_cookie="cookie" in req.headers,
        policy=route.freshness,
        rule=rule,
    )


def origin_head(
    route: Route,
    req: Request,
    resp: OriginResponse,
    t: Timing,
    *,
    fwd: str,
    client_fields: list[tuple[str, str]] | None = None,
) -> tuple[Freshness, Head]:
    """An origin answer described once: its freshness (from its fields) and the head
    clients get (from `client_fields`, default the same fields)."""
    freshness = _freshness(route, req, resp.status, resp.headers, t)
    fields = resp.headers if client_fields is None else client_fields
    return freshness, _head(route, resp, fields, freshness, t, fwd=fwd)


def make_entry(
    head: Head,
    origin_headers: list[tuple[str, str]],
    body: bytes,
    freshness: Freshness,
    t: Timing,
) -> Entry:
    """The entry stored for an answer described by `head` (its status, fields, Vary)."""
    return Entry(
        status=head.status,
        headers=[h for h in head.headers if h[0] != b"age"],
        origin_headers=origin_headers,
        body=body,
        etag=head.etag,
        last_modified=head.last_modified,
        content_type=head.content_type,
        response_time=t.response_time,
        freshness=freshness,
        vary=head.vary,
        upstream_status=head.upstream_status,
        request_time=t.request_time,  # a purge sent after this covers the entry
        tags=surrogate_keys(origin_headers),  # tag purges reach it
    )


def refresh_304(
    route: Route,
    req: Request,
    resp: OriginResponse,
    stale: Entry,
    t: Timing,
    *,
    drop: tuple[str, ...] = (),
) -> tuple[Freshness, Head, Entry]:
    """A 304 to a conditional request: the stored copy, current again, its fields merged
    with the 304's (RFC 9111 4.3.4), less `drop` in what clients get. The head keeps the
    Vary the 304 names; the entry the stored one's."""
    merged = merge_304(stale.origin_headers, resp.headers)
    freshness = _freshness(route, req, stale.status, merged, t, stale.body)
    fields = [h for h in merged if h[0] not in drop]
    head = _head(route, resp, fields, freshness, t, fwd="stale")
    head = replace(
        head,
        status=stale.status,
        etag=head.etag or stale.etag,
        last_modified=head.last_modified or stale.last_modified,
        content_type=stale.content_type,
        upstream_status=head.upstream_status or stale.upstream_status,
    )
    return (
        freshness,
        head,
        make_entry(replace(head, vary=stale.vary), merged, stale.body, freshness, t),
    )


def keep(state: AppState, fetch: Fetch, entry: Entry, headers: Mapping[str, str]) -> None:
    """Store a fetched body under the fetch's key."""
    if state.cache.store(fetch.key, entry, headers):
        fetch.stored = True
        state.stats.inc("edgeshield_cache_stores", ("memory",))


def entry_head(
    entry: Entry,
    *,
    fwd: str,
    fwd_status: int | None,
    origin_ms: float,
    detail: str | None = None,
) -> Head:
    """The head of a stored entry standing in for an origin answer."""
    return Head(
        status=entry.status,
        headers=entry.headers,
        content_length=len(entry.body),
        etag=entry.etag,
        last_modified=entry.last_modified,
        content_type=entry.content_type,
        shareable=True,
        vary=entry.vary,
        fwd=fwd,
        fwd_status=fwd_status,
        origin_ms=origin_ms,
        detail=detail,
        upstream_status=entry.upstream_status,
    )


def present_entry(
    fetch: Fetch,
    entry: Entry,
    *,
    fwd: str,
    fwd_status: int | None,
    origin_ms: float,
    detail: str | None = None,
) -> None:
    """Feed a stored entry through the fetch (304 refresh, stale-if-error)."""
    fetch.set_head(
        entry_head(entry, fwd=fwd, fwd_status=fwd_status, origin_ms=origin_ms, detail=detail)
    )
    fetch.chunks.append(entry.body)
    fetch.received = fetch.buffered = len(entry.body)
    fetch.finish()


Present = Callable[[Entry, str, int | None, float], None]
"""Stands a stored copy in for the origin: (entry, Cache-Status detail, fwd_status, origin_ms)."""


async def exchange(
    state: AppState,
    fetch: Fetch,
    route: Route,
    oreq: OriginRequest,
    stale: Entry | None,
    present: Present,
    *,
    whole: bool = True,
) -> tuple[OriginResponse, Timing] | None:
    """Send `oreq` for `fetch`: the origin's answer and its timing, or None when the
    fetch is settled already: failed, or answered by `stale` (stale-if-error, or the
    route's `use_stale` when the origin cannot be reached). `whole`: no Range was sent,
    so a partial answer is an origin error."""
    request_time = time.time()
    started = time.perf_counter()
    try:
        resp, origin_name = await (_send_whole(route, oreq) if whole else send(route, oreq))
    except OriginError as exc:
        state.log.debug("origin %s failed for %s: %s", exc.origin, fetch.key, exc.reason)
        detail = _stale_detail(route, stale, exc, time.time())
        if stale is not None and detail is not None:
            present(stale, detail, None, 0.0)
        else:
            fetch.fail(exc)
        state.inflight.remove(fetch)
        return None
    origin_ms = (time.perf_counter() - started) * 1000
    fetch.answered_by = origin_name
    t = Timing(request_time, time.time(), origin_ms, origin_name)
    if (
        stale is not None
        and resp.status in STALE_IF_ERROR_STATUSES
        and t.response_time < stale.stale_if_error_until
    ):
        state.log.debug(
            "origin %s answered %d for %s: serving stale", origin_name, resp.status, fetch.key
        )
        present(stale, "stale-if-error", resp.status, origin_ms)
        state.inflight.remove(fetch)
        await resp.aclose()
        return None
    return resp, t


async def produce(
    state: AppState, fetch: Fetch, route: Route, req: Request, stale: Entry | None
) -> None:
    """Fill `fetch` from the origin; store the complete body when RFC 9111 allows.
    Never raises: failures reach consumers through the fetch, a bug's too (logged with
    its traceback, answered 502), so no request waits on a fetch that cannot end."""
    try:
        await _produce(state, fetch, route, req, stale)
    except Exception:
        state.log.exception("fetch failed: internal error")
        state.inflight.remove(fetch)
        if not fetch.done:
            fetch.fail(OriginError("edgeshield", "internal error"))


async def _produce(
    state: AppState, fetch: Fetch, route: Route, req: Request, stale: Entry | None
) -> None:

    def present(entry: Entry, detail: str, fwd_status: int | None, origin_ms: float) -> None:
        present_entry(
            fetch, entry, fwd="stale", fwd_status=fwd_status, origin_ms=origin_ms, detail=detail
        )

    if state.cluster is not None:  # a key another peer owns is fetched from it
        route = state.cluster.route_for(state, route, fetch, req)
    oreq = origin_request(route, req, cacheable=True, stale=stale)
    answer = await exchange(state, fetch, route, oreq, stale, present)
    if answer is None:
        return
    resp, t = answer
    try:
        if stale is not None and resp.status == 304:
            freshness, _, refreshed = refresh_304(route, req, resp, stale, t)
            if freshness.storable:
                fetch.stored = state.cache.store(fetch.key, refreshed, req.headers)
            present_entry(fetch, refreshed, fwd="stale", fwd_status=304, origin_ms=t.origin_ms)
            return
        fwd = "stale" if stale is not None else "miss"
        freshness, head = origin_head(route, req, resp, t, fwd=fwd)
        if head.vary:
            fetch.variant = variant_key(head.vary, req.headers)
        cache = state.cache
        cluster = state.cluster
        fetch.relayed = cluster is not None and cluster.via_worker(route)
        relay_only = fetch.relayed and cluster is not None and not cluster.hot(fetch.asked)
        if not head.shareable:
            # Waiters that joined before the head must fetch for themselves.
            cache.mark_uncacheable(fetch.key, t.response_time + HIT_FOR_MISS_SECONDS)
            state.inflight.remove(fetch)
            fetch.stop_keeping()
        elif relay_only or not cache.admits(
            fetch.key, head.vary, req.headers, resp.content_length or 0, t.request_time
        ):
            # Known now not to be kept (too large, variant cap, a purge since it was
            # sent, relayed from the worker that keeps the one copy): streamed with
            # bounded memory, and Cache-Status never says stored.
            state.inflight.remove(fetch)
            fetch.stop_keeping()
        fetch.set_head(head)
        if await pump(state, fetch, resp, route, t.origin) and fetch.keep_all and head.shareable:
            body = fetch.body()
            # With the body in, a playlist's kind (live, VOD...) decides its lifetime.
            freshness = _freshness(route, req, resp.status, resp.headers, t, body)
            keep(state, fetch, make_entry(head, resp.headers, body, freshness, t), req.headers)
    finally:
        state.inflight.remove(fetch)
        await resp.aclose()


async def _send_whole(route: Route, request: OriginRequest) -> tuple[OriginResponse, str]:
    """`send` for a request without Range: a partial answer to it is an origin error
    (502, or a stale copy), never stored or relayed as the whole object."""
    resp, origin_name = await send(route, request)
    if unrequested_range(resp.status, resp.headers):
        await resp.aclose()
        raise OriginUnavailable(origin_name, "origin answered a range to a full request")
    return resp, origin_name


def _stale_detail(route: Route, stale: Entry | None, exc: OriginError, now: float) -> str | None:
    """Why the stale copy may stand in for an origin that could not be reached (the
    Cache-Status detail), or None: within its stale-if-error window, or by the route's
    `use_stale` where RFC 9111 4.2.4 lets a disconnected cache serve stale."""
    if stale is None or isinstance(exc, BadOriginPath):
        return None
    if now < stale.stale_if_error_until:
        return "stale-if-error"
    kind = "timeout" if isinstance(exc, OriginTimeout) else "error"
    if kind in route.policy.use_stale and stale_when_disconnected(stale.freshness):
        return f"origin-{kind}"
    return None


async def pump(
    state: AppState,
    fetch: Fetch,
    resp: OriginResponse,
    route: Route,
    origin_name: str,
    *,
    length: int | None = None,
    on_chunk: Callable[[bytes], None] | None = None,
) -> bool:
    """The origin's body into the fetch (each chunk shown to `on_chunk` first); True when
    it arrived whole: to its end, and exactly `length` bytes when that is given (a slice).
    A fetch that grows past what any tier keeps stops keeping its chunks."""
    cache = state.cache
    try:
        async for chunk in resp.body():
            state.stats.inc("edgeshield_origin_bytes", (origin_name,), len(chunk))
            if length is not None and fetch.received + len(chunk) > length:
                fetch.fail(OriginError(origin_name, "body longer than declared"))
                return False
            if on_chunk is not None:
                on_chunk(chunk)
            await fetch.append(chunk)
            if fetch.keep_all and not cache.fits(fetch.key, fetch.received):
                state.inflight.remove(fetch)
                fetch.stop_keeping()
            if fetch.abandoned:
                state.log.debug(
                    "origin %s: every client left %s, fetch stopped", origin_name, fetch.key
                )
                fetch.fail(OriginError(origin_name, "abandoned"))
                return False
    except OriginError as exc:
        state.log.debug("origin %s body failed for %s: %s", origin_name, fetch.key, exc.reason)
        route.group.report_body_failure(origin_name)  # passive health
        fetch.fail(exc)
        return False
    if length is not None and fetch.received != length:
        fetch.fail(OriginError(origin_name, "body shorter than declared"))
        return False
    fetch.finish()
    return True


async def produce_pass(
    state: AppState, fetch: Fetch, route: Route, req: Request, body: bytes, cacheable: bool
) -> None:
    """Pass mode (Varnish `pass`): the origin's answer relayed as is, never stored."""
    request_time, started = time.time(), time.perf_counter()
    fetch.stop_keeping()
    oreq = origin_request(route, req, cacheable=False, stale=None, body=body)
    try:
        ranged = "range" in req.headers  # pass mode forwards Range: a 206 may answer it
        resp, origin_name = await (send(route, oreq) if ranged else _send_whole(route, oreq))
    except OriginError as exc:
        state.log.debug(
            "origin %s failed for %s %s: %s", exc.origin, req.method, req.target, exc.reason
        )
        fetch.fail(exc)
        return
    origin_ms = (time.perf_counter() - started) * 1000
    fetch.answered_by = origin_name
    t = Timing(request_time, time.time(), origin_ms, origin_name)
    try:
        fwd = "bypass" if cacheable else "method"
        fetch.set_head(_head(route, resp, resp.headers, None, t, fwd=fwd))
        await pump(state, fetch, resp, route, origin_name)
    finally:
        await resp.aclose()
