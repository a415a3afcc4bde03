"""Segment prefetch: the next segments of an HLS stream fetched into the cache before a
player asks for them (docs/video.md).

`after_answer` runs once the pipeline answered a GET or HEAD on a cached route whose
policy has `prefetch_segments` > 0:

- a media playlist (its stored entry, read once per version, proxy/streams.py): its
  segments are remembered in order; on a live playlist's refresh, the segments it newly
  lists are prefetched; a static DASH manifest: each Representation's segments are
  remembered as a listing of their own;
- a segment some remembered playlist lists: the `prefetch_segments` after it are.

A prefetch is the ordinary collapsed miss (`fetch.fetch_object`) of the segment URL with
the request's fields less credentials, ranges and preconditions, so a player asking
while it runs joins it, and what is stored is what a miss would store. It is skipped
when the segment is already fresh in a tier, a fetch of it is under way, the cache
refused it last time (hit-for-miss), or nobody asked for the rendition for
`RECENT_SECONDS`. At most `PER_STREAM` prefetches run per playlist and `GLOBAL` in all;
one too large to keep stops at once.

The fresh-hit fast path serves most segments of a VOD stream (the prefetched ones): it
asks `fast_hit_declines` and leaves a segment hit to the pipeline (which then calls
`after_answer`) only when segments after it are neither in memory nor under way, so
every segment is prefetched, at a few dict lookups per segment hit. A segment it does
serve is found used later by the memo it leaves on the entry."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import replace

from proxy.cache.collapse import FetchAborted
from proxy.cache.entry import Entry, VaryIndex
from proxy.cache.lookup import Use
from proxy.cache.store import variant_storage_key
from proxy.exchange import Answer, Exchange, Outcome
from proxy.fetch import fetch_object
from proxy.http import methods
from proxy.http.playlist_uris import playlist_kind
from proxy.http.streaming import Kind, kind_of
from proxy.serve.state import AppState
from proxy.streams import (
    RECENT_SECONDS,
    Listing,
    Pending,
    Target,
    dash_targets,
    media_playlist,
    segment_targets,
)
from routing.origins.base import OriginError

PER_STREAM = 2
GLOBAL = 8
# Request fields a prefetch never sends: credentials, and what a miss answers locally.
DROPPED_FIELDS = frozenset(
    {
        "authorization",
        "cookie",
        "range",
        "if-range",
        "if-match",
        "if-none-match",
        "if-modified-since",
        "if-unmodified-since",
    }
)
ANSWERED = frozenset({Outcome.HIT, Outcome.STALE, Outcome.MISS, Outcome.COLLAPSED})


def after_answer(ex: Exchange, answer: Answer) -> None:
    """Remember a playlist, or prefetch what follows a segment (never raises into the
    request: the work runs in background tasks)."""
    route = ex.route
    count = route.policy.prefetch_segments
    if (
        not count
        or answer.outcome not in ANSWERED
        or ex.req.method not in methods.CACHEABLE
        or route.policy.slice_bytes
        or route.images
    ):
        return
    state, now = ex.state, time.time()
    streams = state.streams
    kind = kind_of(ex.req.path, None)
    if kind is Kind.SEGMENT:
        if streams.requested(ex.key):
            state.stats.inc("edgeshield_prefetch_used", ())
        found = streams.following(ex.key, count, now)
        if found is not None:
            listing, targets = found
            _enqueue(ex, listing, targets)
        _settle(state, now)
    elif kind is Kind.PLAYLIST:
        streams.asked(ex.key, now)
        _read_playlist(ex, now)


def fast_hit_declines(state: AppState, key: str, count: int, now: float) -> bool:
    """A fresh memory hit of `key` on a route prefetching `count` segments: should the
    pipeline answer it instead, to prefetch what follows? Only when a remembered
    playlist lists it and one of the `count` segments after it is neither fresh in
    memory nor being fetched (dict lookups only: the fast path asks on every hit of a
    segment URL)."""
    streams = state.streams
    targets = streams.after(key, count)
    if not targets:
        return False
    memory = state.cache.memory
    for target in targets:
        if target.key in streams.fetching or state.inflight.get(target.key) is not None:
            continue
        found = memory.peek(target.key)
        if found is None or (type(found) is Entry and not now < found.fresh_until):
            return True
        # (fresh, a Vary index or a hit-for-miss mark: nothing a prefetch would add)
    return False


def _read_playlist(ex: Exchange, now: float) -> None:
    """The playlist as stored now (each version read once): remembered, and on a live
    refresh its new segments prefetched."""
    state = ex.state
    entry = _peek(state, ex.key, ex.req.headers)
    if entry is None or entry.status != 200:
        return
    streams = state.streams
    if playlist_kind(entry.content_type, ex.req.path) == "dash":
        _read_manifest(ex, entry, now)
        return
    if streams.known(ex.key, entry.response_time) is not None:
        return
    live = media_playlist(entry.body)
    if live is None:
        return
    targets = segment_targets(entry.body, ex.req.host, ex.req.path, state.normalize)
    if targets is None:
        return
    new = streams.remember(ex.key, targets, entry.response_time, live=live, now=now)
    listing = streams.listing_of(ex.key)
    if live and new and listing is not None:
        _enqueue(ex, listing, new)


def _read_manifest(ex: Exchange, entry: Entry, now: float) -> None:
    """A static DASH manifest (each version read once): every Representation is
    remembered as a listing of its own, `<key>#<n>`, so the segments after one of its
    segments are its own. A dynamic one is not (proxy/http/dash_segments.py)."""
    streams = ex.state.streams
    if streams.known(f"{ex.key}#0", entry.response_time) is not None:
        return
    renditions = dash_targets(entry.body, ex.req.host, ex.req.path, ex.state.normalize)
    for n, targets in enumerate(renditions or ()):
        streams.remember(f"{ex.key}#{n}", targets, entry.response_time, live=False, now=now)


def _enqueue(ex: Exchange, listing: Listing, targets: list[Target]) -> None:
    queued = {t.key for t in listing.queue}
    for target in targets:
        if target.key not in queued and target.key not in ex.state.streams.fetching:
            listing.queue.append(target)
    _start(ex, listing)


def _start(ex: Exchange, listing: Listing) -> None:
    streams = ex.state.streams
    while listing.queue and listing.running < PER_STREAM and streams.running < GLOBAL:
        listing.running += 1
        streams.running += 1
        ex.state.spawn(_work(ex, listing))


async def _work(ex: Exchange, listing: Listing) -> None:
    streams = ex.state.streams
    try:
        while listing.queue:
            if time.time() - listing.asked > RECENT_SECONDS:
                listing.queue.clear()  # nobody watches this rendition any more
                break
            await _prefetch(ex, listing.queue.popleft())
    finally:
        listing.running -= 1
        streams.running -= 1


async def _prefetch(ex: Exchange, target: Target) -> None:
    """One segment into the cache, unless it is there or under way."""
    state = ex.state
    route = state.routes.match(ex.req.host, target.path)
    if route is None or not route.policy.enabled or route.policy.slice_bytes or route.images:
        return
    fields = [(k, v) for k, v in ex.req.header_list if k.lower() not in DROPPED_FIELDS]
    req = replace(
        ex.req,
        method="GET",
        path=target.path,
        query=target.query,
        headers={k: v for k, v in ex.req.headers.items() if k not in DROPPED_FIELDS},
        header_list=fields,
        now=time.time(),
    )
    if state.inflight.get(target.key) is not None:
        return
    found = await state.cache.find(target.key, req.headers)
    use = found.use(req.now)
    stale = found.entry if found.body is None and use is not Use.FRESH else None
    await found.close()
    if use is Use.FRESH or use is Use.HIT_FOR_MISS:
        return
    pex = replace(ex, route=route, req=req, key=target.key)
    fetch, joined = fetch_object(pex, stale, collapse=True)
    if joined:
        return  # a viewer's own miss got there first
    streams = state.streams
    streams.fetching[target.key] = False
    cid = fetch.subscribe()
    try:
        head = await asyncio.shield(fetch.head)
        if not head.shareable:
            return
        async for _ in fetch.stream(cid):
            if not fetch.keep_all:
                return  # too large to keep: leaving stops the producer
    except (OriginError, FetchAborted):
        return
    finally:
        fetch.unsubscribe(cid)
        used = streams.fetching.pop(target.key, False)
    if not fetch.stored:
        return
    now = time.time()
    state.stats.inc("edgeshield_prefetched_segments", ())
    if used:
        state.stats.inc("edgeshield_prefetch_used", ())
        return
    entry = _peek(state, target.key, req.headers)
    if entry is not None:
        streams.stored(target.key, entry.response_time, fetch.received, now)
    _settle(state, now)


def _peek(state: AppState, key: str, headers: Mapping[str, str]) -> Entry | None:
    """The memory tier's entry for a request, without counting a request for admission."""
    memory = state.cache.memory
    found = memory.peek(key)
    if type(found) is VaryIndex:
        found = memory.peek(variant_storage_key(key, found.names, headers))
    return found if type(found) is Entry else None


def _settle(state: AppState, now: float) -> None:
    """Prefetched segments found used (the fast path served them: it leaves its header
    memo on the entry) or wasted (gone from memory, or never asked for)."""
    memory = state.cache.memory

    def used(key: str, item: Pending) -> bool | None:
        entry = memory.peek(key)
        if type(entry) is not Entry or entry.response_time != item.version:
            return False
        return True if entry.hit_head is not None else None

    for was_used, size in state.streams.settle(used, now):
        if was_used:
            state.stats.inc("edgeshield_prefetch_used", ())
        else:
            state.stats.inc("edgeshield_prefetch_wasted_bytes", (), size)
