"""The reader: one response's bytes, slice after slice, all of one version, from the
cache (every tier) or from slice fetches it joins or starts; prefetch of the next slice and
background revalidation of stale ones."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from functools import partial

from proxy.cache.collapse import Fetch, FetchAborted, Head
from proxy.cache.entry import Entry
from proxy.cache.keys import slice_key
from proxy.cache.lookup import Found, Use, classify
from proxy.deliver import InMemory
from proxy.exchange import Exchange, Outcome
from proxy.fetch import join_or_start, refresh_in_background
from proxy.http.ranges import slice_of
from proxy.serve.state import AppState
from proxy.slices.model import NO_HEADERS, Rep, SliceFetch, usable_slice
from proxy.slices.produce import start_slice_fetch


class Changed(Exception):
    """A slice of another version (or an answer that is no slice) turned up."""


@dataclass(slots=True)
class Stored:
    """A stored slice."""

    entry: Entry
    start: int  # object offset of body[0]
    tier: str

    def pieces(self, lo: int, hi: int) -> AsyncIterator[bytes | memoryview]:
        return InMemory(self.entry.body).pieces(lo - self.start, hi - self.start)


class Tap:
    """A reader's cursor in a slice fetch: bytes from `start` on (the slice's offset, or
    0 for a whole 200 stream), forward only."""

    def __init__(
        self, fetch: SliceFetch, cid: int, head: Head, start: int, *, joined: bool
    ) -> None:
        self.fetch = fetch
        self.cid = cid
        self.head = head
        self.how = Outcome.COLLAPSED if joined else Outcome.MISS
        self.whole = head.status == 200
        self.pos = 0 if self.whole else start
        self._chunks: AsyncIterator[bytes] = fetch.stream(cid)
        self._pending = b""

    async def pieces(self, lo: int, hi: int) -> AsyncIterator[bytes | memoryview]:
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
            if end > lo:
                yield chunk[lo - start :] if start < lo else chunk


Piece = Stored | Tap


class Reader:
    """The slices one response reads, all of one version. A fetch is released as soon as
    the response is past its slice, so a long response holds about one slice."""

    def __init__(self, ex: Exchange, size: int) -> None:
        self.ex = ex
        self.state = ex.state
        self.key = ex.key
        self.size = size
        self.collapse = "authorization" not in ex.req.headers
        self.ready: dict[int, Piece] = {}
        self.whole: Tap | None = None
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
        found = await lookup(state, skey, self.ex.req.headers)
        stale = usable_slice(found.value, index, self.size, rep)
        use = classify(stale, time.time())
        if use is Use.FRESH and stale is not None and not verify:
            return Stored(stale, index * self.size, found.tier)
        if use is Use.STALE and stale is not None and not verify:
            self.revalidate(index, stale, rep)
            return Stored(stale, index * self.size, found.tier)
        fetch, joined = join_or_start(
            state,
            self.ex.req,
            skey,
            partial(self.start, index, stale, rep),
            kind=SliceFetch,
            collapse=self.collapse,
        )
        cid = self._subscribe(fetch)
        head = await asyncio.shield(fetch.head)
        if joined and not head.shareable:
            # The shared answer may not be shared (private...): fetch our own.
            self.release(fetch, cid)
            fetch = self.start(index, stale, rep, register=False)
            cid = self._subscribe(fetch)
            head = await asyncio.shield(fetch.head)
            joined = False
        return Tap(fetch, cid, head, index * self.size, joined=joined)

    def start(self, index: int, stale: Entry | None, rep: Rep | None, register: bool) -> SliceFetch:
        return start_slice_fetch(self.ex, index, stale, rep, register, self.size)

    def revalidate(self, index: int, stale: Entry | None, rep: Rep | None) -> None:
        """stale-while-revalidate: one background request per slice (it collapses too)."""
        if self.collapse:
            start = partial(self.start, index, stale, rep)
            refresh_in_background(self.state, slice_key(self.key, index), start)

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
        self.start(index, None, rep, register=True)

    def check(self, piece: Piece, rep: Rep) -> None:
        if isinstance(piece, Stored):
            return  # looked up for this version
        if piece.head.status not in (200, 206) or piece.fetch.rep is None:
            raise Changed(f"origin answered {piece.head.fwd_status} for a slice")
        if piece.fetch.rep.version != rep.version:
            raise Changed("object changed")

    async def pieces(self, lo: int, hi: int, rep: Rep) -> AsyncIterator[bytes | memoryview]:
        """Bytes [lo, hi) of the object."""
        while lo < hi:
            if self.whole is not None:
                async for piece in self.whole.pieces(lo, hi):
                    yield piece
                return
            index = lo // self.size
            source = self.ready.pop(index, None) or await self.piece(index, rep, verify=False)
            self.check(source, rep)
            if isinstance(source, Tap) and source.whole:
                self.whole = source
                continue
            span = slice_of(index, self.size, rep.total)
            assert span is not None  # lo < hi <= total
            end = min(hi, span.end + 1)
            if end < hi:
                self.prefetch(index + 1, rep)
            async for piece in source.pieces(lo, end):
                yield piece
            if end <= span.end:
                self.ready[index] = source  # the next range may start in this slice
            elif isinstance(source, Tap):
                self.release(source.fetch, source.cid)
            lo = end


@dataclass(frozen=True, slots=True)
class SliceBody:
    """One version's bytes as deliver.py's `Body`: read slice after slice, so every
    answer (ranges, multipart, HEAD, 304/412/416) is decided there, as for any entry."""

    reader: Reader
    rep: Rep

    @property
    def size(self) -> int:
        return self.rep.total

    def pieces(self, start: int, end: int) -> AsyncIterator[bytes | memoryview]:
        return self.reader.pieces(start, end, self.rep)


async def lookup(state: AppState, key: str, headers: Mapping[str, str]) -> Found:
    """Every tier, bodies read whole (a slice is one memory-sized piece)."""
    return await state.cache.find(key, headers, stream=False)
