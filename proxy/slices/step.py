"""The slice step: a GET/HEAD on a route with `slice_bytes`, answered from the record
and the slices a `Reader` brings (HEAD, preconditions, single and multipart ranges, 416),
started over when the object changes before the head went out."""

from __future__ import annotations

import time
from collections.abc import Mapping
from copy import copy
from typing import Any

from proxy.cache.collapse import FetchAborted
from proxy.cache.entry import Entry
from proxy.cache.keys import record_key, slice_key
from proxy.cache.lookup import Use, classify
from proxy.deliver import (
    Header,
    Send,
    cache_status_field,
    choose_answer,
    deliver_entry,
    deliver_fetch,
    failed_fetch_fields,
    fresh_hit_fields,
    origin_timing_field,
    send_error,
    wanted_ranges,
)
from proxy.disconnect import ClientGone, until_disconnect
from proxy.exchange import Answer, Exchange, Outcome
from proxy.fetch import new_fetch, produce_pass
from proxy.http import cache_status
from proxy.http.conditionals import stored_date
from proxy.http.ranges import start_hint, unsatisfied_range
from proxy.request import Request
from proxy.slices.model import Rep, rep_of, usable_slice
from proxy.slices.read import Changed, Piece, Reader, SliceBody, Tap, lookup
from routing.origins.base import OriginError

# A response restarts this often when the object changes before its head went out.
MAX_ATTEMPTS = 3


async def serve_sliced(ex: Exchange, size: int) -> Answer:
    """The lookup step of a sliced route or object: answer a GET/HEAD from slices of
    `size` bytes (stopped when the client leaves, so a gone client does not keep the loop
    fetching slices)."""
    try:
        return await until_disconnect(ex.receive, _serve(ex, size))
    except ClientGone:
        return Answer(499, 0, Outcome.MISS, "client gone")


