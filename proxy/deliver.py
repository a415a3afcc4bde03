"""Deliver: the client-facing answer from a stored entry or an in-flight fetch.

Ranges (RFC 9110 14), preconditions (RFC 9110 13) and HEAD are answered here, from
whatever the cache holds, identically for hits and misses. Each function returns the
status sent and the body bytes sent, for the log and the metrics."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, NamedTuple, Protocol

from proxy.cache.collapse import Fetch, FetchAborted, Head
from proxy.cache.entry import Entry
from proxy.http import cache_status
from proxy.http.conditionals import (
    NOT_MODIFIED_FIELDS,
    evaluate_preconditions,
    if_range_matches,
    stored_date,
)
from proxy.http.dates import format_http_date
from proxy.http.ranges import (
    ByteRange,
    content_range,
    make_boundary,
    multipart_byteranges,
    parse_range,
    unsatisfied_range,
)

Send = Callable[[dict[str, Any]], Awaitable[None]]
Header = tuple[bytes, bytes]

# An in-memory body up to WHOLE_MAX goes out as one message (the stored object itself: no
# copy here), a larger one in SEND_SLICE pieces: what one stalled client can make a server
# that copies unsent data (granian, asyncio's transport) hold per response. Each message
# costs a send and a drain check (256 KiB messages cost 1 MiB hits ~10 % CPU), but a
# 100 MiB hit streamed faster in 512 KiB pieces than in 1 MiB ones on granian (paired
# runs of nginx_bench's stream: 1,382 / 2,580 against 1,219 / 1,505 MiB/s): each piece
# is copied twice (the slice, then granian's own copy), and half a MiB stays in cache.
WHOLE_MAX = 1024 * 1024
SEND_SLICE = 512 * 1024

PRECONDITION_FIELDS = ("if-none-match", "if-modified-since", "if-match", "if-unmodified-since")


async def send_response(
    send: Send, status: int, headers: list[Header], body: bytes = b"", *, head_only: bool = False
) -> int:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head_only else body})
    return 0 if head_only else len(body)


def fresh_hit_fields(entry: Entry, age: int, now: float, tier: str = "memory") -> list[Header]:
    """Age and Cache-Status of a fresh hit from `tier` (RFC 9111 5.1, RFC 9211 2: an
    upstream cache's member comes first)."""
    value = cache_status.fresh_hit(entry.fresh_until - now, tier.encode())
    if entry.upstream_status:
        value = entry.upstream_status + b", " + value
    return [(b"age", b"%d" % age), (b"cache-status", value)]


def stale_hit_fields(entry: Entry, now: float, tier: str = "memory") -> list[Header]:
    """Age and Cache-Status of a stale hit served while it is refreshed in the background
    (RFC 5861 stale-while-revalidate)."""
    value = cache_status.hit(entry.fresh_until - now, tier, stale=True).encode()
    if entry.upstream_status:
        value = entry.upstream_status + b", " + value
    return [(b"age", b"%d" % entry.age(now)), (b"cache-status", value)]


def cache_status_field(upstream: bytes | None, ours: str) -> Header:
    """RFC 9211 2: each cache appends its member to what the caches before it said."""
    value = ours.encode()
    return (b"cache-status", upstream + b", " + value if upstream else value)


def origin_timing_field(head: Head) -> Header:
    return (b"server-timing", f"origin;dur={head.origin_ms:.1f}".encode())


def retry_after_fields(exc: Exception) -> list[Header]:
    """Every origin of the group is down: say when to come back (RFC 9110 10.2.3)."""
    seconds = getattr(exc, "retry_after", None)
    return [(b"retry-after", str(seconds).encode())] if seconds is not None else []


def failed_fetch_fields(exc: Exception, reason: str, *, collapsed: bool = False) -> list[Header]:
    """The fields of an error answered for a fetch that failed before its head."""
    value = cache_status.forward(
        "miss", fwd_status=None, stored=False, collapsed=collapsed, detail=reason
    )
    return [(b"cache-status", value.encode()), *retry_after_fields(exc)]


async def send_error(
    send: Send, status: int, reason: str, extra: list[Header] | None = None
) -> int:
    body = f"{status} {reason}\n".encode()
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        (b"date", format_http_date(time.time()).encode()),
        *(extra or ()),
    ]
    return await send_response(send, status, headers, body)


