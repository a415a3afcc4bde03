"""Variant: image transforms on routes with `images = true` (issue 6).

One entry point, `image_request`, called by the pipeline for GET/HEAD on such a route.
It answers None when the URL carries no image options, and the normal lookup goes on.
Otherwise it answers the request itself:

    parse     /cdn-cgi/image/<options>/<source> or imgix query parameters -> ImageOptions
              (400 naming the option when invalid)
    key       <source key> NUL "image" NUL <variant_key(options, accept)>
    lookup    fresh variant -> deliver (hit); stale within stale-while-revalidate ->
              deliver + re-derive in the background
    miss      one producer per variant key (Inflight/Fetch, like an origin fetch); it
              takes the source from the cache, or starts/joins the ordinary collapsed
              fetch of the source URL (so N variants of one uncached source cost one
              origin fetch), transforms it on the ImageWorkers pool and stores the
              variant, linked to its source so that invalidating the source drops it.

The source key is the ordinary cache key of the source URL: host + source path + the
query without the image parameters, so `/a.jpg?w=100` and `/a.jpg?w=200` share the one
entry of `/a.jpg` (and a request for `/a.jpg` itself is a hit on it). The separator is
NUL because a request target cannot contain it (a "|" could be sent by a client and
collide with a real URL's key). See docs/images.md, "How variants are cached".
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from functools import lru_cache, partial
from typing import Any
from urllib.parse import unquote_plus

from config.images import ImageSettings
from config.schema import Settings
from proxy.cache.collapse import Fetch, FetchAborted, Head
from proxy.cache.entry import Entry
from proxy.cache.keys import image_key, url_key
from proxy.cache.lookup import Use
from proxy.deliver import (
    Send,
    deliver_entry,
    deliver_fetch,
    fresh_hit_fields,
    send_error,
    stale_hit_fields,
)
from proxy.exchange import Answer, Exchange, Outcome
from proxy.fetch import (
    STREAM_WINDOW,
    fetch_object,
    join_or_start,
    present_entry,
    refresh_in_background,
    revalidate_in_background,
)
from proxy.http import cache_status
from proxy.http.freshness import Freshness
from proxy.http.vary import merge_vary
from proxy.http.vary import variant_key as vary_variant_key
from proxy.request import Request
from proxy.serve.state import AppState
from routing.origins.base import OriginError
from routing.rules import Route
from transforms.image import (
    ImageLimitError,
    ImageOptionError,
    ImageOptions,
    ImageWorkers,
    Overloaded,
    TransformResult,
    accept_class,
    imgix,
    parse_cloudflare_path,
    parse_query,
    variant_key,
)

Header = tuple[bytes, bytes]

CF_PREFIX = "/cdn-cgi/image/"
# Query parameter names the imgix parser reads (or refuses): stripped from the source URL.
IMAGE_PARAMS = frozenset(imgix.SUPPORTED) | imgix.UNSUPPORTED | frozenset(imgix.ALIASES)
# Source response fields a variant keeps (freshness, validators' dates, CORS).
KEPT_SOURCE_FIELDS = frozenset(
    {
        b"cache-control",
        b"cdn-cache-control",
        b"expires",
        b"date",
        b"last-modified",
        b"access-control-allow-origin",
        b"access-control-expose-headers",
        b"timing-allow-origin",
        b"cross-origin-resource-policy",
    }
)
NO_HEADERS: Mapping[str, str] = {}
# Plain URLs a route with `auto_format` negotiates, and the options that stand for them.
PLAIN_EXTENSIONS = (".jpg", ".jpeg", ".png")
PLAIN = ImageOptions(format="auto", original=True)
# A plain URL's variant failing with these is answered as such (the origin failed);
# any other refusal answers the original instead.
ORIGIN_FAILED = frozenset({502, 504})
# Vary fields of a source that the variant step handles itself (see source_vary).
NEGOTIATED = frozenset({"accept", "accept-encoding"})
# Parsed image URLs remembered per process (each a few hundred bytes).
PARSE_MEMO = 4096
# Freshness of a variant whose source could not be stored: served once, never stored.
UNSTORED = Freshness(
    storable=False,
    reason="source not stored",
    lifetime=0.0,
    initial_age=0.0,
    stale_while_revalidate=0.0,
    stale_if_error=0.0,
    must_revalidate=True,
    no_cache=False,
)


class Images:
    """The variant step's state (AppState.images): the transform pool, and a memo of
    parsed image URLs so that a variant hit does not parse its query again (parsing and
    canonicalising options costs more than the rest of a hit)."""

    def __init__(self, settings: ImageSettings) -> None:
        self.settings = settings
        self.workers = ImageWorkers(settings)
        self.parse: Callable[[str, str], ImageUrl | None] = lru_cache(maxsize=PARSE_MEMO)(
            partial(parse_image_url, settings=settings)
        )

    def close(self) -> None:
        self.workers.close()


def build_images(settings: Settings, routes: Iterable[Route]) -> Images | None:
    """Only when the engine is on and some route uses it."""
    if not settings.images.enabled or not any(route.images for route in routes):
        return None
    return Images(settings.images)


def routing_path(path: str) -> str:
    """The path a request is routed by: a Cloudflare-syntax URL is routed by its source
    path (`/cdn-cgi/image/w=100/img/a.jpg` -> `/img/a.jpg`), so the source's route (its
    origin, cache policy and `images` switch) applies."""
    if path.startswith(CF_PREFIX):
        cut = path.find("/", len(CF_PREFIX))
        if cut > 0:
            return path[cut:]
    return path


def strip_image_params(query: str) -> str:
    """The query without the imgix parameters (others, such as cache busters or
    signatures, stay as they were written, in order)."""
    kept = [
        pair
        for pair in query.split("&")
        if pair and unquote_plus(pair.partition("=")[0]) not in IMAGE_PARAMS
    ]
    return "&".join(kept)


@dataclass(frozen=True, slots=True)
class ImageUrl:
    """What an image URL asks for; a pure function of path and query (memoized)."""

    options: ImageOptions
    source_path: str
    source_query: str
    # The variant key when the format is not negotiated (None: it depends on Accept).
    fixed_key: str | None

    def source_key(self, host: str) -> str:
        return url_key(host, self.source_path, self.source_query)


@dataclass(frozen=True, slots=True)
class ImageRequest:
    url: ImageUrl
    accept: str | None

    @property
    def options(self) -> ImageOptions:
        return self.url.options

    @property
    def variant(self) -> str:
        fixed = self.url.fixed_key
        return fixed if fixed is not None else variant_key(self.url.options, self.accept)


def parse_image_url(path: str, query: str, *, settings: ImageSettings) -> ImageUrl | None:
    """None when the URL carries no image options. Raises ImageOptionError."""
    if path.startswith(CF_PREFIX):
        cloudflare = parse_cloudflare_path(path, settings=settings)
        if cloudflare is not None:
            options, source_path = cloudflare
            # The whole query belongs to the source URL in this syntax.
            return _url(options, source_path, query)
    if not query:
        return None
    found = parse_query(query, settings=settings)
    if found is None:
        return None
    return _url(found, path, strip_image_params(query))


def _url(options: ImageOptions, source_path: str, source_query: str) -> ImageUrl:
    fixed = None if options.format == "auto" else variant_key(options, None)
    return ImageUrl(options, source_path, source_query, fixed)


class VariantError(Exception):
    """Why a variant could not be produced; every waiter answers with it."""

    def __init__(
        self, status: int, reason: str, outcome: str, headers: list[Header] | None = None
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.outcome = outcome
        self.headers = headers or []


class VariantFetch(Fetch):
    """A Fetch whose producer is a transform: it carries what Cache-Status and
    Server-Timing report about how the variant was made."""

    def __init__(self, key: str) -> None:
        super().__init__(key, window=STREAM_WINDOW)
        self.source_detail = ""  # source-hit | source-miss | source-collapsed | source-stale
        self.source_status: int | None = None  # origin status when the source was fetched
        self.origin_ms = 0.0
        self.transform_ms = 0.0
        # The stored variant this one replaces, if any (stale): when the source comes
        # back only as stale-if-error, the stale variant is served instead of a new one.
        self.stale: Entry | None = None


@dataclass(frozen=True, slots=True)
class Job:
    """One variant asked for: the exchange it came with, what it asks, and its keys."""

    ex: Exchange
    image: ImageRequest
    source_key: str
    key: str

    def start(self, stale: Entry | None, *, register: bool = True) -> VariantFetch:
        """One producer per variant key: every concurrent request for it waits on this
        (unless not registered: a request that another Vary variant's producer cannot
        serve)."""
        state = self.ex.state
        fetch = VariantFetch(self.key)
        fetch.stale = stale
        if register:
            state.inflight.add(fetch)
        state.spawn(produce_variant(self, fetch))
        return fetch


async def image_request(ex: Exchange) -> Answer | None:
    """The variant step. None: not an image request, the normal lookup continues."""
    state, req, send = ex.state, ex.req, ex.send
    images = state.images
    if images is None or not (req.query or req.path.startswith(CF_PREFIX)):
        return await _plain(ex)  # the common case on an images route: the plain source URL
    try:
        url = images.parse(req.path, req.query)
    except ImageOptionError as exc:
        return Answer(400, await send_error(send, 400, exc.reason), Outcome.DENY, exc.reason)
    if url is None:
        return await _plain(ex)
    return await _variant(ex, url)


async def _plain(ex: Exchange) -> Answer | None:
    """A plain image URL on a route with `auto_format`: the AVIF or WebP variant for a
    client that names one in Accept, else (or when the source is not one to convert)
    None, and the ordinary lookup answers the original. Either way the answer depends
    on Accept, so it says so."""
    if not ex.route.auto_format or not ex.req.path.lower().endswith(PLAIN_EXTENSIONS):
        return None
    ex.send = with_vary_accept(ex.send)
    if not accept_class(ex.req.headers.get("accept")):
        return None
    return await _variant(ex, ImageUrl(PLAIN, ex.req.path, ex.req.query, None))


def with_vary_accept(send: Send) -> Send:
    async def send_varying(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            headers = [*message["headers"], (b"vary", b"Accept")]
            message = {**message, "headers": merge_vary(headers)}
        await send(message)

    return send_varying


async def _variant(ex: Exchange, url: ImageUrl) -> Answer | None:
    state, req, send = ex.state, ex.req, ex.send
    image = ImageRequest(url, req.headers.get("accept"))
    source_key = url.source_key(req.host)
    key = image_key(source_key, image.variant)
    job = Job(ex, image, source_key, key)
    # The request's fields pick the variant when the source varies (other than on
    # Accept): the cache's Vary index under the variant key, as for any object.
    found = await state.cache.find(key, req.headers, stream=False)
    use, stored, now = found.use(req.now), found.entry, req.now
    if stored is not None and use in (Use.FRESH, Use.STALE):
        if use is Use.FRESH:
            extra = fresh_hit_fields(stored, stored.age(now), now, found.tier)
        else:
            refresh_in_background(state, key, lambda register: job.start(stored, register=register))
            extra = stale_hit_fields(stored, now, found.tier)
        status, sent = await deliver_entry(send, req.method, req.headers, stored, extra)
        return Answer(status, sent, Outcome.HIT if use is Use.FRESH else Outcome.STALE)
    return await _miss(job, stored)


async def _miss(job: Job, stale: Entry | None) -> Answer | None:
    state, req, send, key = job.ex.state, job.ex.req, job.ex.send, job.key
    fetch, collapsed = join_or_start(
        state,
        req,
        key,
        lambda register: job.start(stale, register=register),
        kind=VariantFetch,
    )
    cid = fetch.subscribe()
    try:
        try:
            head = await asyncio.shield(fetch.head)
            if collapsed and _other_variant(fetch, head, req):
                # Made from the source for other values of its Vary fields: make ours,
                # unregistered (the shared one keeps serving its own requests).
                fetch.unsubscribe(cid)
                fetch = job.start(stale, register=False)
                collapsed, cid = False, fetch.subscribe()
                head = await asyncio.shield(fetch.head)
        except VariantError as exc:
            if job.image.options.original and exc.status not in ORIGIN_FAILED:
                return None  # not converted: the original, from the ordinary lookup
            if exc.status >= 500 and stale is not None and req.now < stale.stale_if_error_until:
                return await _stale_if_error(req, stale, collapsed, send)
            sent = await send_error(send, exc.status, exc.reason, exc.headers)
            return Answer(exc.status, sent, Outcome(exc.outcome), exc.reason)
        value = cache_status.forward(
            "miss",
            fwd_status=fetch.source_status,
            stored=fetch.stored,
            collapsed=collapsed,
            detail=fetch.source_detail or None,
        )
        timing = f"transform;dur={fetch.transform_ms:.1f}"
        if fetch.source_status is not None:
            timing = f"origin;dur={fetch.origin_ms:.1f}, {timing}"
        extra = [(b"cache-status", value.encode()), (b"server-timing", timing.encode())]
        status, sent = await deliver_fetch(send, req.method, req.headers, fetch, extra, cid)
        return Answer(status, sent, Outcome.COLLAPSED if collapsed else Outcome.MISS)
    finally:
        fetch.unsubscribe(cid)


def _other_variant(fetch: VariantFetch, head: Head, req: Request) -> bool:
    return bool(head.vary) and vary_variant_key(head.vary, req.headers) != fetch.variant


async def _stale_if_error(req: Request, stale: Entry, collapsed: bool, send: Send) -> Answer:
    """RFC 5861 stale-if-error for a variant: its source could not be had."""
    value = cache_status.forward(
        "stale", fwd_status=None, stored=False, collapsed=collapsed, detail="stale-if-error"
    )
    extra = [(b"age", str(stale.age(req.now)).encode()), (b"cache-status", value.encode())]
    status, sent = await deliver_entry(send, req.method, req.headers, stale, extra)
    return Answer(status, sent, Outcome.STALE, "stale-if-error")


async def produce_variant(job: Job, fetch: VariantFetch) -> None:
    """Source -> transform -> store -> present. Never raises: failures reach the waiters
    as a VariantError through the fetch."""
    state, req, image, source_key = job.ex.state, job.ex.req, job.image, job.source_key
    try:
        body, source = await _source(job, fetch)
        entry, avif_later = still_current(fetch.stale, source), False
        if entry is None:
            started = time.perf_counter()
            result = await _transform(state, body, image)
            fetch.transform_ms = (time.perf_counter() - started) * 1000
            entry = variant_entry(result, source, negotiated=image.options.format == "auto")
            avif_later = result.avif_later
        if entry.vary:
            fetch.variant = vary_variant_key(entry.vary, req.headers)
        if source is not None:
            # Only variants of a stored source are stored, and always linked to it.
            state.cache.link(source_key, fetch.key)
            fetch.stored = state.cache.store(fetch.key, entry, req.headers)
            if fetch.stored:
                state.stats.inc("edgeshield_cache_stores", ("memory",))
                if avif_later and state.images is not None:
                    state.spawn(_upgrade_to_avif(job, entry, body, source))
        present_entry(
            fetch, entry, fwd="miss", fwd_status=fetch.source_status, origin_ms=fetch.origin_ms
        )
    except VariantError as exc:
        fetch.fail(exc)
    except asyncio.CancelledError:
        fetch.fail(VariantError(503, "shutting down", "error"))
        raise
    except Exception:  # a bug must not leave waiters hanging
        state.log.exception("image variant %r failed", fetch.key)
        fetch.fail(VariantError(500, "image transform failed", "error"))
    finally:
        state.inflight.remove(fetch)


async def _source(job: Job, fetch: VariantFetch) -> tuple[bytes, Entry | None]:
    """The source's bytes, and its stored entry (None when it could not be stored, and
    then the variant is not stored either). From the cache when fresh (or stale within
    stale-while-revalidate, refreshed in the background); otherwise through the ordinary
    collapsed fetch of the source URL, started here or joined."""
    state, source_key = job.ex.state, job.source_key
    src = _source_request(job.ex.req, job.image)
    source = replace(job.ex, req=src, key=source_key)  # the source URL's own exchange
    found = await state.cache.find(source_key, src.headers, stream=False)
    use, stale = found.use(time.time()), found.entry
    if stale is not None and use in (Use.FRESH, Use.STALE):
        if use is Use.STALE:
            revalidate_in_background(source, stale)
        fetch.source_detail = "source-hit" if use is Use.FRESH else "source-stale"
        _check_source(stale.status, stale.headers)
        return stale.body, stale
    collapse = use is not Use.HIT_FOR_MISS
    state.cache.memory.promise(source_key)  # kept whole whatever admission says (below)
    for _ in range(2):
        source_fetch, joined = fetch_object(source, stale, collapse=collapse)
        shared = source_fetch if joined else None
        cid = source_fetch.subscribe()
        try:
            try:
                head = await asyncio.shield(source_fetch.head)
            except OriginError as exc:
                raise VariantError(exc.status, exc.reason, "error") from None
            if (
                shared is not None
                and head.vary
                and vary_variant_key(head.vary, src.headers) != source_fetch.variant
            ):
                collapse = False  # the shared fetch is another Vary variant: fetch ours
                continue
            fetch.source_detail = "source-collapsed" if shared is not None else "source-miss"
            if head.fwd == "stale":
                fetch.source_detail = "source-stale"
            if head.detail == "stale-if-error" and fetch.stale is not None:
                # The origin failed and the source is only a stale copy: the stale
                # variant made from it is as good, and costs no transform.
                raise VariantError(502, "origin failed (stale-if-error)", "error")
            fetch.source_status = head.fwd_status if shared is None else None
            fetch.origin_ms = head.origin_ms
            _check_source(head.status, head.headers)
            if not head.shareable:
                raise VariantError(
                    422,
                    "image source is not cacheable (its response may not be stored in a "
                    "shared cache), so no variant is made of it",
                    "deny",
                )
            try:
                async for _ in source_fetch.stream(cid):
                    if not source_fetch.keep_all:
                        break
            except FetchAborted:
                raise VariantError(502, "origin failed sending the image source", "error") from None
            if not source_fetch.keep_all:
                raise VariantError(
                    413,
                    "image source is larger than the cache's largest object "
                    "(cache.memory_max_object_bytes)",
                    "deny",
                )
            body = source_fetch.body()
        finally:
            source_fetch.unsubscribe(cid)
        entry = state.cache.lookup(source_key, src.headers) if source_fetch.stored else None
        return body, entry if type(entry) is Entry else None
    raise VariantError(502, "image source could not be fetched", "error")  # not reached


def _source_request(req: Request, image: ImageRequest) -> Request:
    """The source URL as a GET, without Accept-Encoding: the transform needs the
    image's own bytes, not a compressed transfer of them."""
    return replace(
        req,
        method="GET",
        path=image.url.source_path,
        query=image.url.source_query,
        headers={k: v for k, v in req.headers.items() if k != "accept-encoding"},
        header_list=[(k, v) for k, v in req.header_list if k != "accept-encoding"],
    )


