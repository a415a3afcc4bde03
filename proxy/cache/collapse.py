"""Request collapsing: one origin fetch per key, every waiter streams the same bytes.

A Fetch is filled by one producer task and read by any number of consumers, each at its
own pace. While the object may still be stored, every chunk is kept (late joiners start
from byte 0 and the body can be cached). Once it is known to be too large to store, the
Fetch stops taking joiners, drops chunks every consumer has passed and makes the
producer wait when the slowest consumer is more than `window` bytes behind, so memory
stays bounded however large the object is."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from proxy.serve.metrics import Stats


@dataclass(slots=True)
class Head:
    status: int
    headers: list[tuple[bytes, bytes]]  # as sent to clients (minus per-response fields)
    content_length: int | None
    etag: str | None
    last_modified: float | None
    content_type: str | None
    # May other requests share this response? (storable per RFC 9111, same variant)
    shareable: bool
    vary: tuple[str, ...]
    # Cache-Status parts describing how the producer got it.
    fwd: str
    fwd_status: int | None
    origin_ms: float
    # Cache-Status detail, e.g. "stale-if-error" when a stored copy stood in for the origin.
    detail: str | None = None
    # The Cache-Status an upstream cache sent: ours is listed after it (RFC 9211 2).
    upstream_status: bytes | None = None
    # The origin said Accept-Ranges: bytes (a large object may be sliced: proxy/slices/).
    ranges: bool = False


class FetchAborted(Exception):
    """The producer failed after the head was delivered; consumers abort the response."""


class Fetch:
    def __init__(self, key: str, *, window: int) -> None:
        self.key = key
        self.window = window
        self.head: asyncio.Future[Head] = asyncio.get_running_loop().create_future()
        self.chunks: list[bytes] = []
        self.base = 0  # index of chunks[0] in the whole stream
        self.buffered = 0
        self.received = 0
        self.keep_all = True
        self.done = False
        self.error: BaseException | None = None
        self.stored = False
        self.variant: str = ""  # the leader's variant key, filled when Vary is known
        self.answered_by: str | None = None  # the origin that answered (a group fails over)
        # Relayed from the worker that owns the key and keeps it (proxy/cluster/peers.py):
        # what to keep, and whether to slice, was that worker's decision.
        self.relayed = False
        # Requests for the key counted before this fetch started (a burst that joins it
        # does not make the object hot for a relay: proxy/cluster/peers.py `hot`).
        self.asked = 0
        self._cursors: dict[int, int] = {}
        self._next_id = 0
        self._more: asyncio.Future[None] = self.head.get_loop().create_future()
        self._drained: asyncio.Future[None] | None = None

    # -- producer side -------------------------------------------------------------
    def set_head(self, head: Head) -> None:
        if not self.head.done():
            self.head.set_result(head)

    def fail(self, exc: BaseException) -> None:
        """Before the head: waiters get `exc`. After: the stream ends with FetchAborted."""
        if not self.head.done():
            self.head.set_exception(exc)
            self.head.exception()  # mark retrieved: waiters may all be gone
        self.error = exc
        self.done = True
        self._wake()
        self._release_producer()

    async def append(self, chunk: bytes) -> None:
        self.chunks.append(chunk)
        self.buffered += len(chunk)
        self.received += len(chunk)
        self._wake()
        if not self.keep_all and self.buffered > self.window and self._cursors:
            self._drained = self.head.get_loop().create_future()
            await self._drained

    def finish(self) -> None:
        self.done = True
        self._wake()

    def stop_keeping(self) -> None:
        """Too large to store: from now on, bounded memory and no new joiners."""
        self.keep_all = False
        self._trim()

    @property
    def abandoned(self) -> bool:
        """Nobody reads and nothing will be stored: the producer may stop."""
        return not self.keep_all and not self._cursors

    def body(self) -> bytes:
        return b"".join(self.chunks)

    # -- consumer side -------------------------------------------------------------
    def can_join(self) -> bool:
        return self.keep_all and self.error is None

    def subscribe(self) -> int:
        """Register a reader before it waits for the head, so that nothing it will need
        is trimmed and the producer knows somebody is still interested."""
        cid = self._next_id
        self._next_id += 1
        self._cursors[cid] = self.base
        return cid

    def unsubscribe(self, cid: int) -> None:
        if self._cursors.pop(cid, None) is not None and not self.keep_all:
            self._trim()

    async def stream(self, cid: int) -> AsyncIterator[bytes]:
        """Every chunk from the reader's cursor; raises FetchAborted if the producer failed."""
        pos = self._cursors[cid]
        while True:
            while pos < self.base + len(self.chunks):
                chunk = self.chunks[pos - self.base]
                pos += 1
                yield chunk
                self._cursors[cid] = pos
                if not self.keep_all:
                    self._trim()
            if self.done:
                if self.error is not None:
                    raise FetchAborted(str(self.error))
                return
            await asyncio.shield(self._more)

    # -- internals -----------------------------------------------------------------
    def _wake(self) -> None:
        more = self._more
        self._more = more.get_loop().create_future()
        if not more.done():
            more.set_result(None)

    def _trim(self) -> None:
        low = min(self._cursors.values(), default=self.base + len(self.chunks))
        drop = low - self.base
        if drop > 0:
            self.buffered -= sum(len(c) for c in self.chunks[:drop])
            del self.chunks[:drop]
            self.base = low
        if self.buffered <= self.window // 2 or not self._cursors:
            self._release_producer()

    def _release_producer(self) -> None:
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        self._drained = None


class Inflight:
    """Fetches under way, by cache key. Owned by the app state (no module globals)."""

    def __init__(self) -> None:
        self.fetches: dict[str, Fetch] = {}

    def register_metrics(self, stats: Stats) -> None:
        stats.sample("edgeshield_inflight_fetches", "inflight", lambda: {(): len(self.fetches)})

    def get(self, key: str) -> Fetch | None:
        fetch = self.fetches.get(key)
        if fetch is not None and not fetch.can_join():
            return None
        return fetch

    def add(self, fetch: Fetch) -> None:
        self.fetches[fetch.key] = fetch

    def remove(self, fetch: Fetch) -> None:
        if self.fetches.get(fetch.key) is fetch:
            del self.fetches[fetch.key]
