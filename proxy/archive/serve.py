"""The archive answer: a manifest (a cached entry or a fetch that just arrived) becomes
a ZIP whose length is known before its head goes out.

Each member's bytes are a request for its location through the same route machinery as
any client's (`pipeline.lookup`, then `pipeline.pass_` on an uncached route): hits are
served from the tiers, misses collapse with other requests and fill the cache, a member
of a resumed download is asked for with a Range. The answer itself (HEAD, 304/412,
Range, multipart, 416) is `deliver_entry`'s over an `ArchiveBody`.

A member that turns out unlike its manifest line (another length, another CRC-32 when
it was given, an error status) is found after the head went out: the response is cut
off there, as mod_zip does, so the client sees a broken transfer (the Content-Length is
never reached and the central directory never sent), never a corrupt archive that
looks complete. Ranges need every CRC-32 in the manifest (mod_zip's rule): without them
the central directory depends on bytes not read yet, so the archive is sent whole."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import zlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

from proxy.archive import signed
from proxy.archive.layout import Kind, Layout, Member, dos_time
from proxy.archive.manifest import BadManifest, Item, parse_manifest
from proxy.cache.codec import CorruptEntry
from proxy.cache.collapse import Fetch, FetchAborted, Head
from proxy.cache.disk import BodyStream
from proxy.cache.entry import Entry
from proxy.cluster.hop import vouched
from proxy.deliver import deliver_entry, send_error
from proxy.disconnect import ClientGone, until_disconnect
from proxy.exchange import Answer, Exchange, Outcome
from proxy.http.dates import parse_http_date
from proxy.http.freshness import Freshness
from proxy.request import Rejected, Request
from routing.rules import Route

Header = tuple[bytes, bytes]
log = logging.getLogger("edgeshield.archive")

MANIFEST_FIELD = b"x-archive-files"
# The manifest answer's fields the archive keeps (mod_zip passes the upstream's on).
KEPT_FIELDS = frozenset({b"content-disposition", b"cache-control", b"expires", b"last-modified"})
# The archive is made per request, never stored: its entry only describes it.
NOT_STORED = Freshness(False, "archive", 0.0, 0.0, 0.0, 0.0, False, False)
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)\Z")


class EntryFailed(Exception):
    """A member's answer differs from its manifest line: the archive is cut off."""


def wanted(ex: Exchange, status: int, headers: list[Header]) -> bool:
    """Is this answer a manifest to turn into an archive for this request? Not on a
    cluster hop: the owner answers with the manifest, and the peer the client asked
    builds the archive, as it would from the origin's answer."""
    return (
        status == 200
        and not ex.archive_entry  # a member that is itself a manifest is sent as it is
        and not vouched()
        and ex.route.policy.archives
        and ex.req.method in ("GET", "HEAD")
        and (is_manifest(headers) or signed_ask(ex))
    )


def signed_ask(ex: Exchange) -> bool:
    """A request for the signed manifest URL form (proxy/archive/signed.py)."""
    return signed.asks(ex.req.query) and signed.vouched(ex.verified)


async def refuse_unsigned(ex: Exchange) -> Answer | None:
    """A pipeline step: `?archive=zip` on an archives route without a token binding it
    is refused with 403, never relayed as the manifest's text."""
    if not ex.route.policy.archives or not signed.asks(ex.req.query) or signed_ask(ex):
        return None
    log.info("archive form refused for %s: no token binds %s", ex.req.path, signed.PARAM)
    return await _refuse(ex, 403, "archive needs a signed URL binding archive=zip", Outcome.DENY)


def is_manifest(headers: list[Header]) -> bool:
    return any(k == MANIFEST_FIELD and v.strip().lower() == b"zip" for k, v in headers)


async def from_entry(
    ex: Exchange, entry: Entry, body: BodyStream | None, outcome: Outcome
) -> Answer:
    """A stored manifest (one on the disk tier is read in, bounded)."""
    if body is None:
        return await serve_archive(ex, entry.headers, entry.body, outcome)
    limit = ex.route.policy.archive_max_manifest_bytes
    async with body:
        if body.size > limit:
            return await _refuse(ex, 502, "archive manifest too large", outcome)
        try:
            data = b"".join([bytes(p) async for p in body.pieces(0, body.size)])
        except CorruptEntry:
            return await _refuse(ex, 502, "stored manifest damaged", outcome)
    return await serve_archive(ex, entry.headers, data, outcome)