def _check_source(status: int, headers: list[Header]) -> None:
    if status != 200:
        raise VariantError(
            status if 400 <= status <= 599 else 502,
            f"image source answered {status}",
            "error",
        )
    for name, value in headers:
        if name == b"content-encoding" and value.strip().lower() not in (b"", b"identity"):
            raise VariantError(
                422, f"image source is content-encoded ({value.decode('latin-1')})", "deny"
            )


async def _transform(state: AppState, body: bytes, image: ImageRequest) -> TransformResult:
    if state.images is None:  # images routes exist only with a pool
        raise VariantError(503, "image transforms are disabled", "error")
    workers = state.images.workers
    started = time.perf_counter()
    try:
        result = await workers.run(body, image.options, image.accept)
    except ImageOptionError as exc:
        _count(state, "rejected", started)
        raise VariantError(400, exc.reason, "deny") from None
    except ImageLimitError as exc:
        _count(state, "rejected", started)
        raise VariantError(exc.status, exc.reason, "deny") from None
    except Overloaded as exc:
        state.stats.inc("edgeshield_image_transforms", ("overloaded",))
        retry = [(b"retry-after", str(exc.retry_after).encode())]
        raise VariantError(503, str(exc), "error", retry) from None
    _count(state, result.format, started)
    return result