LOCAL_FIELDS = frozenset({"range", *PRECONDITION_FIELDS})


class Choice(NamedTuple):
    """What a request gets over a representation (`choose_answer`)."""

    status: int | None  # 206, 304, 412 or 416; None: the representation's own, whole
    ranges: list[ByteRange]  # a 206's: one range, or the parts of a multipart answer
    first: int | None  # offset of the first byte of it sent; None: none (HEAD, 304...)


def choose_answer(
    method: str,
    req_headers: Mapping[str, str],
    status: int,
    etag: str | None,
    last_modified: float | None,
    size: int | None,
    *,
    date: float | None = None,
) -> Choice:
    """The answer, decided once for every body source: preconditions (RFC 9110 13.2.2;
    If-Modified-Since against the stored `date` without Last-Modified, RFC 9111 4.3.2),
    then Range and If-Range (RFC 9110 14.2), both only over a 200. `size` None: not known
    yet (a chunked stream), so Range is ignored."""
    whole = Choice(None, [], None if method == "HEAD" or size == 0 else 0)
    if status != 200 or LOCAL_FIELDS.isdisjoint(req_headers):
        return whole
    pre = evaluate_preconditions(method, req_headers, etag, last_modified, date=date)
    if pre is not None:
        return Choice(pre, [], None)
    ranges = None if size is None else wanted_ranges(req_headers, size, etag, last_modified)
    if ranges is None:
        return whole
    if isinstance(ranges, str):  # "unsatisfiable"
        return Choice(416, [], None)
    return Choice(206, ranges, None if method == "HEAD" else ranges[0].start)


def wanted_ranges(
    headers: Mapping[str, str], size: int, etag: str | None, lm: float | None
) -> list[ByteRange] | str | None:
    """The Range asked for over `size` bytes, when If-Range lets it apply."""
    value = headers.get("range")
    if value is None:
        return None
    if "if-range" in headers and not if_range_matches(headers["if-range"], etag, lm):
        return None
    return parse_range(value, size)


async def _refuse_body(
    send: Send, status: int, headers: list[Header], extra: list[Header]
) -> tuple[int, int]:
    """A 304 (the fields a 304 repeats, RFC 9110 15.4.5) or a 412."""
    if status == 412:
        return 412, await send_error(send, 412, "precondition failed", extra)
    kept = [(k, v) for k, v in headers if k in NOT_MODIFIED_FIELDS]
    return status, await send_response(send, status, kept + extra, head_only=True)


class Body(Protocol):
    """Where an answer's bytes come from: memory or a file region (proxy/cache/disk.py
    BodyStream). Every decision (preconditions, ranges, multipart, HEAD) is made once,
    in deliver_entry; only the bytes differ."""

    @property
    def size(self) -> int: ...

    def pieces(self, start: int, end: int) -> AsyncIterator[bytes | memoryview]:
        """Bytes [start, end) in bounded pieces, none read before the last was taken."""
        ...


