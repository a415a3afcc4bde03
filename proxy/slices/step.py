"""Slices: large objects served from fixed-size pieces, each its own cache entry (issue 4).

On a route with `slice_bytes = S`, every GET/HEAD is answered from slices: slice i is
bytes [i*S, (i+1)*S) of the object, fetched from the origin with `Range: bytes=a-b` and
cached under `key + NUL "slice=" + i` (an Entry with status 206 and the slice's bytes; its
origin fields keep the Content-Range, so it knows its offset and the object's length).
Seeking in a 2 GiB video costs the slices it touches, and a cold object's first client
gets its 206 (or a 200 streamed slice after slice) at once; no response holds more than
about one slice, so memory is bounded by S, never by the object (nginx's slice module).

Next to the slices, the object record (`key + NUL "slices"`): an Entry with no body that
holds what a HEAD or a precondition needs (client fields, validators, freshness) and the
complete length with the slice size it was cut with. It is written from the first slice
response, rewritten when a later slice response finds it stale, and answers HEAD, 304/412
and 416 without touching a slice. A storable non-2xx answer (404...) takes its place and is
served as an ordinary entry.

Versions: a response uses one version (ETag, Last-Modified, length) throughout. A cached
slice of another version is never used; a slice answer from the origin with another version
means the object changed: the producer drops every slice of the old version and the record,
and stores the new record. A response that has not sent its head yet starts over with the
new version; one already streaming is cut off (left incomplete, so the client sees a broken
transfer, never two versions stitched together).

Freshness per slice, as for any entry: fresh slices are hits; stale ones within
stale-while-revalidate are served while one background request revalidates them (a
conditional ranged request: If-None-Match/If-Modified-Since plus the Range; a 304 refreshes
the slice); beyond that the revalidation is in the foreground. A stale record is checked
the same way through the first slice the response needs.

Concurrent requests for the same slice collapse: a slice fetch is a `Fetch` in
`state.inflight` under the slice's key, read by every waiter.

An origin that ignores Range (200 for a slice request): the request is served from that
answer, the whole representation from byte 0, with local range semantics (as an
unsliced miss would be); the bytes before and after the wanted range are not wasted: each
whole slice that streams past is stored. An origin that answers 416 to slice 0 has an empty
object: that request is passed through unsliced. Vary other than Accept-Encoding makes
slices unshareable (slice requests ask for the identity coding, so they do not vary by it).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

from proxy.cache.collapse import Fetch, FetchAborted, Head
from proxy.cache.entry import Entry
from proxy.cache.keys import record_key, slice_key
from proxy.cache.lookup import Found, Use, classify
from proxy.deliver import (
    NOT_MODIFIED_FIELDS,
    PRECONDITION_FIELDS,
    deliver_entry,
    deliver_fetch,
    fresh_hit_fields,
    send_error,
    send_response,
)
from proxy.disconnect import ClientGone, until_disconnect
from proxy.exchange import Answer, Exchange, Outcome
from proxy.fetch import (
    HIT_FOR_MISS_SECONDS,
    STALE_IF_ERROR_STATUSES,
    STREAM_WINDOW,
    new_fetch,
    origin_head,
    origin_request,
    present_entry,
    produce_pass,
)
from proxy.fetch import send as origin_send
from proxy.http import cache_status
from proxy.http.conditionals import evaluate_preconditions, if_range_matches
from proxy.http.forwarding import merge_304
from proxy.http.freshness import Freshness
from proxy.http.ranges import (
    ByteRange,
    content_range,
    make_boundary,
    multipart_byteranges,
    parse_range,
    parse_unsatisfied_range,
    slice_content_range,
    slice_of,
    slice_range_field,
    slices_in,
    start_hint,
    unsatisfied_range,
)
from proxy.http.surrogate import surrogate_keys
from proxy.request import Request
from proxy.state import AppState
from routing.origins.base import OriginError, OriginResponse
from routing.rules import Route

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Header = tuple[bytes, bytes]

# In the record's origin fields: "<complete length> <slice size>".
RECORD_FIELD = "x-edgeshield-slices"
# A response restarts this often when the object changes before its head went out.
MAX_ATTEMPTS = 3
NO_HEADERS: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Version:
    """What makes two slices parts of the same representation."""

    etag: str | None
    last_modified: float | None
    total: int


@dataclass(frozen=True, slots=True)
class Rep:
    """The representation a response serves: its record and version."""

    record: Entry
    version: Version

    @property
    def total(self) -> int:
        return self.version.total


def rep_of(record: Entry, slice_bytes: int) -> Rep | None:
    """The record's representation; None if it is not a record cut with this slice size
    (the route's slice size changed: its slices no longer line up)."""
    if record.status != 200:
        return None
    for name, value in record.origin_headers:
        if name == RECORD_FIELD:
            total, _, size = value.partition(" ")
            if size != str(slice_bytes) or not total.isdigit():
                return None
            return Rep(record, Version(record.etag, record.last_modified, int(total)))
    return None


def _slice_shape(entry: Entry, index: int, slice_bytes: int) -> int | None:
    """The complete length a stored slice belongs to, if it is slice `index` whole."""
    if entry.status != 206:
        return None
    value = next((v for k, v in entry.origin_headers if k == "content-range"), None)
    shape = slice_content_range(value, index, slice_bytes)
    if shape is None or shape[0] != len(entry.body):
        return None
    return shape[1]


def usable_slice(found: object, index: int, slice_bytes: int, rep: Rep | None) -> Entry | None:
    """`found` if it is slice `index` of `rep`'s version (of any version when rep is None)."""
    if type(found) is not Entry:
        return None
    total = _slice_shape(found, index, slice_bytes)
    if total is None:
        return None
    if rep is not None and Version(found.etag, found.last_modified, total) != rep.version:
        return None
    return found


class SliceFetch(Fetch):
    """One slice request's answer. The head's status says what the stream holds: 206 = the
    slice's bytes; 200 = the whole representation from byte 0 (the origin ignored Range);
    anything else = that answer, to relay. `rep` is the version a 200/206 belongs to."""

    def __init__(self, key: str) -> None:
        super().__init__(key, window=STREAM_WINDOW)
        self.rep: Rep | None = None
        self.total: int | None = None  # the complete length a 416 gave


# -- the producer -----------------------------------------------------------------------


def start_slice_fetch(
    state: AppState,
    route: Route,
    req: Request,
    key: str,
    index: int,
    stale: Entry | None,
    known: Rep | None,
    *,
    register: bool,
) -> SliceFetch:
    fetch = SliceFetch(slice_key(key, index))
    if register:
        state.inflight.add(fetch)
    state.spawn(produce_slice(state, fetch, route, req, key, index, stale, known))
    return fetch


async def produce_slice(
    state: AppState,
    fetch: SliceFetch,
    route: Route,
    req: Request,
    key: str,
    index: int,
    stale: Entry | None,
    known: Rep | None,
) -> None:
    """Fill `fetch` with slice `index`, store it, keep the record in step. `stale` is a
    stored copy of the slice to revalidate; `known` the version the requester expects.
    Never raises: failures reach consumers through the fetch."""
    size = route.policy.slice_bytes or 0
    request_time = time.time()
    started = time.perf_counter()
    oreq = origin_request(route, req, cacheable=True, stale=stale)
    # Ranges of the identity coding only: slices of differently encoded bodies never mix.
    oreq.headers = [h for h in oreq.headers if h[0] != "accept-encoding"]
    oreq.headers += [("accept-encoding", "identity"), ("range", slice_range_field(index, size))]
    try:
        resp, origin_name = await origin_send(route, oreq)
    except OriginError as exc:
        state.log.debug("origin %s failed for %s: %s", exc.origin, fetch.key, exc.reason)
        if stale is not None and time.time() < stale.stale_if_error_until:
            _present(fetch, stale, index, size, fwd_status=None, origin_ms=0.0)
        else:
            fetch.fail(exc)
        state.inflight.remove(fetch)
        return
    origin_ms = (time.perf_counter() - started) * 1000
    response_time = time.time()
    timing = _Timing(request_time, response_time, origin_ms, origin_name)
    try:
        status = resp.status
        if stale is not None and status == 304:
            _refresh(state, fetch, route, req, key, index, stale, known, resp, timing)
        elif (
            stale is not None
            and status in STALE_IF_ERROR_STATUSES
            and response_time < stale.stale_if_error_until
        ):
            _present(fetch, stale, index, size, fwd_status=status, origin_ms=origin_ms)
        elif status == 206:
            await _slice_answer(state, fetch, route, req, key, index, known, resp, timing, stale)
        elif status == 200:
            await _whole_answer(state, fetch, route, req, key, known, resp, timing, stale)
        else:
            await _other_answer(state, fetch, route, req, key, known, resp, timing, stale)
    finally:
        state.inflight.remove(fetch)
        await resp.aclose()


@dataclass(frozen=True, slots=True)
class _Timing:
    request_time: float
    response_time: float
    origin_ms: float
    origin: str


def _fields_without(headers: list[tuple[str, str]], *names: str) -> list[tuple[str, str]]:
    return [h for h in headers if h[0] not in names]


def _shareable(head: Head) -> bool:
    # Slice requests ask for the identity coding, so Vary: Accept-Encoding does not split
    # them; any other Vary would need a variant index per slice: not shared then.
    return head.shareable and set(head.vary) <= {"accept-encoding"}


def _make_entry(
    status: int,
    head: Head,
    origin_headers: list[tuple[str, str]],
    body: bytes,
    freshness: Freshness,
    t: _Timing,
) -> Entry:
    return Entry(
        status=status,
        headers=[h for h in head.headers if h[0] != b"age"],
        origin_headers=origin_headers,
        body=body,
        etag=head.etag,
        last_modified=head.last_modified,
        content_type=head.content_type,
        response_time=t.response_time,
        freshness=freshness,
        upstream_status=head.upstream_status,
        request_time=t.request_time,  # a purge sent after this covers the entry
        tags=surrogate_keys(origin_headers),  # tag purges reach every slice
    )


def _record(
    head: Head,
    fields: list[tuple[str, str]],
    freshness: Freshness,
    t: _Timing,
    total: int,
    size: int,
) -> Rep:
    origin_headers = [*_fields_without(fields, "content-length"), (RECORD_FIELD, f"{total} {size}")]
    record = _make_entry(200, head, origin_headers, b"", freshness, t)
    return Rep(record, Version(head.etag, head.last_modified, total))


def drop_object(state: AppState, key: str, rep: Rep, slice_bytes: int) -> None:
    """Every slice of `rep`'s version, and its record, leave every tier."""
    cache = state.cache
    for index in range(slices_in(rep.total, slice_bytes)):
        cache.invalidate(slice_key(key, index))
    cache.invalidate(record_key(key))


def _keep_record(
    state: AppState, key: str, rep: Rep, known: Rep | None, size: int, *, storable: bool
) -> None:
    """The record after an answer of version `rep`: a changed object loses its old slices;
    a new or stale record is (re)written."""
    if known is not None and known.version != rep.version:
        state.log.debug("slices: %r changed, dropping its slices", key)
        drop_object(state, key, known, size)
    if not storable:
        state.cache.mark_uncacheable(record_key(key), time.time() + HIT_FOR_MISS_SECONDS)
        return
    if known is None or known.version != rep.version or time.time() >= known.record.fresh_until:
        _store_record(state, key, rep.record)


def _store_record(state: AppState, key: str, record: Entry) -> None:
    # Linked to the object's own key, so invalidating or purging the URL drops the record;
    # the next response then confirms its version with the origin before any slice of
    # the old one is used.
    state.cache.link(key, record_key(key))
    state.cache.store(record_key(key), record, NO_HEADERS)


def _present(
    fetch: SliceFetch,
    entry: Entry,
    index: int,
    size: int,
    *,
    fwd_status: int | None,
    origin_ms: float,
) -> None:
    """stale-if-error: the stored slice stands in for the origin's answer."""
    total = _slice_shape(entry, index, size)
    if total is not None:
        then = _Timing(entry.request_time, entry.response_time, 0.0, "")
        fields = _fields_without(entry.origin_headers, "content-range")
        head = Head(
            status=200,
            headers=entry.headers,
            content_length=None,
            etag=entry.etag,
            last_modified=entry.last_modified,
            content_type=entry.content_type,
            shareable=True,
            vary=(),
            fwd="stale",
            fwd_status=fwd_status,
            origin_ms=origin_ms,
            upstream_status=entry.upstream_status,
        )
        fetch.rep = _record(head, fields, entry.freshness, then, total, size)
    present_entry(
        fetch,
        entry,
        fwd="stale",
        fwd_status=fwd_status,
        origin_ms=origin_ms,
        detail="stale-if-error",
    )


def _refresh(
    state: AppState,
    fetch: SliceFetch,
    route: Route,
    req: Request,
    key: str,
    index: int,
    stale: Entry,
    known: Rep | None,
    resp: OriginResponse,
    t: _Timing,
) -> None:
    """304 to a conditional slice request: the stored slice is current again."""
    size = route.policy.slice_bytes or 0
    merged = merge_304(stale.origin_headers, resp.headers)
    fields = _fields_without(merged, "content-range")
    freshness, head = origin_head(
        state,
        route,
        req,
        resp,
        merged,
        status=206,
        fwd="stale",
        request_time=t.request_time,
        response_time=t.response_time,
        origin_ms=t.origin_ms,
        client_fields=fields,
    )
    head = replace(
        head,
        etag=head.etag or stale.etag,
        last_modified=head.last_modified or stale.last_modified,
        content_type=stale.content_type,
    )
    refreshed = _make_entry(206, head, merged, stale.body, freshness, t)
    total = _slice_shape(refreshed, index, size)
    storable = _shareable(head) and total is not None
    if total is not None:
        rep = _record(head, fields, freshness, t, total, size)
        fetch.rep = rep
        _keep_record(state, key, rep, known, size, storable=storable)
    if storable and state.cache.store(slice_key(key, index), refreshed, NO_HEADERS):
        fetch.stored = True
    present_entry(fetch, refreshed, fwd="stale", fwd_status=304, origin_ms=t.origin_ms)


async def _slice_answer(
    state: AppState,
    fetch: SliceFetch,
    route: Route,
    req: Request,
    key: str,
    index: int,
    known: Rep | None,
    resp: OriginResponse,
    t: _Timing,
    stale: Entry | None,
) -> None:
    """206: exactly the slice asked for, else the answer is refused."""
    size = route.policy.slice_bytes or 0
    content_range_value = next((v for k, v in resp.headers if k == "content-range"), None)
    shape = slice_content_range(content_range_value, index, size)
    if shape is None or resp.content_length not in (None, shape[0]):
        fetch.fail(OriginError(t.origin, "206 is not the slice asked for"))
        return
    length, total = shape
    fields = _fields_without(resp.headers, "content-range")
    freshness, head = origin_head(
        state,
        route,
        req,
        resp,
        resp.headers,
        status=206,
        fwd="stale" if stale is not None else "miss",
        request_time=t.request_time,
        response_time=t.response_time,
        origin_ms=t.origin_ms,
        client_fields=fields,
    )
    storable = _shareable(head)
    head = replace(head, shareable=storable, content_length=length)
    fetch.rep = _record(head, fields, freshness, t, total, size)
    _keep_record(state, key, fetch.rep, known, size, storable=storable)
    if not storable:
        state.inflight.remove(fetch)  # waiters that came before the head fetch their own
    fetch.set_head(head)
    if await _pump(state, fetch, resp, route, t.origin, length, None) and storable:
        entry = _make_entry(206, head, resp.headers, fetch.body(), freshness, t)
        if state.cache.store(slice_key(key, index), entry, NO_HEADERS):
            fetch.stored = True
            state.stats.inc("edgeshield_cache_stores", ("memory",))


async def _whole_answer(
    state: AppState,
    fetch: SliceFetch,
    route: Route,
    req: Request,
    key: str,
    known: Rep | None,
    resp: OriginResponse,
    t: _Timing,
    stale: Entry | None,
) -> None:
    """200: the origin ignored Range. The stream is the whole representation; readers
    take what they need from it, and each whole slice streaming past is stored."""
    size = route.policy.slice_bytes or 0
    freshness, head = origin_head(
        state,
        route,
        req,
        resp,
        resp.headers,
        status=200,
        fwd="stale" if stale is not None else "miss",
        request_time=t.request_time,
        response_time=t.response_time,
        origin_ms=t.origin_ms,
    )
    storable = _shareable(head) and resp.content_length is not None
    head = replace(head, shareable=storable)
    cutter = None
    if resp.content_length is not None:
        fetch.rep = _record(head, resp.headers, freshness, t, resp.content_length, size)
        _keep_record(state, key, fetch.rep, known, size, storable=storable)
        if storable:
            cutter = _Cutter(state, key, size, fetch.rep, head, resp.headers, freshness, t)
    # A whole object: bounded buffering and no joiners from now on (those that came
    # before the head read it from byte 0).
    state.inflight.remove(fetch)
    fetch.stop_keeping()
    fetch.set_head(head)
    await _pump(state, fetch, resp, route, t.origin, resp.content_length, cutter)


async def _other_answer(
    state: AppState,
    fetch: SliceFetch,
    route: Route,
    req: Request,
    key: str,
    known: Rep | None,
    resp: OriginResponse,
    t: _Timing,
    stale: Entry | None,
) -> None:
    """416, 404, 3xx, 5xx...: relayed. A storable one replaces the record (and drops the
    slices: the object is gone or moved); a 416 also means the record's object changed."""
    size = route.policy.slice_bytes or 0
    status = resp.status
    freshness, head = origin_head(
        state,
        route,
        req,
        resp,
        resp.headers,
        status=status,
        fwd="stale" if stale is not None else "miss",
        request_time=t.request_time,
        response_time=t.response_time,
        origin_ms=t.origin_ms,
    )
    if status == 416:
        fetch.total = parse_unsatisfied_range(
            next((v for k, v in resp.headers if k == "content-range"), None)
        )
        if known is not None:
            drop_object(state, key, known, size)
        fetch.set_head(replace(head, shareable=False))
        fetch.finish()
        return
    small = resp.content_length is not None and resp.content_length <= size
    storable = _shareable(head) and small
    head = replace(head, shareable=storable)
    if storable and known is not None:
        drop_object(state, key, known, size)
    if not storable:
        state.inflight.remove(fetch)
        if not small:
            fetch.stop_keeping()
    fetch.set_head(head)
    if await _pump(state, fetch, resp, route, t.origin, resp.content_length, None) and storable:
        entry = _make_entry(status, head, resp.headers, fetch.body(), freshness, t)
        _store_record(state, key, entry)


class _Cutter:
    """Stores every whole slice of a 200 stream as it passes (at most one slice buffered)."""

    def __init__(
        self,
        state: AppState,
        key: str,
        size: int,
        rep: Rep,
        head: Head,
        origin_headers: list[tuple[str, str]],
        freshness: Freshness,
        t: _Timing,
    ) -> None:
        self.state = state
        self.key = key
        self.size = size
        self.rep = rep
        self.head = head
        self.fields = _fields_without(origin_headers, "content-length", "content-range")
        self.freshness = freshness
        self.t = t
        self.index = 0
        self.buf = bytearray()

    def feed(self, chunk: bytes) -> None:
        view = memoryview(chunk)
        while view:
            span = slice_of(self.index, self.size, self.rep.total)
            if span is None:
                return
            take = min(span.length - len(self.buf), len(view))
            self.buf += view[:take]
            view = view[take:]
            if len(self.buf) == span.length:
                self._store(span)
                self.index += 1
                self.buf.clear()

    def _store(self, span: ByteRange) -> None:
        key = slice_key(self.key, self.index)
        cache = self.state.cache
        if usable_slice(cache.lookup(key, NO_HEADERS), self.index, self.size, self.rep):
            return  # already there: no lower-tier rewrite
        origin_headers = [
            *self.fields,
            ("content-range", content_range(span, self.rep.total)),
            ("content-length", str(span.length)),
        ]
        entry = _make_entry(206, self.head, origin_headers, bytes(self.buf), self.freshness, self.t)
        cache.store(key, entry, NO_HEADERS)


async def _pump(
    state: AppState,
    fetch: Fetch,
    resp: OriginResponse,
    route: Route,
    origin_name: str,
    length: int | None,
    cutter: _Cutter | None,
) -> bool:
    """The body into the fetch; True when it arrived whole (exactly `length` bytes)."""
    try:
        async for chunk in resp.body():
            state.stats.inc("edgeshield_origin_bytes", (origin_name,), len(chunk))
            if length is not None and fetch.received + len(chunk) > length:
                fetch.fail(OriginError(origin_name, "body longer than declared"))
                return False
            if cutter is not None:
                cutter.feed(chunk)
            await fetch.append(chunk)
            if fetch.abandoned:
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


# -- the reader: one response's bytes, slice after slice ---------------------------------


class _Changed(Exception):
    """A slice of another version (or an answer that is no slice) turned up."""


@dataclass(slots=True)
class _Bytes:
    """A stored slice."""

    entry: Entry
    start: int  # object offset of body[0]
    how: str  # "hit" or "stale"
    tier: str

    async def copy(self, send: Send, lo: int, hi: int) -> int:
        body = self.entry.body
        a, b = lo - self.start, hi - self.start
        piece = body if (a, b) == (0, len(body)) else body[a:b]
        await send({"type": "http.response.body", "body": piece, "more_body": True})
        return len(piece)


class _Tap:
    """A reader's cursor in a slice fetch: bytes from `start` on (the slice's offset, or
    0 for a whole 200 stream), forward only."""

    def __init__(
        self, fetch: SliceFetch, cid: int, head: Head, start: int, *, joined: bool
    ) -> None:
        self.fetch = fetch
        self.cid = cid
        self.head = head
        self.how = "collapsed" if joined else "miss"
        self.whole = head.status == 200
        self.pos = 0 if self.whole else start
        self._chunks: AsyncIterator[bytes] = fetch.stream(cid)
        self._pending = b""

    async def copy(self, send: Send, lo: int, hi: int) -> int:
        sent = 0
        while self.pos < hi:
            if self._pending:
                chunk, self._pending = self._pending, b""
            else:
                try:
                    chunk = await anext(self._chunks)
                except StopAsyncIteration:
                    raise FetchAborted("stream ended early") from None
            start, end = self.pos, self.pos + len(chunk)
            if end > hi:
                self._pending = chunk[hi - start :]
                chunk, end = chunk[: hi - start], hi
            self.pos = end
            if end <= lo:
                continue
            piece = chunk[lo - start :] if start < lo else chunk
            await send({"type": "http.response.body", "body": piece, "more_body": True})
            sent += len(piece)
        return sent


Piece = _Bytes | _Tap


class _Reader:
    """The slices one response reads, all of one version. A fetch is released as soon as
    the response is past its slice, so a long response holds about one slice."""

    def __init__(self, state: AppState, route: Route, req: Request, key: str) -> None:
        self.state = state
        self.route = route
        self.req = req
        self.key = key
        self.size = route.policy.slice_bytes or 0
        self.collapse = "authorization" not in req.headers
        self.ready: dict[int, Piece] = {}
        self.whole: _Tap | None = None
        self._subs: dict[tuple[int, int], Fetch] = {}  # (id(fetch), cid) -> fetch

    def _subscribe(self, fetch: Fetch) -> int:
        cid = fetch.subscribe()
        self._subs[id(fetch), cid] = fetch
        return cid

    def release(self, fetch: Fetch, cid: int) -> None:
        if self._subs.pop((id(fetch), cid), None) is not None:
            fetch.unsubscribe(cid)

    def close(self) -> None:
        for (_, cid), fetch in self._subs.items():
            fetch.unsubscribe(cid)
        self._subs.clear()

    async def piece(self, index: int, rep: Rep | None, *, verify: bool) -> Piece:
        """Slice `index` of `rep`'s version, from the cache or the origin. With `verify`
        (the record is stale), the origin is asked even when a stored copy is fresh."""
        state = self.state
        skey = slice_key(self.key, index)
        found = await lookup(state, skey, self.req.headers)
        stale = usable_slice(found.value, index, self.size, rep)
        use = classify(stale, time.time())
        if use is Use.FRESH and stale is not None and not verify:
            return _Bytes(stale, index * self.size, "hit", found.tier)
        if use is Use.STALE and stale is not None and not verify:
            self.revalidate(index, stale, rep)
            return _Bytes(stale, index * self.size, "stale", found.tier)
        fetch = state.inflight.get(skey) if self.collapse else None
        joined = isinstance(fetch, SliceFetch)
        if not isinstance(fetch, SliceFetch):
            fetch = start_slice_fetch(
                state, self.route, self.req, self.key, index, stale, rep, register=self.collapse
            )
        else:
            state.stats.inc("edgeshield_collapsed_requests", ())
        cid = self._subscribe(fetch)
        head = await asyncio.shield(fetch.head)
        if joined and not head.shareable:
            # The shared answer may not be shared (private...): fetch our own.
            self.release(fetch, cid)
            fetch = start_slice_fetch(
                state, self.route, self.req, self.key, index, stale, rep, register=False
            )
            cid = self._subscribe(fetch)
            head = await asyncio.shield(fetch.head)
            joined = False
        return _Tap(fetch, cid, head, index * self.size, joined=joined)

    def revalidate(self, index: int, stale: Entry | None, rep: Rep | None) -> None:
        """stale-while-revalidate: one background request per slice (it collapses too)."""
        if self.collapse and self.state.inflight.get(slice_key(self.key, index)) is None:
            start_slice_fetch(
                self.state, self.route, self.req, self.key, index, stale, rep, register=True
            )

    def prefetch(self, index: int, rep: Rep) -> None:
        """Ask for the next slice while this one streams (latency, not extra bytes: only
        slices the response will read). Skipped when stored or already asked for."""
        skey = slice_key(self.key, index)
        cache = self.state.cache
        if not self.collapse or self.state.inflight.get(skey) is not None:
            return
        if usable_slice(cache.lookup(skey, NO_HEADERS), index, self.size, rep):
            return
        if cache.lower or not cache.memory.fits(self.size):
            # It may be in a lower tier (found there, or fetched, when reached); or it
            # would not be kept, and be fetched twice.
            return
        start_slice_fetch(
            self.state, self.route, self.req, self.key, index, None, rep, register=True
        )

    def check(self, piece: Piece, rep: Rep) -> None:
        if isinstance(piece, _Bytes):
            return  # looked up for this version
        if piece.head.status not in (200, 206) or piece.fetch.rep is None:
            raise _Changed(f"origin answered {piece.head.fwd_status} for a slice")
        if piece.fetch.rep.version != rep.version:
            raise _Changed("object changed")

    async def copy(self, send: Send, lo: int, hi: int, rep: Rep) -> int:
        """Send bytes [lo, hi) of the object."""
        sent = 0
        while lo < hi:
            if self.whole is not None:
                return sent + await self.whole.copy(send, lo, hi)
            index = lo // self.size
            piece = self.ready.pop(index, None) or await self.piece(index, rep, verify=False)
            self.check(piece, rep)
            if isinstance(piece, _Tap) and piece.whole:
                self.whole = piece
                continue
            span = slice_of(index, self.size, rep.total)
            assert span is not None  # lo < hi <= total
            end = min(hi, span.end + 1)
            if end < hi:
                self.prefetch(index + 1, rep)
            sent += await piece.copy(send, lo, end)
            if end <= span.end:
                self.ready[index] = piece  # the next range may start in this slice
            elif isinstance(piece, _Tap):
                self.release(piece.fetch, piece.cid)
            lo = end
        return sent


async def lookup(state: AppState, key: str, headers: Mapping[str, str]) -> Found:
    """Every tier, bodies read whole (a slice is one memory-sized piece)."""
    return await state.cache.find(key, headers, stream=False)


# -- the step ---------------------------------------------------------------------------


async def serve_sliced(ex: Exchange, key: str) -> Answer:
    """The lookup step of a sliced route: answer a GET/HEAD from slices (stopped when
    the client leaves, so a gone client does not keep the loop fetching slices)."""
    try:
        served = _serve(ex.state, ex.route, ex.req, key, ex.send)
        status, sent, outcome, reason = await until_disconnect(ex.receive, served)
    except ClientGone:
        return Answer(499, 0, Outcome.MISS, "client gone")
    return Answer(status, sent, Outcome(outcome), reason)


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


async def _serve(
    state: AppState, route: Route, req: Request, key: str, send: Send
) -> tuple[int, int, str, str]:
    out = _Out(send)
    for _ in range(MAX_ATTEMPTS):
        reader = _Reader(state, route, req, key)
        try:
            return await _serve_once(state, route, req, key, out, reader)
        except _Changed as exc:
            if out.started:
                # Never stitch two versions: the response is left incomplete.
                return 502, out.sent, "error", str(exc)
            continue
        except (OriginError, FetchAborted) as exc:
            reason = exc.reason if isinstance(exc, OriginError) else f"origin failed: {exc}"
            if out.started:
                return 502, out.sent, "error", reason
            status = exc.status if isinstance(exc, OriginError) else 502
            detail = cache_status.forward(
                "miss", fwd_status=None, stored=False, collapsed=False, detail=reason
            )
            fields = [(b"cache-status", detail.encode()), *_retry_after(exc)]
            return status, await send_error(out, status, reason, fields), "error", reason
        finally:
            reader.close()
    reason = "object keeps changing"
    return 502, await send_error(out, 502, reason), "error", reason


def _retry_after(exc: Exception) -> list[Header]:
    seconds = getattr(exc, "retry_after", None)
    return [(b"retry-after", str(seconds).encode())] if seconds is not None else []


async def _serve_once(
    state: AppState, route: Route, req: Request, key: str, out: _Out, reader: _Reader
) -> tuple[int, int, str, str]:
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
            return status, sent, "hit", ""
        rep = rep_of(record, size)
    decided: Piece | None = None  # the slice the response's Cache-Status describes
    use = classify(rep.record, now) if rep is not None else Use.ABSENT
    if rep is None or use not in (Use.FRESH, Use.STALE):
        # Learn (or confirm) the representation from the origin, through the first slice
        # the response most likely needs.
        first = _first_byte(req.headers, rep)
        index = first // size
        verified = await reader.piece(index, rep, verify=True)
        assert isinstance(verified, _Tap)
        answer = await _unsliced(state, route, req, out, verified, index, rep)
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
    if rep is None:
        return start_hint(headers.get("range"))
    ranges = _wanted(headers, rep)
    if isinstance(ranges, list):
        return ranges[0].start
    return 0


def _wanted(headers: Mapping[str, str], rep: Rep) -> list[ByteRange] | str | None:
    value = headers.get("range")
    if value is None:
        return None
    if "if-range" in headers and not if_range_matches(
        headers["if-range"], rep.record.etag, rep.record.last_modified
    ):
        return None
    return parse_range(value, rep.total)


async def _unsliced(
    state: AppState,
    route: Route,
    req: Request,
    out: _Out,
    tap: _Tap,
    index: int,
    known: Rep | None,
) -> tuple[int, int, str, str] | None:
    """Answers a first slice request can get that are no slice: relayed, or the request
    passed through. None when it is a slice (or a whole 200 of known length)."""
    head, fetch = tap.head, tap.fetch
    extra = [_forward_status(tap), _server_timing(head)]
    if head.status in (200, 206) and fetch.rep is not None:
        return None
    if head.status == 416:
        if index == 0:  # an empty object: no range of it exists, so no slice either
            return await _pass(state, route, req, out)
        if known is not None:
            raise _Changed("object shrank")  # the producer dropped the record: start over
        if fetch.total is not None:
            fields = [(b"content-range", unsatisfied_range(fetch.total).encode()), *extra]
            return 416, await send_error(out, 416, "range not satisfiable", fields), "miss", ""
    # 404, 3xx, 5xx, a 200 of unknown length (chunked): relayed as the origin sent it (a
    # 200's preconditions are answered here; a Range of unknown length is ignored).
    status, sent = await deliver_fetch(
        out,
        req.method,
        req.headers,
        fetch,
        head,
        extra,
        tap.cid,
        local_semantics=head.status == 200,
    )
    return status, sent, tap.how, ""


async def _pass(
    state: AppState, route: Route, req: Request, out: _Out
) -> tuple[int, int, str, str]:
    fetch = new_fetch(req.key)
    cid = fetch.subscribe()
    state.spawn(produce_pass(state, fetch, route, req, b"", True))
    try:
        head = await fetch.head
        value = cache_status.forward(
            head.fwd, fwd_status=head.status, stored=False, collapsed=False
        )
        extra = [(b"cache-status", value.encode()), _server_timing(head)]
        status, sent = await deliver_fetch(
            out, req.method, req.headers, fetch, head, extra, cid, local_semantics=False
        )
        return status, sent, "pass", ""
    finally:
        fetch.unsubscribe(cid)


def _forward_status(tap: _Tap) -> Header:
    head = tap.head
    value = cache_status.forward(
        head.fwd,
        fwd_status=head.fwd_status,
        stored=head.shareable and head.status in (200, 206),
        collapsed=tap.how == "collapsed",
        detail=head.detail or "slices",
    )
    return _cache_status(head.upstream_status, value)


def _cache_status(upstream: bytes | None, ours: str) -> Header:
    value = ours.encode()
    return (b"cache-status", upstream + b", " + value if upstream else value)


def _server_timing(head: Head) -> Header:
    return (b"server-timing", f"origin;dur={head.origin_ms:.1f}".encode())


def _status_fields(
    rep: Rep, piece: Piece | None, tier: str, now: float
) -> tuple[list[Header], str]:
    """Age/Cache-Status of the response and its outcome label, from the slice that decided
    it (the first one it reads), or from the record when it reads none (HEAD, 304, 416)."""
    if isinstance(piece, _Tap):
        return [_forward_status(piece), _server_timing(piece.head)], piece.how
    entry, where = (piece.entry, piece.tier) if piece is not None else (rep.record, tier)
    stale = now >= entry.fresh_until
    value = cache_status.hit(entry.fresh_until - now, where, stale=stale)
    fields = [(b"age", str(entry.age(now)).encode()), _cache_status(entry.upstream_status, value)]
    return fields, "stale" if stale else "hit"


async def _respond(
    req: Request,
    out: _Out,
    reader: _Reader,
    rep: Rep,
    decided: Piece | None,
    tier: str,
    now: float,
) -> tuple[int, int, str, str]:
    record, total = rep.record, rep.total
    method, headers = req.method, req.headers
    head_only = method == "HEAD"
    if any(name in headers for name in PRECONDITION_FIELDS):
        pre = evaluate_preconditions(method, headers, record.etag, record.last_modified)
        if pre is not None:
            extra, outcome = _status_fields(rep, decided, tier, now)
            if pre == 412:
                sent = await send_error(out, 412, "precondition failed", extra)
                return 412, sent, outcome, ""
            kept = [(k, v) for k, v in record.headers if k in NOT_MODIFIED_FIELDS]
            await send_response(out, 304, kept + extra, head_only=True)
            return 304, 0, outcome, ""
    ranges = _wanted(headers, rep)
    if isinstance(ranges, str):
        extra, outcome = _status_fields(rep, decided, tier, now)
        fields = [(b"content-range", unsatisfied_range(total).encode()), *extra]
        return 416, await send_error(out, 416, "range not satisfiable", fields), outcome, ""
    spans = ranges or ([ByteRange(0, total - 1)] if total else [])
    if not head_only and spans and reader.whole is None:
        # The first slice is in hand before the head goes out: a change found there
        # restarts the response instead of breaking it.
        index = spans[0].start // reader.size
        piece = reader.ready.get(index) or await reader.piece(index, rep, verify=False)
        reader.check(piece, rep)
        reader.ready[index] = piece
        decided = piece
    extra, outcome = _status_fields(rep, decided, tier, now)
    base = record.headers
    if ranges is None:
        status = 200
        fields = [*base, (b"content-length", str(total).encode()), (b"accept-ranges", b"bytes")]
    elif len(ranges) == 1:
        status = 206
        r = ranges[0]
        fields = [
            *base,
            (b"content-range", content_range(r, total).encode()),
            (b"content-length", str(r.length).encode()),
            (b"accept-ranges", b"bytes"),
        ]
    else:
        status = 206
        boundary = make_boundary()
        parts, length = multipart_byteranges(ranges, total, record.content_type, boundary)
        fields = [
            *(h for h in base if h[0] != b"content-type"),
            (b"content-type", f"multipart/byteranges; boundary={boundary}".encode()),
            (b"content-length", str(length).encode()),
            (b"accept-ranges", b"bytes"),
        ]
    await out({"type": "http.response.start", "status": status, "headers": fields + extra})
    if head_only:
        await out({"type": "http.response.body", "body": b""})
        return status, 0, outcome, ""
    if ranges is not None and len(ranges) > 1:
        for part, r in zip(parts, ranges, strict=False):
            await out({"type": "http.response.body", "body": part, "more_body": True})
            await reader.copy(out, r.start, r.end + 1, rep)
        await out({"type": "http.response.body", "body": parts[-1], "more_body": True})
    else:
        for r in spans:
            await reader.copy(out, r.start, r.end + 1, rep)
    await out({"type": "http.response.body", "body": b""})
    return status, out.sent, outcome, ""
