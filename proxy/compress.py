"""Compression: a stored entry sent in the content coding the client takes.

    choose     Accept-Encoding (proxy/http/encoding.py negotiate) and the route's policy:
               as stored, a coding to make (br, zstd, gzip), or "identity" (the origin's
               own coding undone for a client that does not take it)
    derive     the form is an entry of its own under `encoded_key(<storage key>, coding)`
               (proxy/cache/keys.py), made once: one producer per key (state.inflight),
               large bodies on a thread, stored through the Cache (every tier its size
               band takes), linked to its URL (Cache.link) so a purge or invalidation of
               the URL drops it, with the source's surrogate keys so tag purges do too
    deliver    deliver_entry over the form: its own ETag ("v1" -> "v1-gzip"), Vary:
               Accept-Encoding, 304/412 and HEAD as for any entry

A form is used only while it was made from the stored entry at hand (same response
time): a refetch or a 304 refresh of the source makes it again, so no form outlives its
source, in any tier or instance. Requests with Range are answered on the identity form.
The fresh-hit fast path never compresses: it leaves compressible hits of clients that
send Accept-Encoding to this slower path.
"""

from __future__ import annotations

import asyncio
import gzip
import zlib
from collections.abc import Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING

import brotli
import zstandard

from config.compression import CompressionSettings
from proxy.cache.collapse import Fetch, Head
from proxy.cache.entry import Entry
from proxy.cache.keys import encoded_key
from proxy.cache.store import variant_storage_key
from proxy.deliver import deliver_entry, deliver_fetch, send_error
from proxy.http.encoding import (
    Policy,
    acceptable,
    content_coding,
    encoded_etag,
    negotiate,
)
from proxy.http.vary import merge_vary

if TYPE_CHECKING:
    from proxy.exchange import Exchange
    from proxy.serve.state import AppState

Header = tuple[bytes, bytes]

NO_HEADERS: Mapping[str, str] = {}
VARY = (b"vary", b"Accept-Encoding")
# Fields of the source an encoded form does not repeat: its own are set.
REPLACED = frozenset({b"etag", b"content-encoding", b"content-md5", b"digest", b"repr-digest"})


class Unacceptable(Exception):
    """The stored body is in a coding the client does not take, and it cannot be undone
    (an unknown coding, a damaged body, or more than max_bytes once decoded)."""


def route_policy(settings: CompressionSettings, route_on: bool) -> Policy | None:
    """A route's rules, or None when compression is off for it."""
    if not settings.enabled or not route_on or not settings.encodings:
        return None
    return Policy(settings.types, settings.min_bytes, settings.max_bytes, settings.encodings)


def vary_for(
    policy: Policy | None,
    status: int,
    fields: Mapping[str, str],
    vary: tuple[str, ...] | None,
    headers: list[Header],
    size: int | None,
) -> tuple[tuple[str, ...] | None, list[Header]]:
    """What an origin answer varies on, for the cache and for clients. An answer in the
    origin's own coding is stored per Accept-Encoding (the cache keys it so even when
    the origin forgot to say); a compressible one tells clients and downstream caches
    `Vary: Accept-Encoding` on every form, identity included. A 304 refreshes a stored
    200, so it is judged as one."""
    if content_coding(fields.get("content-encoding")) is not None:
        if vary is not None and "accept-encoding" not in vary:
            vary = tuple(sorted({*vary, "accept-encoding"}))
        return vary, merge_vary([*headers, VARY])
    if policy is not None and policy.applies(
        200 if status == 304 else status,
        fields.get("content-type"),
        None,
        fields.get("cache-control"),
        None if status == 304 else size,
    ):
        return vary, merge_vary([*headers, VARY])
    return vary, headers


def _field(headers: list[Header], name: bytes) -> str | None:
    values = [v.decode("latin-1") for k, v in headers if k == name]
    return ", ".join(values) if values else None


def choose(policy: Policy | None, req_headers: Mapping[str, str], entry: Entry) -> str | None:
    """The form to send: None = as stored, "identity" = the origin's coding undone, or
    a coding to make."""
    accept = req_headers.get("accept-encoding")
    own = content_coding(_field(entry.headers, b"content-encoding"))
    if own is not None:
        return None if acceptable(accept, own) else "identity"
    if policy is None or "range" in req_headers or accept is None:
        return None
    if not policy.applies(
        entry.status,
        entry.content_type,
        None,
        _field(entry.headers, b"cache-control"),
        len(entry.body),
    ):
        return None
    return negotiate(accept, policy.codings)


# -- making a form -----------------------------------------------------------------------