class InMemory:
    """A body held in memory, handed out whole up to WHOLE_MAX, else in pieces of
    SEND_SLICE bytes, so a stalled client holds a slice, not the body. Pieces are bytes,
    ASGI's type (a body of one piece is the stored object itself): granian took
    memoryview slices ten times slower than bytes slices, a 100 MiB hit at 60 MiB/s with
    its worker's CPU busy."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    @property
    def size(self) -> int:
        return len(self.data)

    async def pieces(self, start: int, end: int) -> AsyncIterator[bytes | memoryview]:
        data = self.data
        if 0 < end - start <= WHOLE_MAX:
            yield data[start:end]
            return
        for lo in range(start, end, SEND_SLICE):
            yield data[lo : min(end, lo + SEND_SLICE)]


async def send_sliced(send: Send, body: bytes) -> None:
    """The whole of a large in-memory body, SEND_SLICE bytes per message (one message up
    to WHOLE_MAX)."""
    await _send_pieces(send, InMemory(body).pieces(0, len(body)), len(body))


async def _send_pieces(send: Send, pieces: AsyncIterator[bytes | memoryview], total: int) -> int:
    """Send `total` bytes of pieces, each awaiting the server's backpressure; the last
    one ends the response (an empty one if there was none)."""
    sent = 0
    async for piece in pieces:
        sent += len(piece)
        await send({"type": "http.response.body", "body": piece, "more_body": sent < total})
    if not total:
        await send({"type": "http.response.body", "body": b""})
    return sent


async def deliver_entry(
    send: Send,
    method: str,
    req_headers: Mapping[str, str],
    entry: Entry,
    extra: list[Header],
    body: Body | None = None,
) -> tuple[int, int]:
    """`extra` holds the per-response fields (Age, Cache-Status, Server-Timing). The
    bytes come from `body`, default the entry's own; `entry` describes the whole object
    either way (a disk entry's own body is empty)."""
    source = InMemory(entry.body) if body is None else body
    head_only = method == "HEAD"
    date = stored_date(entry.headers, entry.response_time)
    choice = choose_answer(
        method, req_headers, entry.status, entry.etag, entry.last_modified, source.size, date=date
    )
    if choice.status in (304, 412):
        return await _refuse_body(send, choice.status, entry.headers, extra)
    if choice.status in (206, 416):
        return await _send_ranges(
            send, entry.headers, source, choice, entry.content_type, extra, head_only
        )
    await send(
        {
            "type": "http.response.start",
            "status": entry.status,
            "headers": entry.full_headers + extra,
        }
    )
    if head_only:
        await send({"type": "http.response.body", "body": b""})
        return entry.status, 0
    return entry.status, await _send_pieces(send, source.pieces(0, source.size), source.size)


def _one_range_fields(
    headers: list[Header], r: ByteRange, size: int, extra: list[Header]
) -> list[Header]:
    """The head of a single-range 206 (RFC 9110 14.4, 15.3.7)."""
    return [
        *headers,
        (b"content-range", content_range(r, size).encode()),
        (b"content-length", str(r.length).encode()),
        (b"accept-ranges", b"bytes"),
        *extra,
    ]


async def _unsatisfiable(send: Send, size: int, extra: list[Header]) -> tuple[int, int]:
    fields = [(b"content-range", unsatisfied_range(size).encode()), *extra]
    return 416, await send_error(send, 416, "range not satisfiable", fields)


async def _send_ranges(
    send: Send,
    headers: list[Header],
    body: Body,
    choice: Choice,
    content_type: str | None,
    extra: list[Header],
    head_only: bool,
) -> tuple[int, int]:
    """A 206 of the choice's ranges (one, or multipart), or its 416."""
    size, ranges = body.size, choice.ranges
    if choice.status == 416:
        return await _unsatisfiable(send, size, extra)
    base = [h for h in headers if h[0] != b"content-type"] if len(ranges) > 1 else headers
    if len(ranges) == 1:
        r = ranges[0]
        fields = _one_range_fields(base, r, size, extra)
        pieces = body.pieces(r.start, r.end + 1)
        total = r.length
    else:
        boundary = make_boundary()
        parts, total = multipart_byteranges(ranges, size, content_type, boundary)
        fields = [
            *base,
            (b"content-type", f"multipart/byteranges; boundary={boundary}".encode()),
            (b"content-length", str(total).encode()),
            (b"accept-ranges", b"bytes"),
            *extra,
        ]
        pieces = _multipart(body, ranges, parts)
    await send({"type": "http.response.start", "status": 206, "headers": fields})
    if head_only:
        await send({"type": "http.response.body", "body": b""})
        return 206, 0
    return 206, await _send_pieces(send, pieces, total)


async def _multipart(
    body: Body, ranges: list[ByteRange], parts: list[bytes]
) -> AsyncIterator[bytes | memoryview]:
    """multipart/byteranges: each part's head, then its bytes; the closing boundary."""
    for head, r in zip(parts, ranges, strict=False):
        yield head
        async for piece in body.pieces(r.start, r.end + 1):
            yield piece
    yield parts[-1]


async def deliver_fetch(
    send: Send,
    method: str,
    req_headers: Mapping[str, str],
    fetch: Fetch,
    extra: list[Header],
    cid: int,
    *,
    local_semantics: bool = True,
) -> tuple[int, int]:
    """Stream an in-flight fetch whose head has come (reader `cid`). With
    `local_semantics`, ranges and preconditions are answered here from the stream;
    otherwise (pass mode) the origin's answer is relayed."""
    head = fetch.head.result()
    head_only = method == "HEAD"
    if local_semantics:
        choice = choose_answer(
            method, req_headers, head.status, head.etag, head.last_modified, head.content_length
        )
        if choice.status in (304, 412):
            return await _refuse_body(send, choice.status, head.headers, extra)
        if choice.status in (206, 416):
            served = await _stream_range(send, choice, fetch, head, extra, head_only, cid)
            if served is not None:
                return served
    headers = list(head.headers)
    if head.content_length is not None:
        headers.append((b"content-length", str(head.content_length).encode()))
    if local_semantics and head.status == 200:
        headers.append((b"accept-ranges", b"bytes"))
    await send({"type": "http.response.start", "status": head.status, "headers": headers + extra})
    if head_only:
        await send({"type": "http.response.body", "body": b""})
        return head.status, 0
    return head.status, await _stream(send, fetch, cid, 0, None)


async def _stream_range(
    send: Send,
    choice: Choice,
    fetch: Fetch,
    head: Head,
    extra: list[Header],
    head_only: bool,
    cid: int,
) -> tuple[int, int] | None:
    """Ranges on a response still arriving (of known length: `choose_answer` ignores Range
    otherwise). None: ignore Range and send the full body, which RFC 9110 14.2 allows;
    done for several ranges of an object too large to keep whole."""
    size, ranges = head.content_length or 0, choice.ranges
    if choice.status == 416:
        return await _unsatisfiable(send, size, extra)
    if len(ranges) == 1:
        r = ranges[0]
        fields = _one_range_fields(head.headers, r, size, extra)
        await send({"type": "http.response.start", "status": 206, "headers": fields})
        if head_only:
            await send({"type": "http.response.body", "body": b""})
            return 206, 0
        return 206, await _stream(send, fetch, cid, r.start, r.end + 1)
    if not fetch.keep_all:
        return None
    try:
        async for _ in fetch.stream(cid):
            pass  # wait for the whole body: bounded, its declared length fits the cache
    except FetchAborted as exc:
        return 502, await send_error(send, 502, f"origin failed: {exc}", extra)
    body = InMemory(fetch.body())
    return await _send_ranges(send, head.headers, body, choice, head.content_type, extra, head_only)


async def _stream(send: Send, fetch: Fetch, cid: int, start: int, end: int | None) -> int:
    """Send bytes [start, end) of the fetch as they arrive. If the producer fails after
    the head went out, FetchAborted propagates: the caller leaves the response
    incomplete, so the client sees a broken transfer, never a silently short body."""
    pos = sent = 0
    async for chunk in fetch.stream(cid):
        lo, hi = pos, pos + len(chunk)
        pos = hi
        if hi <= start:
            continue
        piece = chunk[
            max(0, start - lo) : (len(chunk) if end is None else min(len(chunk), end - lo))
        ]
        await send({"type": "http.response.body", "body": piece, "more_body": True})
        sent += len(piece)
        if end is not None and hi >= end:
            break
    await send({"type": "http.response.body", "body": b""})
    return sent