class _Out:
    """The client's send, remembering whether the response has begun."""

    def __init__(self, send: Send) -> None:
        self.send = send
        self.started = False
        self.sent = 0

    async def __call__(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.started = True
        else:
            self.sent += len(message.get("body", b""))
        await self.send(message)


async def _serve(ex: Exchange, size: int) -> Answer:
    out = _Out(ex.send)
    for _ in range(MAX_ATTEMPTS):
        reader = Reader(ex, size)
        try:
            return await _serve_once(ex, out, reader)
        except Changed as exc:
            if out.started:
                # Never stitch two versions: the response is left incomplete.
                return Answer(502, out.sent, Outcome.ERROR, str(exc))
            continue
        except (OriginError, FetchAborted) as exc:
            reason = exc.reason if isinstance(exc, OriginError) else f"origin failed: {exc}"
            if out.started:
                return Answer(502, out.sent, Outcome.ERROR, reason)
            status = exc.status if isinstance(exc, OriginError) else 502
            sent = await send_error(out, status, reason, failed_fetch_fields(exc, reason))
            return Answer(status, sent, Outcome.ERROR, reason)
        finally:
            reader.close()
    reason = "object keeps changing"
    return Answer(502, await send_error(out, 502, reason), Outcome.ERROR, reason)


async def _serve_once(ex: Exchange, out: _Out, reader: Reader) -> Answer:
    state, req, key = ex.state, ex.req, ex.key
    size = reader.size
    now = time.time()
    found = await lookup(state, record_key(key), req.headers)
    tier, use, record = found.tier, found.use(now), found.entry
    if use is Use.HIT_FOR_MISS:
        reader.collapse = False  # the last answer could not be shared
    rep: Rep | None = None
    if record is not None:
        if record.status != 200 and use is Use.FRESH:
            # a stored negative answer (404...) stands for the object
            extra = fresh_hit_fields(record, record.age(now), now, tier)
            status, sent = await deliver_entry(out, req.method, req.headers, record, extra)
            return Answer(status, sent, Outcome.HIT)
        rep = rep_of(record, size)
    decided: Piece | None = None  # the slice the response's Cache-Status describes
    use = classify(rep.record, now) if rep is not None else Use.ABSENT
    if rep is None or use not in (Use.FRESH, Use.STALE):
        # Learn (or confirm) the representation from the origin, through the first slice
        # the response most likely needs.
        first = _first_byte(req.headers, rep)
        index = first // size
        verified = await reader.piece(index, rep, verify=True)
        assert isinstance(verified, Tap)
        answer = await _unsliced(ex, out, verified, index, rep)
        if answer is not None:
            return answer
        assert verified.fetch.rep is not None
        rep = verified.fetch.rep  # a changed object is simply the new version here
        if verified.whole:
            reader.whole = verified  # the origin ignores Range: this stream serves it all
        else:
            reader.ready[index] = verified
        decided = verified
    elif use is Use.STALE:
        # stale-while-revalidate of the record: a conditional request for the first slice
        # (with its stored validators when it is cached) refreshes the record too.
        index = _first_byte(req.headers, rep) // size
        found = await lookup(state, slice_key(key, index), req.headers)
        reader.revalidate(index, usable_slice(found.value, index, size, rep), rep)
    return await _respond(req, out, reader, rep, decided, tier, now)


def _first_byte(headers: Mapping[str, str], rep: Rep | None) -> int:
    """Where the response most likely starts reading, to learn or confirm the version."""
    if rep is None:
        return start_hint(headers.get("range"))
    record = rep.record
    ranges = wanted_ranges(headers, rep.total, record.etag, record.last_modified)
    return ranges[0].start if isinstance(ranges, list) else 0


async def _unsliced(
    ex: Exchange, out: _Out, tap: Tap, index: int, known: Rep | None
) -> Answer | None:
    """Answers a first slice request can get that are no slice: relayed, or the request
    passed through. None when it is a slice (or a whole 200 of known length)."""
    head, fetch = tap.head, tap.fetch
    extra = [_forward_status(tap), origin_timing_field(head)]
    if head.status in (200, 206) and fetch.rep is not None:
        return None
    if head.status == 416:
        if index == 0:  # an empty object: no range of it exists, so no slice either
            return await _pass(ex, out)
        if known is not None:
            raise Changed("object shrank")  # the producer dropped the record: start over
        if fetch.total is not None:
            fields = [(b"content-range", unsatisfied_range(fetch.total).encode()), *extra]
            sent = await send_error(out, 416, "range not satisfiable", fields)
            return Answer(416, sent, Outcome.MISS)
    # 404, 3xx, 5xx, a 200 of unknown length (chunked): relayed as the origin sent it (a
    # 200's preconditions are answered here; a Range of unknown length is ignored).
    req = ex.req
    status, sent = await deliver_fetch(out, req.method, req.headers, fetch, extra, tap.cid)
    return Answer(status, sent, tap.how)


async def _pass(ex: Exchange, out: _Out) -> Answer:
    req = ex.req
    fetch = new_fetch(ex.key)
    cid = fetch.subscribe()
    ex.state.spawn(produce_pass(ex.state, fetch, ex.route, req, b"", True))
    try:
        head = await fetch.head
        value = cache_status.forward(
            head.fwd, fwd_status=head.status, stored=False, collapsed=False
        )
        extra = [(b"cache-status", value.encode()), origin_timing_field(head)]
        status, sent = await deliver_fetch(
            out, req.method, req.headers, fetch, extra, cid, local_semantics=False
        )
        return Answer(status, sent, Outcome.PASS)
    finally:
        fetch.unsubscribe(cid)


def _forward_status(tap: Tap) -> Header:
    head = tap.head
    value = cache_status.forward(
        head.fwd,
        fwd_status=head.fwd_status,
        stored=head.shareable and head.status in (200, 206),
        collapsed=tap.how is Outcome.COLLAPSED,
        detail=head.detail or "slices",
    )
    return cache_status_field(head.upstream_status, value)


def _status_fields(
    rep: Rep, piece: Piece | None, tier: str, now: float
) -> tuple[list[Header], Outcome]:
    """Age/Cache-Status of the response and its outcome label, from the slice that decided
    it (the first one it reads), or from the record when it reads none (HEAD, 304, 416)."""
    if isinstance(piece, Tap):
        return [_forward_status(piece), origin_timing_field(piece.head)], piece.how
    entry, where = (piece.entry, piece.tier) if piece is not None else (rep.record, tier)
    stale = now >= entry.fresh_until
    value = cache_status.hit(entry.fresh_until - now, where, stale=stale)
    age = (b"age", str(entry.age(now)).encode())
    return [age, cache_status_field(entry.upstream_status, value)], (
        Outcome.STALE if stale else Outcome.HIT
    )


async def _respond(
    req: Request,
    out: _Out,
    reader: Reader,
    rep: Rep,
    decided: Piece | None,
    tier: str,
    now: float,
) -> Answer:
    """The answer, decided by deliver.py as for any entry, over the slices."""
    index = _first_read(req, rep, reader.size)
    if index is not None and reader.whole is None:
        # The first slice is in hand before the head goes out: a change found there
        # restarts the response instead of breaking it.
        piece = reader.ready.get(index) or await reader.piece(index, rep, verify=False)
        reader.check(piece, rep)
        reader.ready[index] = piece
        decided = piece
    extra, outcome = _status_fields(rep, decided, tier, now)
    body = SliceBody(reader, rep)
    status, sent = await deliver_entry(out, req.method, req.headers, _whole(rep), extra, body)
    return Answer(status, sent, outcome)


def _first_read(req: Request, rep: Rep, size: int) -> int | None:
    """The slice the body starts in; None when the answer sends no byte of the object
    (HEAD, 304, 412, 416, an empty object): deliver_entry's own choice."""
    record = rep.record
    date = stored_date(record.headers, record.response_time)
    first = choose_answer(
        req.method, req.headers, 200, record.etag, record.last_modified, rep.total, date=date
    ).first
    return None if first is None else first // size


def _whole(rep: Rep) -> Entry:
    """The record as the head of the whole object: the object's length, not its own."""
    entry = copy(rep.record)
    entry.full_headers = [
        *entry.headers,
        (b"content-length", str(rep.total).encode()),
        (b"accept-ranges", b"bytes"),
    ]
    return entry