async def from_fetch(ex: Exchange, fetch: Fetch, cid: int, head: Head, outcome: Outcome) -> Answer:
    """A manifest arriving from the origin (reader `cid` of the fetch), read whole."""
    limit = ex.route.policy.archive_max_manifest_bytes
    if head.content_length is not None and head.content_length > limit:
        return await _refuse(ex, 502, "archive manifest too large", outcome)
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in fetch.stream(cid):
            size += len(chunk)
            if size > limit:
                return await _refuse(ex, 502, "archive manifest too large", outcome)
            chunks.append(chunk)
    except FetchAborted as exc:
        return await _refuse(ex, 502, f"origin failed: {exc}", outcome)
    return await serve_archive(ex, head.headers, b"".join(chunks), outcome)


async def serve_archive(
    ex: Exchange, headers: list[Header], manifest: bytes, outcome: Outcome
) -> Answer:
    policy = ex.route.policy
    try:
        items = parse_manifest(manifest, policy.archive_max_entries)
        for item in items:
            _entry_route(ex, item)  # every location checked before the head goes out
    except BadManifest as exc:
        log.warning("archive manifest refused for %s: %s", ex.req.path, exc.reason)
        return await _refuse(ex, 502, f"bad archive manifest: {exc.reason}", outcome)
    fields = _fields(headers)
    modified = parse_http_date(fields.get(b"last-modified", b"").decode("latin-1") or None)
    layout = Layout([Member(i.name, i.size, i.crc) for i in items], dos_time(modified))
    entry = _archive_entry(fields, manifest, layout, modified, ex.req.now)
    req_headers: Mapping[str, str] = ex.req.headers
    if not layout.crcs_known:  # no ranges, no If-Range: the archive is sent whole
        req_headers = {k: v for k, v in req_headers.items() if k not in ("range", "if-range")}
    body = ArchiveBody(ex, layout, items)
    work = deliver_entry(ex.send, ex.req.method, req_headers, entry, [], body)
    try:
        status, sent = await until_disconnect(ex.receive, work)
    except ClientGone:
        return Answer(499, 0, outcome, "client gone")
    except EntryFailed as exc:
        # Left incomplete on purpose (see the module docstring).
        log.warning("archive %s cut off: %s", ex.req.path, exc)
        return Answer(502, 0, outcome, "archive entry differs from its manifest")
    return Answer(status, sent, outcome)


class ArchiveBody:
    """deliver.py's Body over the archive: header bytes made from the layout, member
    bytes read through the pipeline, one member at a time."""

    def __init__(self, ex: Exchange, layout: Layout, items: list[Item]) -> None:
        self.ex, self.layout, self.items = ex, layout, items
        # CRC-32s computed while streaming, for members the manifest gave none.
        self.crcs: list[int | None] = [None] * len(items)

    @property
    def size(self) -> int:
        return self.layout.size

    async def pieces(self, start: int, end: int) -> AsyncIterator[bytes]:
        for part, lo, hi in self.layout.spans(start, end):
            if part.kind is Kind.BODY:
                async for chunk in self._member(part.index, lo, hi):
                    yield chunk
            else:
                yield self.layout.header(part, self.crcs)[lo:hi]

    async def _member(self, index: int, lo: int, hi: int) -> AsyncIterator[bytes]:
        item = self.items[index]
        whole = lo == 0 and hi == item.size
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(maxsize=1)
        sub = _sub_exchange(self.ex, item, None if whole else (lo, hi), queue)
        task = asyncio.ensure_future(_run(sub, queue))
        crc = 0
        try:
            skip = _check_start(item, await queue.get(), lo, hi)
            want, got = hi - lo, 0
            while True:
                message = await queue.get()
                if message is None:
                    raise EntryFailed(f"{_name(item)}: its answer broke off")
                chunk = message.get("body", b"")
                if skip:
                    cut = min(skip, len(chunk))
                    chunk, skip = chunk[cut:], skip - cut
                if got + len(chunk) > want:
                    raise EntryFailed(f"{_name(item)}: longer than the manifest says")
                got += len(chunk)
                if chunk:
                    if whole:
                        crc = zlib.crc32(chunk, crc)
                    yield bytes(chunk)
                if not message.get("more_body", False):
                    break
            if got != want:
                raise EntryFailed(f"{_name(item)}: shorter than the manifest says")
            if whole and item.crc is not None and crc != item.crc:
                raise EntryFailed(f"{_name(item)}: CRC-32 differs from the manifest")
            self.crcs[index] = crc if whole else None
        finally:
            task.cancel()


