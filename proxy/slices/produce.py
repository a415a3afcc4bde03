"""Slice producers: one ranged origin request per slice, on fetch.py's exchange and pump.
Each answer stores the slice and keeps the object record in step with its version."""

from __future__ import annotations

from dataclasses import dataclass, replace

from proxy.cache.collapse import Head
from proxy.cache.entry import Entry
from proxy.cache.keys import slice_key
from proxy.exchange import Exchange
from proxy.fetch import (
    Timing,
    entry_head,
    exchange,
    keep,
    make_entry,
    origin_head,
    origin_request,
    present_entry,
    pump,
    refresh_304,
)
from proxy.http.freshness import Freshness
from proxy.http.ranges import (
    ByteRange,
    content_range,
    parse_unsatisfied_range,
    slice_content_range,
    slice_of,
    slice_range_field,
)
from proxy.slices.model import (
    NO_HEADERS,
    Rep,
    SliceFetch,
    drop_object,
    fields_without,
    keep_record,
    make_record,
    shared,
    slice_shape,
    sliceable,
    store_record,
    usable_slice,
)
from routing.origins.base import OriginError, OriginResponse


@dataclass(frozen=True, slots=True)
class _Job:
    """One slice fetch: slice `index` of the exchange's object; `known` is the version
    the requester expects."""

    ex: Exchange
    fetch: SliceFetch
    index: int
    known: Rep | None
    size: int  # the slice size: the route's slice_bytes, or [cache] auto_slice_bytes


def start_slice_fetch(
    ex: Exchange, index: int, stale: Entry | None, known: Rep | None, register: bool, size: int
) -> SliceFetch:
    """The fetch of slice `index` of `size` bytes (`register`: for others to join);
    `stale`: a stored copy of it to revalidate."""
    fetch = SliceFetch(slice_key(ex.key, index))
    if register:
        ex.state.inflight.add(fetch)
    ex.state.spawn(produce_slice(_Job(ex, fetch, index, known, size), stale))
    return fetch


async def produce_slice(job: _Job, stale: Entry | None) -> None:
    """Fill the job's fetch with its slice, store it, keep the record in step. `stale` is
    a stored copy of the slice to revalidate. Never raises: failures reach consumers
    through the fetch."""
    state, fetch, route, req = job.ex.state, job.fetch, job.ex.route, job.ex.req
    oreq = origin_request(route, req, cacheable=True, stale=stale)
    # Ranges of the identity coding only: slices of differently encoded bodies never mix.
    oreq.headers = [h for h in oreq.headers if h[0] != "accept-encoding"]
    oreq.headers += [
        ("accept-encoding", "identity"),
        ("range", slice_range_field(job.index, job.size)),
    ]

    def present(entry: Entry, detail: str, fwd_status: int | None, origin_ms: float) -> None:
        _present(job, entry, detail, fwd_status, origin_ms)

    answer = await exchange(state, fetch, route, oreq, stale, present, whole=False)
    if answer is None:
        return
    resp, t = answer
    try:
        if stale is not None and resp.status == 304:
            _refresh(job, stale, resp, t)
            return
        ranged = resp.status == 206  # clients get no Content-Range of a slice's own
        freshness, head = origin_head(
            route,
            req,
            resp,
            t,
            fwd="stale" if stale is not None else "miss",
            client_fields=fields_without(resp.headers, "content-range") if ranged else None,
        )
        answers = {206: _slice_answer, 200: _whole_answer}
        await answers.get(resp.status, _other_answer)(job, resp, t, freshness, head)
    finally:
        state.inflight.remove(fetch)
        await resp.aclose()


def _present(
    job: _Job, entry: Entry, detail: str, fwd_status: int | None, origin_ms: float
) -> None:
    """The stored slice stands in for the origin's answer (stale-if-error)."""
    total = slice_shape(entry, job.index, job.size)
    if total is not None:
        then = Timing(entry.request_time, entry.response_time, 0.0, "")
        fields = fields_without(entry.origin_headers, "content-range")
        head = entry_head(entry, fwd="stale", fwd_status=fwd_status, origin_ms=origin_ms)
        job.fetch.rep = make_record(head, fields, entry.freshness, then, total, job.size)
    present_entry(
        job.fetch, entry, fwd="stale", fwd_status=fwd_status, origin_ms=origin_ms, detail=detail
    )


def _refresh(job: _Job, stale: Entry, resp: OriginResponse, t: Timing) -> None:
    """304 to a conditional slice request: the stored slice is current again."""
    state, fetch, size = job.ex.state, job.fetch, job.size
    freshness, head, refreshed = refresh_304(
        job.ex.route, job.ex.req, resp, stale, t, drop=("content-range",)
    )
    total = slice_shape(refreshed, job.index, size)
    storable = sliceable(head) and total is not None
    if total is not None:
        fields = fields_without(refreshed.origin_headers, "content-range")
        fetch.rep = make_record(head, fields, freshness, t, total, size)
        keep_record(state, job.ex.key, fetch.rep, job.known, size, storable=storable)
    if storable and state.cache.store(fetch.key, refreshed, NO_HEADERS):
        fetch.stored = True
    present_entry(fetch, refreshed, fwd="stale", fwd_status=304, origin_ms=t.origin_ms)