def encode(body: bytes, coding: str, settings: CompressionSettings) -> bytes:
    if coding == "gzip":
        return gzip.compress(body, compresslevel=settings.gzip_level, mtime=0)
    if coding == "br":
        return bytes(brotli.compress(body, quality=settings.brotli_quality))
    if coding == "zstd":
        return bytes(zstandard.ZstdCompressor(level=settings.zstd_level).compress(body))
    raise ValueError(f"unknown coding {coding!r}")


def decode(body: bytes, coding: str, limit: int) -> bytes:
    """`body` without its content coding; Unacceptable when the coding is unknown, the
    body damaged, or the result larger than `limit` (never more is held)."""
    try:
        if coding in ("gzip", "x-gzip", "deflate"):
            out = _inflate(body, coding, limit)
        elif coding == "br":
            d = brotli.Decompressor()
            out = d.process(body, output_buffer_limit=limit + 1)
            if len(out) <= limit and not d.is_finished():
                raise Unacceptable("brotli body is truncated")
        elif coding == "zstd":
            dctx = zstandard.ZstdDecompressor()
            out = dctx.stream_reader(body, read_across_frames=True).read(limit + 1)
            if len(out) <= limit:
                _check_frames(dctx, body)
        else:
            raise Unacceptable(f"content coding {coding!r} cannot be undone")
    except (zlib.error, brotli.error, zstandard.ZstdError) as exc:
        raise Unacceptable(f"origin body is not valid {coding}") from exc
    if len(out) > limit:
        raise Unacceptable("origin body is larger than compression.max_bytes once decoded")
    return out


def _check_frames(dctx: zstandard.ZstdDecompressor, body: bytes) -> None:
    """The bounded read stops quietly at a cut frame: every frame must end. (Its output
    is what the read produced, so no more than the bound.)"""
    data = body
    while data:
        d = dctx.decompressobj()
        d.decompress(data)
        if not d.eof:
            raise Unacceptable("zstd body is truncated")
        data = d.unused_data


def _inflate(body: bytes, coding: str, limit: int) -> bytes:
    """gzip (every member) or zlib-wrapped deflate, at most limit + 1 bytes out."""
    wbits = 47 if coding != "deflate" else 15
    out = bytearray()
    data = body
    while data:
        d = zlib.decompressobj(wbits)
        out += d.decompress(data, limit + 1 - len(out))
        if len(out) > limit:
            break
        if not d.eof:
            raise Unacceptable(f"{coding} body is truncated")
        data = d.unused_data
    return bytes(out)


def form_entry(source: Entry, body: bytes, coding: str) -> Entry:
    """The source entry in another coding: its fields, freshness, times and surrogate
    keys; its own ETag, Content-Encoding and Vary."""
    headers = [(k, v) for k, v in source.headers if k not in REPLACED]
    if coding != "identity":
        headers.append((b"content-encoding", coding.encode()))
    etag = encoded_etag(source.etag, coding)
    if etag is not None:
        headers.append((b"etag", etag.encode("latin-1")))
    return Entry(
        status=source.status,
        headers=merge_vary([*headers, VARY]),
        origin_headers=[],
        body=body,
        etag=etag,
        last_modified=source.last_modified,
        content_type=source.content_type,
        response_time=source.response_time,
        freshness=source.freshness,
        upstream_status=source.upstream_status,
        request_time=source.request_time,
        tags=source.tags,
    )


class Encoding(Fetch):
    """One form being made, joined through `state.inflight` under its key so that
    concurrent requests for it share one compression."""

    def __init__(self, key: str, made_from: float) -> None:
        super().__init__(key, window=0)
        self.made_from = made_from
        self.result: asyncio.Future[Entry] = self.head.get_loop().create_future()


async def _make(state: AppState, job: Encoding, url: str, source: Entry, coding: str) -> None:
    settings = state.settings.compression
    body = source.body
    try:
        work: Callable[[], bytes]
        if coding == "identity":
            own = content_coding(_field(source.headers, b"content-encoding")) or ""
            work = partial(decode, body, own, settings.max_bytes)
            # A small coded body may expand to max_bytes (a bomb): always off the loop.
            inline = False
        else:
            work = partial(encode, body, coding, settings)
            # Small bodies cost less than a thread hop; large ones must not block the loop.
            inline = len(body) <= settings.inline_bytes
        made = work() if inline else await asyncio.to_thread(work)
        form = form_entry(source, made, coding)
        state.stats.inc("edgeshield_compressions", (coding,))
        state.stats.inc("edgeshield_compression_bytes", (coding, "in"), len(body))
        state.stats.inc("edgeshield_compression_bytes", (coding, "out"), len(made))
        state.cache.link(url, job.key)  # before storing: no form without its link
        state.cache.store(job.key, form, NO_HEADERS)
        job.result.set_result(form)
    except Unacceptable as exc:
        _fail(job, exc)
    except asyncio.CancelledError:
        _fail(job, Unacceptable("shutting down"))
        raise
    except Exception:  # a bug must not leave waiters hanging
        state.log.exception("compressing %r failed", job.key)
        _fail(job, Unacceptable(f"the {coding} form could not be made"))
    finally:
        state.inflight.remove(job)


