"""Deliver: the client-facing answer from a stored entry or an in-flight fetch.

Ranges (RFC 9110 14), preconditions (RFC 9110 13) and HEAD are answered here, from
whatever the cache holds, identically for hits and misses. Each function returns the
status sent and the body bytes sent, for the log and the metrics."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Protocol

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

# Bytes per body message of an in-memory body: what one stalled client can make a server
# that copies unsent data (asyncio's transport) hold per response. uvloop keeps a
# reference instead, so there a stalled memory hit costs nothing. 1 MiB, not less: each
# message costs a send and a drain check, and 256 KiB slices cost 1 MiB hits ~10 % CPU.
SEND_SLICE = 1024 * 1024

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


def _precondition(
    method: str, headers: Mapping[str, str], etag: str | None, lm: float | None
) -> int | None:
    for name in PRECONDITION_FIELDS:
        if name in headers:
            return evaluate_preconditions(method, headers, etag, lm)
    return None


def _wanted_ranges(
    headers: Mapping[str, str], size: int, etag: str | None, lm: float | None
) -> list[ByteRange] | str | None:
    value = headers.get("range")
    if value is None:
        return None
    if "if-range" in headers and not if_range_matches(headers["if-range"], etag, lm):
        return None
    return parse_range(value, size)


def _not_modified(
    status: int, headers: list[Header], extra: list[Header]
) -> tuple[int, list[Header]]:
    kept = [(k, v) for k, v in headers if k in NOT_MODIFIED_FIELDS]
    return status, kept + extra


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
    """A body held in memory, handed out as views of at most SEND_SLICE bytes: no copies,
    and a server that copies what it cannot send at once copies a slice, not the body."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    @property
    def size(self) -> int:
        return len(self.data)

    async def pieces(self, start: int, end: int) -> AsyncIterator[bytes | memoryview]:
        view = memoryview(self.data)
        for lo in range(start, end, SEND_SLICE):
            yield view[lo : min(end, lo + SEND_SLICE)]


async def send_sliced(send: Send, body: bytes) -> None:
    """The whole of a large in-memory body, SEND_SLICE bytes per message."""
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
    if entry.status == 200 and not LOCAL_FIELDS.isdisjoint(req_headers):
        date = stored_date(entry.headers, entry.response_time)  # IMS without Last-Modified
        pre = evaluate_preconditions(
            method, req_headers, entry.etag, entry.last_modified, date=date
        )
        if pre is not None:
            status, headers = _not_modified(pre, entry.headers, extra)
            if pre == 412:
                return pre, await send_error(send, 412, "precondition failed", extra)
            return status, await send_response(send, status, headers, head_only=True)
        ranges = _wanted_ranges(req_headers, source.size, entry.etag, entry.last_modified)
        if ranges is not None:
            return await _send_ranges(
                send, entry.headers, source, ranges, entry.content_type, extra, head_only
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
    ranges: list[ByteRange] | str,
    content_type: str | None,
    extra: list[Header],
    head_only: bool,
) -> tuple[int, int]:
    size = body.size
    if isinstance(ranges, str):  # "unsatisfiable"
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
    head: Head,
    extra: list[Header],
    cid: int,
    *,
    local_semantics: bool = True,
) -> tuple[int, int]:
    """Stream an in-flight fetch. With `local_semantics`, ranges and preconditions are
    answered here from the stream; otherwise (pass mode) the origin's answer is relayed."""
    head_only = method == "HEAD"
    if local_semantics and head.status == 200:
        pre = _precondition(method, req_headers, head.etag, head.last_modified)
        if pre == 412:
            return pre, await send_error(send, 412, "precondition failed", extra)
        if pre is not None:
            status, headers = _not_modified(pre, head.headers, extra)
            return status, await send_response(send, status, headers, head_only=True)
        if "range" in req_headers:
            served = await _stream_range(send, req_headers, fetch, head, extra, head_only, cid)
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
    req_headers: Mapping[str, str],
    fetch: Fetch,
    head: Head,
    extra: list[Header],
    head_only: bool,
    cid: int,
) -> tuple[int, int] | None:
    """Ranges on a response still arriving. None: ignore Range and send the full body,
    which RFC 9110 14.2 allows; done when the length is unknown (chunked origin), or for
    several ranges of an object too large to keep whole."""
    size = head.content_length
    if size is None:
        return None
    ranges = _wanted_ranges(req_headers, size, head.etag, head.last_modified)
    if ranges is None:
        return None
    if isinstance(ranges, str):
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
    return await _send_ranges(send, head.headers, body, ranges, head.content_type, extra, head_only)


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