def _check_start(item: Item, start: dict[str, Any] | None, lo: int, hi: int) -> int:
    """How many leading bytes of the member's answer to skip (a 200 to a ranged ask);
    EntryFailed when the answer is not the member the manifest describes."""
    if start is None or start.get("type") != "http.response.start":
        raise EntryFailed(f"{_name(item)}: no answer")
    status = start["status"]
    fields = dict(start.get("headers", ()))
    if status == 206:
        found = _CONTENT_RANGE.match(fields.get(b"content-range", b"").decode("latin-1"))
        if found is None or tuple(map(int, found.groups())) != (lo, hi - 1, item.size):
            raise EntryFailed(f"{_name(item)}: size or range differs from the manifest")
        return 0
    if status != 200:
        raise EntryFailed(f"{_name(item)}: answered {status}")
    length = fields.get(b"content-length")
    if length is not None and int(length) != item.size:
        raise EntryFailed(f"{_name(item)}: {int(length)} bytes, the manifest says {item.size}")
    return lo


async def _run(sub: Exchange, queue: asyncio.Queue[dict[str, Any] | None]) -> None:
    """A member's request through the pipeline's lookup (or pass on an uncached route);
    its messages go to `queue`, then None."""
    from proxy import pipeline  # the pipeline imports this module

    try:
        if await pipeline.lookup(sub) is None:
            await pipeline.pass_(sub)
    except Exception:  # reported as a broken member, never to the client as a traceback
        log.exception("archive entry %s failed", sub.req.path)
    finally:
        await queue.put(None)


def _sub_exchange(
    ex: Exchange,
    item: Item,
    wanted_range: tuple[int, int] | None,
    queue: asyncio.Queue[dict[str, Any] | None],
) -> Exchange:
    """The member's request: its answer's messages go to `queue`."""
    req = _sub_request(ex, item, wanted_range)
    route = _entry_route(ex, item)
    sub = Exchange(ex.state, route, req, _Receive(), queue.put, req.key, ex.started)
    sub.archive_entry = True
    return sub


class _Receive:
    """A member request has no body and no client of its own: the archive's request
    watches for its client leaving, and cancels the member's request with it."""

    def __init__(self) -> None:
        self.asked = False

    async def __call__(self) -> dict[str, Any]:
        if not self.asked:
            self.asked = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # never set
        raise AssertionError("unreachable")


def _sub_request(ex: Exchange, item: Item, wanted_range: tuple[int, int] | None) -> Request:
    headers = [(b"host", ex.req.host.encode())]
    if wanted_range is not None:
        headers.append((b"range", b"bytes=%d-%d" % (wanted_range[0], wanted_range[1] - 1)))
    scope = {
        "type": "http",
        "method": "GET",
        "http_version": "1.1",
        "scheme": ex.req.scheme,
        "path": item.path,
        "raw_path": item.path.encode("ascii"),
        "query_string": item.query.encode("ascii"),
        "headers": headers,
        "client": (ex.req.client, 0),
    }
    from proxy import pipeline  # the pipeline imports this module

    try:
        req = pipeline.parse(ex.state, scope)
    except Rejected as exc:
        raise BadManifest(f"location {item.path}: {exc.reason}") from None
    req.request_id = ex.req.request_id
    return req


def _entry_route(ex: Exchange, item: Item) -> Route:
    req = _sub_request(ex, item, None)
    route = ex.state.routes.match(req.host, req.path)
    if route is None:
        raise BadManifest(f"location {item.path}: no route")
    return route


def _fields(headers: list[Header]) -> dict[bytes, bytes]:
    return {k: v for k, v in headers if k in KEPT_FIELDS}


def _archive_entry(
    fields: dict[bytes, bytes],
    manifest: bytes,
    layout: Layout,
    modified: float | None,
    now: float,
) -> Entry:
    """The archive's head as deliver_entry takes it: its length, and a strong ETag when
    the manifest fixes every byte (all CRC-32s given), so If-Range and resume work."""
    etag = None
    headers = [(b"content-type", b"application/zip"), *fields.items()]
    if layout.crcs_known:
        digest = hashlib.sha256(manifest + fields.get(b"last-modified", b"")).hexdigest()
        etag = f'"zip-{digest[:32]}"'
        headers.append((b"etag", etag.encode()))
    entry = Entry(
        status=200,
        headers=headers,
        origin_headers=[],
        body=b"",
        etag=etag,
        last_modified=modified,
        content_type="application/zip",
        response_time=now,
        freshness=NOT_STORED,
    )
    entry.full_headers = [
        *headers,
        (b"content-length", str(layout.size).encode()),
        (b"accept-ranges", b"bytes" if layout.crcs_known else b"none"),
    ]
    return entry


async def _refuse(ex: Exchange, status: int, reason: str, outcome: Outcome) -> Answer:
    return Answer(status, await send_error(ex.send, status, reason), outcome, reason)


def _name(item: Item) -> str:
    return repr(item.name.decode("utf-8"))