def _fail(job: Encoding, exc: Unacceptable) -> None:
    job.result.set_exception(exc)
    job.result.exception()  # retrieved: every waiter may have gone


async def derive(ex: Exchange, source: Entry, coding: str) -> Entry:
    """The source in `coding`: stored already (and made from this source), being made
    (joined), or made now. Raises Unacceptable."""
    state, req, url = ex.state, ex.req, ex.key
    skey = variant_storage_key(url, source.vary, req.headers) if source.vary else url
    key = encoded_key(skey, coding)
    found = await state.cache.find(key, NO_HEADERS, stream=False)
    made = found.entry
    if made is not None and made.response_time == source.response_time:
        return made
    job = state.inflight.get(key)
    if not isinstance(job, Encoding) or job.made_from != source.response_time:
        job = Encoding(key, source.response_time)
        state.inflight.add(job)
        state.spawn(_make(state, job, url, source, coding))
    return await asyncio.shield(job.result)


async def representation(ex: Exchange, entry: Entry) -> Entry:
    """The entry in the form this request gets (see `choose`). Raises Unacceptable."""
    coding = choose(ex.route.compression, ex.req.headers, entry)
    return entry if coding is None else await derive(ex, entry, coding)


# -- delivering --------------------------------------------------------------------------


async def deliver_stored(ex: Exchange, entry: Entry, extra: list[Header]) -> tuple[int, int]:
    """A stored entry (its body in memory) in the form the client takes."""
    req = ex.req
    try:
        form = await representation(ex, entry)
    except Unacceptable as exc:
        ex.state.log.info("%s: %s", ex.key.partition("?")[0], exc)
        return 502, await send_error(ex.send, 502, str(exc), extra)
    return await deliver_entry(ex.send, req.method, req.headers, form, extra)


def _whole_first(ex: Exchange, fetch: Fetch, head: Head) -> bool:
    """Is this miss answered from the stored entry once its body is in (in another
    form) rather than streamed as it arrives? Only for bodies the cache keeps whole."""
    if head.status != 200 or not head.shareable or not fetch.keep_all:
        return False
    req = ex.req
    accept = req.headers.get("accept-encoding")
    fields = {k.decode("latin-1"): v.decode("latin-1") for k, v in head.headers}
    own = content_coding(fields.get("content-encoding"))
    if own is not None:
        return not acceptable(accept, own)
    policy = ex.route.compression
    return (
        policy is not None
        and "range" not in req.headers
        and negotiate(accept, policy.codings) is not None
        and policy.applies(
            200, head.content_type, None, fields.get("cache-control"), head.content_length
        )
    )


async def deliver_miss(
    ex: Exchange, fetch: Fetch, extra: list[Header], cid: int
) -> tuple[int, int]:
    """A miss: streamed as it arrives, unless the client takes another form of it;
    then the body is awaited (its cursor `cid` keeps every chunk meanwhile), stored, and
    the stored entry delivered in that form. A fetch that turns out too large to keep
    is streamed after all."""
    req, send = ex.req, ex.send
    head = fetch.head.result()
    if _whole_first(ex, fetch, head):
        reader = fetch.subscribe()
        try:
            async for _ in fetch.stream(reader):
                if not fetch.keep_all:
                    break
        finally:
            fetch.unsubscribe(reader)
        stored = ex.state.cache.lookup(ex.key, req.headers) if fetch.stored else None
        if (
            fetch.done
            and type(stored) is Entry
            and stored.etag == head.etag
            and len(stored.body) == fetch.received
        ):
            return await deliver_stored(ex, stored, extra)
        own = content_coding(_field(head.headers, b"content-encoding"))
        if own is not None and not acceptable(req.headers.get("accept-encoding"), own):
            reason = f"origin sent {own}, which the client does not accept, and it was not kept"
            return 502, await send_error(send, 502, reason, extra)
    return await deliver_fetch(send, req.method, req.headers, fetch, extra, cid)


__all__ = [
    "Unacceptable",
    "choose",
    "decode",
    "deliver_miss",
    "deliver_stored",
    "derive",
    "encode",
    "form_entry",
    "representation",
    "route_policy",
    "vary_for",
]
