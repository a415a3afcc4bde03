"""The request state machine, Varnish-style: recv -> lookup -> hit | stale | miss | pass
-> fetch (collapsed) -> deliver. Each step returns an explicit outcome."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from proxy.cache.codec import CorruptEntry
from proxy.cache.collapse import Fetch, FetchAborted, Head
from proxy.cache.disk import BodyStream
from proxy.cache.entry import Entry
from proxy.cache.keys import BadKey, url_key
from proxy.cache.lookup import Use
from proxy.deliver import (
    deliver_entry,
    deliver_fetch,
    fresh_hit_fields,
    send_error,
    send_response,
    stale_hit_fields,
)
from proxy.disconnect import ClientGone, until_disconnect
from proxy.fetch import fetch_object, new_fetch, produce_pass, revalidate_in_background
from proxy.guard import check, send_answer, with_cors
from proxy.http import cache_status, methods
from proxy.http.paths import BadPath
from proxy.http.vary import variant_key
from proxy.images import image_request, routing_path
from proxy.observe import record, scope_host
from proxy.request import Rejected, Request, parse_request
from proxy.slices import serve_sliced
from proxy.state import AppState
from routing.origins.base import OriginError
from routing.rules import Route, rewrite
from routing.steering import Redirect, steer

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Header = tuple[bytes, bytes]

CACHEABLE_METHODS = methods.CACHEABLE
MAX_PASS_BODY = 16 * 1024 * 1024
log = logging.getLogger("edgeshield.pipeline")


async def handle(state: AppState, scope: dict[str, Any], receive: Receive, send: Send) -> None:
    started = time.perf_counter()
    settings = state.settings.server
    guards = state.guards
    bunny_path, scope = guards.split_bunny(scope)
    try:
        req = parse_request(
            scope,
            normalize=state.normalize,
            max_url_bytes=settings.max_url_bytes,
            max_header_bytes=settings.max_header_bytes,
            trusted=guards.trusted,
        )
    except Rejected as exc:
        sent = await send_error(send, exc.status, exc.reason)
        record(
            state,
            scope,
            host=scope_host(scope),
            status=exc.status,
            outcome="deny",
            route="-",
            origin=None,
            sent=sent,
            started=started,
            now=time.time(),
            reason=exc.reason,
        )
        return
    # recv (with images on, /cdn-cgi/image/<options>/<source> is routed by its source path)
    path_token = guards.split_path(req)
    route = state.routes.match(
        req.host, req.path if state.images is None else routing_path(req.path)
    )
    # auth (proxy/guard.py): preflight, access lists, rate limit, token; then token-free
    guarded = None
    if route is not None and (guard := guards.by_route.get(route.name)) is not None:
        guarded = await check(guards, guard, req, path_token=path_token, bunny_path=bunny_path)
        if guarded is None or guarded.outcome != "preflight":  # a preflight has its own
            send = with_cors(guard, req.headers.get("origin"), send)
    if route is None:
        status, sent, outcome, reason = (
            404,
            await send_error(send, 404, "no route"),
            "deny",
            "no route",
        )
    elif guarded is not None:
        status, sent, outcome, reason = (
            guarded.status,
            await send_answer(send, guarded),
            guarded.outcome,
            guarded.reason,
        )
    elif (
        route.steering is not None
        and req.method in CACHEABLE_METHODS
        and (
            redirect := steer(
                route.steering, rewrite(route, req.path), req.query, req.headers, state.router.is_up
            )
        )
    ):
        # steer: answer with the best CDN instead of proxying (no healthy CDN: proxy)
        status, sent, outcome, reason = 302, await _redirect(send, redirect), "steer", ""
    elif req.method in CACHEABLE_METHODS and route.policy.enabled:
        # variant: image options on an `images` route; None = not an image request
        answer = await image_request(state, route, req, send) if route.images else None
        status, sent, outcome, reason = answer or await lookup(state, route, req, receive, send)
    elif req.method in CACHEABLE_METHODS or methods.passable(req.method):
        status, sent, outcome, reason = await pass_(state, route, req, receive, send)
    else:  # CONNECT or TRACE: the connection closes, uvicorn would not read on after one
        log.info("refused %s: method not implemented", req.method)
        refusal = [(b"connection", b"close")]
        status, sent, outcome, reason = (
            501,
            await send_error(send, 501, "method not implemented", refusal),
            "deny",
            "method",
        )
    record(
        state,
        scope,
        host=req.host,
        status=status,
        outcome=outcome,
        route=route.name if route else "-",
        origin=(req.answered_by or route.origin.name) if route else None,
        sent=sent,
        started=started,
        now=req.now,
        reason=reason,
        client=req.client,
        key=req.key if route is not None else None,
    )


async def lookup(
    state: AppState, route: Route, req: Request, receive: Receive, send: Send
) -> tuple[int, int, str, str]:
    key = req.key
    if route.policy.slice_bytes:
        return await serve_sliced(state, route, req, key, receive, send)
    found = await state.cache.find(key, req.headers)
    use, entry, now = found.use(req.now), found.entry, req.now
    if entry is not None and (use is Use.FRESH or use is Use.STALE):
        # (fresh-hit GETs without ranges or preconditions never get here:
        # proxy/fastpath.py answers them)
        if use is Use.FRESH:
            extra = fresh_hit_fields(entry, entry.age(now), now, found.tier)
        else:
            # A streamed body is not in memory for a 304 or stale-if-error to reuse: such
            # an entry is refetched whole (reading it in per request is what it must not do).
            revalidate_in_background(state, route, req, key, entry if found.body is None else None)
            extra = stale_hit_fields(entry, now, found.tier)
        status, sent = await _deliver_stored(send, receive, req, entry, extra, found.body)
        return status, sent, ("hit" if use is Use.FRESH else "stale"), ""
    stale = entry if found.body is None else None
    await found.close()
    return await miss(
        state, route, req, key, stale, receive, send, collapse=use is not Use.HIT_FOR_MISS
    )


async def _deliver_stored(
    send: Send,
    receive: Receive,
    req: Request,
    entry: Entry,
    extra: list[Header],
    body: BodyStream | None,
) -> tuple[int, int]:
    """A stored answer; one streamed from its file stops when the client leaves and
    always closes the file. Damage found mid-file leaves the response incomplete, as a
    broken origin body does."""
    if body is None:
        return await deliver_entry(send, req.method, req.headers, entry, extra)
    async with body:
        try:
            return await until_disconnect(
                receive, deliver_entry(send, req.method, req.headers, entry, extra, body)
            )
        except ClientGone:
            return 499, 0
        except CorruptEntry:
            return 502, 0


async def miss(
    state: AppState,
    route: Route,
    req: Request,
    key: str,
    stale: Entry | None,
    receive: Receive,
    send: Send,
    *,
    collapse: bool,
) -> tuple[int, int, str, str]:
    fetch, collapsed = fetch_object(state, route, req, key, stale, collapse=collapse)
    cid = fetch.subscribe()
    try:
        return await _deliver_miss(state, route, req, key, fetch, cid, collapsed, receive, send)
    finally:
        fetch.unsubscribe(cid)


async def _deliver_miss(
    state: AppState,
    route: Route,
    req: Request,
    key: str,
    fetch: Fetch,
    cid: int,
    collapsed: bool,
    receive: Receive,
    send: Send,
) -> tuple[int, int, str, str]:
    try:
        head = await asyncio.shield(fetch.head)
        req.answered_by = fetch.answered_by
    except OriginError as exc:
        reason = exc.reason
        return (
            exc.status,
            await send_error(
                send, exc.status, reason, [_status_header(exc, collapsed), *_retry_after(exc)]
            ),
            "error",
            reason,
        )
    if collapsed and (
        not head.shareable or (head.vary and variant_key(head.vary, req.headers) != fetch.variant)
    ):
        # The shared answer turned out private or another variant: fetch our own.
        fetch.unsubscribe(cid)
        return await miss(state, route, req, key, None, receive, send, collapse=False)
    # RFC 9211 2.6 `stored`: what a tier did with it when the body is already in, else
    # what is known before it (the producer stops keeping what the cache will refuse).
    # A body that breaks off later cuts this response off, so no complete one claims it.
    stored = fetch.stored if fetch.done else head.shareable and fetch.keep_all
    status_value = cache_status.forward(
        head.fwd,
        fwd_status=head.fwd_status,
        stored=stored,
        collapsed=collapsed,
        detail=head.detail,
    )
    extra = [_cache_status(head.upstream_status, status_value), _server_timing(head)]
    status, sent = await _stream_guarded(
        receive, deliver_fetch(send, req.method, req.headers, fetch, head, extra, cid), fetch
    )
    outcome = "collapsed" if collapsed else ("stale" if head.fwd == "stale" else "miss")
    return status, sent, outcome, ""


async def pass_(
    state: AppState, route: Route, req: Request, receive: Receive, send: Send
) -> tuple[int, int, str, str]:
    if route.read_only and req.method not in CACHEABLE_METHODS:
        return (
            405,
            await send_error(send, 405, "read-only route", [(b"allow", b"GET, HEAD")]),
            "deny",
            "read-only",
        )
    try:
        body = await _read_body(receive)
    except Rejected as exc:
        return exc.status, await send_error(send, exc.status, exc.reason), "deny", exc.reason
    fetch = new_fetch(req.key)
    cid = fetch.subscribe()
    state.spawn(produce_pass(state, fetch, route, req, body, req.method in CACHEABLE_METHODS))
    try:
        return await _deliver_pass(state, req, fetch, cid, receive, send)
    finally:
        fetch.unsubscribe(cid)


async def _deliver_pass(
    state: AppState, req: Request, fetch: Fetch, cid: int, receive: Receive, send: Send
) -> tuple[int, int, str, str]:
    try:
        head = await fetch.head
        req.answered_by = fetch.answered_by
    except OriginError as exc:
        return (
            exc.status,
            await send_error(send, exc.status, exc.reason, _retry_after(exc)),
            "error",
            exc.reason,
        )
    if methods.invalidates(req.method) and head.status < 400:
        invalidate_after_unsafe(state, req, head)
    ours = cache_status.forward(head.fwd, fwd_status=head.status, stored=False, collapsed=False)
    extra = [_cache_status(head.upstream_status, ours), _server_timing(head)]
    status, sent = await _stream_guarded(
        receive,
        deliver_fetch(
            send, req.method, req.headers, fetch, head, extra, cid, local_semantics=False
        ),
        fetch,
    )
    return status, sent, "pass", ""


def invalidate_after_unsafe(state: AppState, req: Request, head: Head) -> None:
    """RFC 9111 4.4: a successful unsafe request invalidates the target URI and the
    same-host URIs in Location and Content-Location."""
    state.cache.invalidate(req.key)
    for name, value in head.headers:
        if name in (b"location", b"content-location"):
            target = value.decode("latin-1")
            if target.startswith("/"):  # the origin's words: normalised like a request's
                path, _, query = target.partition("#")[0].partition("?")
                with contextlib.suppress(BadPath, BadKey):
                    state.cache.invalidate(url_key(req.host, state.normalize(path), query))


async def _stream_guarded(
    receive: Receive, delivery: Awaitable[tuple[int, int]], fetch: Fetch
) -> tuple[int, int]:
    """A streaming delivery, stopped when the client disconnects."""
    try:
        return await until_disconnect(receive, delivery)
    except ClientGone:
        return 499, 0
    except FetchAborted as exc:
        # Left incomplete on purpose: the client sees a broken transfer, never a short
        # body. uvicorn's own complaint about that is filtered (proxy/logs.py).
        log.warning(
            "origin body broke off after %d bytes, connection closed: %s (%s)",
            fetch.received,
            fetch.key.partition("?")[0],  # no query: it may carry what a token strip kept
            exc,
        )
        return 502, 0


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Rejected(400, "client disconnected")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_PASS_BODY:
            raise Rejected(413, "request body too large")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _cache_status(upstream: bytes | None, ours: str) -> Header:
    """RFC 9211 2: each cache appends its member to what the caches before it said."""
    value = ours.encode()
    return (b"cache-status", upstream + b", " + value if upstream else value)


def _retry_after(exc: OriginError) -> list[Header]:
    """Every origin of the group is down: say when to come back (RFC 9110 10.2.3)."""
    seconds = getattr(exc, "retry_after", None)
    return [(b"retry-after", str(seconds).encode())] if seconds is not None else []


async def _redirect(send: Send, redirect: Redirect) -> int:
    headers = [
        (b"location", redirect.location.encode("latin-1")),
        (b"cache-control", redirect.cache_control.encode("latin-1")),
        (b"content-length", b"0"),
    ]
    return await send_response(send, redirect.status, headers)


def _server_timing(head: Head) -> Header:
    return (b"server-timing", f"origin;dur={head.origin_ms:.1f}".encode())


def _status_header(exc: OriginError, collapsed: bool) -> Header:
    value = cache_status.forward(
        "miss", fwd_status=None, stored=False, collapsed=collapsed, detail=exc.reason
    )
    return (b"cache-status", value.encode())
