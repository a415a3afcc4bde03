"""The request state machine, Varnish-style. `handle` parses and routes, then runs the
steps in order, each answering (an `Answer` with its `Outcome`) or passing on:

    auth -> steer -> variant -> lookup (hit | stale | miss: one collapsed fetch) -> pass
    -> refuse

and records what was answered. The fresh memory hit never gets here: proxy/fastpath.py."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from proxy import archive
from proxy.auth.step import admit, send_answer
from proxy.cache.codec import CorruptEntry
from proxy.cache.collapse import Fetch, FetchAborted, Head
from proxy.cache.disk import BodyStream
from proxy.cache.entry import Entry
from proxy.cache.keys import BadKey, url_key
from proxy.cache.lookup import Use
from proxy.compress import deliver_miss, deliver_stored
from proxy.deliver import (
    cache_status_field,
    deliver_entry,
    deliver_fetch,
    failed_fetch_fields,
    fresh_hit_fields,
    origin_timing_field,
    retry_after_fields,
    send_error,
    send_response,
    stale_hit_fields,
)
from proxy.disconnect import CLIENT_GONE, ClientGone, until_disconnect
from proxy.exchange import Answer, Exchange, Outcome, Receive, Send
from proxy.fetch import fetch_object, new_fetch, produce_pass, revalidate_in_background
from proxy.http import cache_status, methods
from proxy.http.forwarding import REQUEST_ID
from proxy.http.paths import BadPath
from proxy.http.vary import variant_key
from proxy.observe import Tracked, record, request_id_of, scope_host
from proxy.prefetch import after_answer
from proxy.request import Rejected, Request, parse_request
from proxy.serve.state import AppState
from proxy.slices import serve_sliced
from proxy.slices.auto import slice_instead, sliced_before
from proxy.variants import image_request, routing_path
from routing.origins.base import OriginError
from routing.rules import rewrite
from routing.steering import Redirect, steer

Header = tuple[bytes, bytes]

CACHEABLE_METHODS = methods.CACHEABLE
MAX_PASS_BODY = 16 * 1024 * 1024
log = logging.getLogger("edgeshield.pipeline")


async def handle(state: AppState, scope: dict[str, Any], receive: Receive, send: Send) -> None:
    """parse -> route -> then the steps, each answering or passing on -> record."""
    started = time.perf_counter()
    # What went out, whatever cuts the response off; the request id on error answers.
    send = out = Tracked(send, timing="origin_ms" in state.settings.server.access_log_fields)
    guards = state.guards
    bunny_path, scope = guards.split_bunny(scope)
    try:
        req = parse(state, scope)
    except Rejected as exc:
        out.request_id = request_id_of(state, scope)
        close = None
        if scope["method"] == "CONNECT":  # tunnel bytes would follow: never read them
            log.info("refused CONNECT: %s", exc.reason)
            close = [(b"connection", b"close")]
        sent = await send_error(send, exc.status, exc.reason, close)
        record(
            state,
            scope,
            host=scope_host(scope),
            status=exc.status,
            outcome=Outcome.DENY,
            route="-",
            origin=None,
            sent=sent,
            started=started,
            now=time.time(),
            reason=exc.reason,
            request_id=out.request_id,
        )
        return
    out.request_id = req.request_id = state.request_ids.pick(
        req.headers.get(REQUEST_ID), req.forwarding.peer, guards.trusted
    )
    # recv (with images on, /cdn-cgi/image/<options>/<source> is routed by its source path)
    path_token = guards.split_path(req)
    route = state.routes.match(
        req.host, req.path if state.images is None else routing_path(req.path)
    )
    key = None
    if route is None:
        answer = Answer(404, await send_error(send, 404, "no route"), Outcome.DENY, "no route")
    else:
        ex = Exchange(state, route, req, receive, send, req.key, started, path_token, bunny_path)
        try:
            answer = await respond(ex)
            after_answer(ex, answer)  # segment prefetch (proxy/prefetch.py)
        except asyncio.CancelledError:  # the server gave up on it (shutdown): still logged
            answer = await out.cut_off()
        key = ex.key
    record(
        state,
        scope,
        host=req.host,
        status=answer.status,
        outcome=answer.outcome,
        route=route.name if route else "-",
        origin=(req.answered_by or route.origin.name) if route else None,
        sent=out.sent,
        started=started,
        now=req.now,
        reason=answer.reason,
        client=req.client,
        key=key,
        request_id=out.request_id,
        origin_ms=out.origin_ms,
    )


def parse(state: AppState, scope: dict[str, Any]) -> Request:
    settings = state.settings.server
    return parse_request(
        scope,
        normalize=state.normalize,
        max_url_bytes=settings.max_url_bytes,
        max_header_bytes=settings.max_header_bytes,
        trusted=state.guards.trusted,
    )


async def respond(ex: Exchange) -> Answer:
    for step in STEPS:
        answer = await step(ex)
        if answer is not None:
            return answer
    raise AssertionError("the last step always answers")


async def auth(ex: Exchange) -> Answer | None:
    """proxy/auth/step.py: preflight, access lists, rate limit, token; then token-free."""
    guards = ex.state.guards
    guard = guards.by_route.get(ex.route.name)
    if guard is None:
        return None
    req = ex.req
    # CORS headers on the answer (a preflight has its own); a signed playlist's child tokens
    guarded, ex.send = await admit(ex, guard)
    if guarded is None:
        ex.key = req.key  # token-free now: the key every signed URL of the object shares
        return None
    sent = await send_answer(ex.send, guarded)
    return Answer(guarded.status, sent, Outcome(guarded.outcome), guarded.reason)


async def steer_(ex: Exchange) -> Answer | None:
    """Answer with the best CDN instead of proxying (no healthy CDN: proxy)."""
    route, req = ex.route, ex.req
    if route.steering is None or req.method not in CACHEABLE_METHODS:
        return None
    target = rewrite(route, req.path)
    redirect = steer(route.steering, target, req.query, req.headers, ex.state.router.is_up)
    if redirect is None:
        return None
    return Answer(302, await _redirect(ex.send, redirect), Outcome.STEER)


async def variant(ex: Exchange) -> Answer | None:
    """Image options on an `images` route; None: not an image request."""
    if not ex.route.images or not _cached(ex):
        return None
    return await image_request(ex)


async def lookup(ex: Exchange) -> Answer | None:
    if not _cached(ex):
        return None
    state, req = ex.state, ex.req
    if ex.route.policy.slice_bytes:
        return await serve_sliced(ex, ex.route.policy.slice_bytes)
    found = await state.cache.find(ex.key, req.headers)
    use, entry, now = found.use(req.now), found.entry, req.now
    if entry is not None and (use is Use.FRESH or use is Use.STALE):
        # (fresh-hit GETs without ranges or preconditions never get here:
        # proxy/fastpath.py answers them)
        if use is Use.FRESH:
            extra = fresh_hit_fields(entry, entry.age(now), now, found.tier)
        else:
            # A streamed body is not in memory for a 304 or stale-if-error to reuse: such
            # an entry is refetched whole (reading it in per request is what it must not do).
            revalidate_in_background(ex, entry if found.body is None else None)
            extra = stale_hit_fields(entry, now, found.tier)
        outcome = Outcome.HIT if use is Use.FRESH else Outcome.STALE
        if archive.wanted(ex, entry.status, entry.headers):  # a batch-download manifest
            return await archive.from_entry(ex, entry, found.body, outcome)
        status, sent = await _deliver_stored(ex, entry, extra, found.body)
        return Answer(status, sent, outcome)
    stale = entry if found.body is None else None
    await found.close()
    if entry is None and (size := await sliced_before(ex)):
        return await serve_sliced(ex, size)  # a large object, sliced automatically before
    return await miss(ex, stale, collapse=use is not Use.HIT_FOR_MISS)


async def pass_(ex: Exchange) -> Answer | None:
    """Varnish `pass`: relayed as is, never stored; a successful unsafe method invalidates."""
    req, send = ex.req, ex.send
    if req.method not in CACHEABLE_METHODS and not methods.passable(req.method):
        return None
    if ex.route.read_only and req.method not in CACHEABLE_METHODS:
        sent = await send_error(send, 405, "read-only route", [(b"allow", b"GET, HEAD")])
        return Answer(405, sent, Outcome.DENY, "read-only")
    try:
        body = await _read_body(ex.receive)
    except Rejected as exc:
        return Answer(
            exc.status, await send_error(send, exc.status, exc.reason), Outcome.DENY, exc.reason
        )
    fetch = new_fetch(ex.key)
    cid = fetch.subscribe()
    cacheable = req.method in CACHEABLE_METHODS
    ex.state.spawn(produce_pass(ex.state, fetch, ex.route, req, body, cacheable))
    try:
        return await _deliver_pass(ex, fetch, cid)
    finally:
        fetch.unsubscribe(cid)


async def refuse(ex: Exchange) -> Answer:
    """CONNECT or TRACE: the connection closes, so bytes behind one are never read."""
    log.info("refused %s: method not implemented", ex.req.method)
    refusal = [(b"connection", b"close")]
    sent = await send_error(ex.send, 501, "method not implemented", refusal)
    return Answer(501, sent, Outcome.DENY, "method")


def _cached(ex: Exchange) -> bool:
    return ex.req.method in CACHEABLE_METHODS and ex.route.policy.enabled


STEPS: tuple[Callable[[Exchange], Awaitable[Answer | None]], ...] = (
    auth,
    archive.refuse_unsigned,  # ?archive=zip needs a token binding it (docs/archives.md)
    steer_,
    variant,
    lookup,
    pass_,
    refuse,
)


async def _deliver_stored(
    ex: Exchange, entry: Entry, extra: list[Header], body: BodyStream | None
) -> tuple[int, int]:
    """A stored answer; one streamed from its file stops when the client leaves and
    always closes the file. Damage found mid-file leaves the response incomplete, as a
    broken origin body does."""
    req = ex.req
    if body is None:  # in the coding the client takes (compress.py)
        return await deliver_stored(ex, entry, extra)
    async with body:
        try:
            return await until_disconnect(
                ex.receive, deliver_entry(ex.send, req.method, req.headers, entry, extra, body)
            )
        except ClientGone:
            return CLIENT_GONE, 0
        except CorruptEntry:
            return 502, 0


async def miss(ex: Exchange, stale: Entry | None, *, collapse: bool) -> Answer:
    fetch, collapsed = fetch_object(ex, stale, collapse=collapse)
    cid = fetch.subscribe()
    try:
        return await _deliver_miss(ex, fetch, cid, collapsed)
    finally:
        fetch.unsubscribe(cid)


async def _deliver_miss(ex: Exchange, fetch: Fetch, cid: int, collapsed: bool) -> Answer:
    req, send = ex.req, ex.send
    try:
        head = await asyncio.shield(fetch.head)
        req.answered_by = fetch.answered_by
    except OriginError as exc:
        extra = failed_fetch_fields(exc, exc.reason, collapsed=collapsed)
        sent = await send_error(send, exc.status, exc.reason, extra)
        return Answer(exc.status, sent, Outcome.ERROR, exc.reason)
    if collapsed and (
        not head.shareable or (head.vary and variant_key(head.vary, req.headers) != fetch.variant)
    ):
        # The shared answer turned out private or another variant: fetch our own.
        fetch.unsubscribe(cid)
        return await miss(ex, None, collapse=False)
    if size := slice_instead(ex, fetch, head):
        # Too large to keep whole, from an origin that answers ranges: the slices answer
        # (before any byte went out), and the whole fetch, unread, stops.
        fetch.unsubscribe(cid)
        return await serve_sliced(ex, size)
    if archive.wanted(ex, head.status, head.headers):  # a batch-download manifest
        outcome = Outcome.COLLAPSED if collapsed else Outcome.MISS
        return await archive.from_fetch(ex, fetch, cid, head, outcome)
    # RFC 9211 2.6 `stored`: what a tier did with it when the body is already in, else
    # what is known before it (the producer stops keeping what the cache will refuse).
    # A body that breaks off later cuts this response off, so no complete one claims it.
    # One of unknown length is weighed by admission when it is in: not claimed before.
    stored = (
        fetch.stored
        if fetch.done
        else head.shareable and fetch.keep_all and head.content_length is not None
    )
    status_value = cache_status.forward(
        head.fwd,
        fwd_status=head.fwd_status,
        stored=stored,
        collapsed=collapsed,
        detail=head.detail,
    )
    extra = [cache_status_field(head.upstream_status, status_value), origin_timing_field(head)]
    delivery = deliver_miss(ex, fetch, extra, cid)  # compress.py: streamed, or another coding
    status, sent = await _stream_guarded(ex.receive, delivery, fetch)
    if collapsed:
        return Answer(status, sent, Outcome.COLLAPSED)
    return Answer(status, sent, Outcome.STALE if head.fwd == "stale" else Outcome.MISS)


async def _deliver_pass(ex: Exchange, fetch: Fetch, cid: int) -> Answer:
    req, send = ex.req, ex.send
    try:
        head = await fetch.head
        req.answered_by = fetch.answered_by
    except OriginError as exc:
        sent = await send_error(send, exc.status, exc.reason, retry_after_fields(exc))
        return Answer(exc.status, sent, Outcome.ERROR, exc.reason)
    if methods.invalidates(req.method) and head.status < 400:
        invalidate_after_unsafe(ex, head)
    if archive.wanted(ex, head.status, head.headers):  # a batch-download manifest
        return await archive.from_fetch(ex, fetch, cid, head, Outcome.PASS)
    ours = cache_status.forward(head.fwd, fwd_status=head.status, stored=False, collapsed=False)
    extra = [cache_status_field(head.upstream_status, ours), origin_timing_field(head)]
    delivery = deliver_fetch(
        send, req.method, req.headers, fetch, extra, cid, local_semantics=False
    )
    status, sent = await _stream_guarded(ex.receive, delivery, fetch)
    return Answer(status, sent, Outcome.PASS)


def invalidate_after_unsafe(ex: Exchange, head: Head) -> None:
    """RFC 9111 4.4: a successful unsafe request invalidates the target URI and the
    same-host URIs in Location and Content-Location."""
    state, req = ex.state, ex.req
    state.cache.invalidate(ex.key)
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
        return CLIENT_GONE, 0
    except FetchAborted as exc:
        # Left incomplete on purpose: the client sees a broken transfer, never a short
        # body. The engine's own complaint about that is filtered (proxy/serve/logs.py).
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


async def _redirect(send: Send, redirect: Redirect) -> int:
    headers = [
        (b"location", redirect.location.encode("latin-1")),
        (b"cache-control", redirect.cache_control.encode("latin-1")),
        (b"content-length", b"0"),
    ]
    return await send_response(send, redirect.status, headers)