def _count(state: AppState, result: str, started: float) -> None:
    state.stats.inc("edgeshield_image_transforms", (result,))
    elapsed = time.perf_counter() - started
    state.stats.observe("edgeshield_image_transform_duration_seconds", (), elapsed)


def variant_entry(result: TransformResult, source: Entry | None, *, negotiated: bool) -> Entry:
    """The variant as a cache entry. Its freshness is the source entry's (same response
    time, lifetime and stale windows), so it expires with the source it was made from;
    its ETag is a strong validator of its own bytes. Vary: Accept when the format was
    negotiated (the key holds the negotiated class, never the raw Accept), plus the
    source's own Vary fields: the variant is made from the source those fields chose,
    so it varies on them too, and the cache keys it by them (``Entry.vary``)."""
    body = result.body
    etag = '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'
    if source is not None:
        headers = [(k, v) for k, v in source.headers if k in KEPT_SOURCE_FIELDS]
    else:
        headers = [(b"cache-control", b"no-store")]
    headers += [
        (b"content-type", result.content_type.encode()),
        (b"etag", etag.encode()),
    ]
    vary = source_vary(source)
    sent = ("accept",) if negotiated else ()
    if vary or sent:
        headers.append((b"vary", ", ".join(sorted({*sent, *vary})).encode()))
    if source is None:
        freshness, response_time = UNSTORED, time.time()
    else:
        freshness, response_time = source.freshness, source.response_time
    return Entry(
        status=200,
        headers=headers,
        # The source's validator, so a variant outliving a 304 of it is kept (still_current).
        origin_headers=[("etag", source.etag)] if source is not None and source.etag else [],
        body=body,
        etag=etag,
        last_modified=source.last_modified if source is not None else None,
        content_type=result.content_type,
        response_time=response_time,
        freshness=freshness,
        request_time=source.request_time if source is not None else 0.0,
        tags=source.tags if source is not None else frozenset(),
        vary=vary,
    )