async def _slice_answer(
    job: _Job, resp: OriginResponse, t: Timing, freshness: Freshness, head: Head
) -> None:
    """206: exactly the slice asked for, else the answer is refused."""
    state, fetch, size = job.ex.state, job.fetch, job.size
    content_range_value = next((v for k, v in resp.headers if k == "content-range"), None)
    shape = slice_content_range(content_range_value, job.index, size)
    if shape is None or resp.content_length not in (None, shape[0]):
        fetch.fail(OriginError(t.origin, "206 is not the slice asked for"))
        return
    length, total = shape
    storable = sliceable(head)
    head = replace(shared(head, storable), content_length=length)
    fields = fields_without(resp.headers, "content-range")
    fetch.rep = make_record(head, fields, freshness, t, total, size)
    keep_record(state, job.ex.key, fetch.rep, job.known, size, storable=storable)
    if not storable:
        state.inflight.remove(fetch)  # waiters that came before the head fetch their own
    fetch.set_head(head)
    whole = await pump(state, fetch, resp, job.ex.route, t.origin, length=length)
    if whole and storable and fetch.keep_all:
        entry = make_entry(head, resp.headers, fetch.body(), freshness, t)
        keep(state, fetch, entry, NO_HEADERS)


async def _whole_answer(
    job: _Job, resp: OriginResponse, t: Timing, freshness: Freshness, head: Head
) -> None:
    """200: the origin ignored Range. The stream is the whole representation; readers
    take what they need from it, and each whole slice streaming past is stored."""
    state, fetch, size = job.ex.state, job.fetch, job.size
    length = resp.content_length
    storable = sliceable(head) and length is not None
    head = shared(head, storable)
    cutter = None
    if length is not None:
        fetch.rep = make_record(head, resp.headers, freshness, t, length, size)
        keep_record(state, job.ex.key, fetch.rep, job.known, size, storable=storable)
        if storable:
            cutter = _Cutter(job, fetch.rep, head, resp.headers, freshness, t)
    # A whole object: bounded buffering and no joiners from now on (those that came
    # before the head read it from byte 0).
    state.inflight.remove(fetch)
    fetch.stop_keeping()
    fetch.set_head(head)
    on_chunk = cutter.feed if cutter is not None else None
    await pump(state, fetch, resp, job.ex.route, t.origin, length=length, on_chunk=on_chunk)


async def _other_answer(
    job: _Job, resp: OriginResponse, t: Timing, freshness: Freshness, head: Head
) -> None:
    """416, 404, 3xx, 5xx...: relayed. A storable one replaces the record (and drops the
    slices: the object is gone or moved); a 416 also means the record's object changed."""
    state, fetch, size, known = job.ex.state, job.fetch, job.size, job.known
    status = resp.status
    if status == 416:
        fetch.total = parse_unsatisfied_range(
            next((v for k, v in resp.headers if k == "content-range"), None)
        )
        if known is not None:
            drop_object(state, job.ex.key, known, size)
        fetch.set_head(shared(head, False))
        fetch.finish()
        return
    small = resp.content_length is not None and resp.content_length <= size
    storable = sliceable(head) and small
    head = shared(head, storable)
    if storable and known is not None:
        drop_object(state, job.ex.key, known, size)
    if not storable:
        state.inflight.remove(fetch)
        if not small:
            fetch.stop_keeping()
    fetch.set_head(head)
    whole = await pump(state, fetch, resp, job.ex.route, t.origin, length=resp.content_length)
    if whole and storable and fetch.keep_all:
        entry = make_entry(head, resp.headers, fetch.body(), freshness, t)
        store_record(state, job.ex.key, entry)


class _Cutter:
    """Stores every whole slice of a 200 stream as it passes (at most one slice buffered)."""

    def __init__(
        self,
        job: _Job,
        rep: Rep,
        head: Head,
        origin_headers: list[tuple[str, str]],
        freshness: Freshness,
        t: Timing,
    ) -> None:
        self.job = job
        self.rep = rep
        self.head = replace(head, status=206)  # each slice's, from the 200's head
        self.fields = fields_without(origin_headers, "content-length", "content-range")
        self.freshness = freshness
        self.t = t
        self.index = 0
        self.buf = bytearray()

    def feed(self, chunk: bytes) -> None:
        view = memoryview(chunk)
        size = self.job.size
        while view:
            span = slice_of(self.index, size, self.rep.total)
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
        key = slice_key(self.job.ex.key, self.index)
        cache = self.job.ex.state.cache
        if usable_slice(cache.lookup(key, NO_HEADERS), self.index, self.job.size, self.rep):
            return  # already there: no lower-tier rewrite
        origin_headers = [
            *self.fields,
            ("content-range", content_range(span, self.rep.total)),
            ("content-length", str(span.length)),
        ]
        entry = make_entry(self.head, origin_headers, bytes(self.buf), self.freshness, self.t)
        cache.store(key, entry, NO_HEADERS)