def still_current(variant: Entry | None, source: Entry | None) -> Entry | None:
    """The stale variant, fresh again with its source, when that source is the version
    it was made from (a 304 kept its ETag, or its Last-Modified when it has none): the
    transform would make the same bytes. None when the source changed or is unknown."""
    if variant is None or source is None:
        return None
    made_from = dict(variant.origin_headers).get("etag")
    if made_from is not None or source.etag is not None:
        if made_from != source.etag:
            return None
    elif source.last_modified is None or variant.last_modified != source.last_modified:
        return None
    own = [(k, v) for k, v in variant.headers if k not in KEPT_SOURCE_FIELDS]
    kept = [(k, v) for k, v in source.headers if k in KEPT_SOURCE_FIELDS]
    return replace(
        variant,
        headers=kept + own,
        freshness=source.freshness,
        response_time=source.response_time,
        request_time=source.request_time,
        tags=source.tags,
        hit_head=None,
    )


def source_vary(source: Entry | None) -> tuple[str, ...]:
    """The source's Vary fields a variant is keyed by: all but Accept, which the variant
    step negotiates itself (its class is in the variant key), and Accept-Encoding (the
    source is fetched without it, and a variant is never content-encoded)."""
    if source is None:
        return ()
    return tuple(name for name in source.vary if name not in NEGOTIATED)


async def _upgrade_to_avif(job: Job, webp: Entry, source: bytes, src: Entry) -> None:
    """Background AVIF mode: the variant was answered (and stored) as WebP; encode the
    AVIF off the request path and replace the stored variant, unless it was invalidated
    or replaced meanwhile. A full pool or a failure leaves the WebP in place."""
    state, req, key, image = job.ex.state, job.ex.req, job.key, job.image
    if state.images is None:
        return
    try:
        better = await state.images.workers.encode_avif_later(source, image.options)
    except (ImageLimitError, ImageOptionError) as exc:
        state.log.debug("background AVIF for %r failed: %s", key, exc)
        return
    if better is None or state.cache.lookup(key, req.headers) is not webp:
        return
    state.stats.inc("edgeshield_image_transforms", (better.format,))
    state.cache.store(key, variant_entry(better, src, negotiated=True), req.headers)
