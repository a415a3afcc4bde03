"""The cache as the pipeline sees it: lookup/store/invalidate by key, Vary handled here.

L1 (memory) is read synchronously (the hot path never awaits). The lower tiers (Redis,
then disk) are asked only on an L1 miss (`lookup_lower`); a hit there is promoted into
the tiers above it that take its size. Stores go to every tier whose size band takes the
entry: memory up to its max object size, Redis up to its own, disk from its minimum;
lower-tier writes and deletes run in the background, never on the client's time.
Entries that vary (Vary) stay in memory only: the lower tiers hold no variant index."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any, Protocol

from proxy.cache.entry import Entry, Uncacheable, VaryIndex
from proxy.cache.memory import MemoryTier
from proxy.http.vary import variant_key


class LowerTier(Protocol):
    name: str

    def accepts(self, size: int) -> bool: ...
    def stats(self) -> dict[str, Any]: ...
    async def get(self, key: str) -> Entry | None: ...
    async def put(self, key: str, entry: Entry, now: float) -> bool: ...
    async def delete(self, *keys: str) -> int: ...


Spawn = Callable[[Coroutine[Any, Any, Any]], Any]

# Bounds of the derived-entry index (image variants per source URL), see `link`.
MAX_LINKED_SOURCES = 65536
MAX_DERIVED_PER_SOURCE = 256


class Cache:
    def __init__(
        self,
        memory: MemoryTier,
        max_variants: int,
        lower: Sequence[LowerTier] = (),
        spawn: Spawn | None = None,
    ) -> None:
        self.memory = memory
        self.max_variants = max_variants
        self.lower = tuple(lower)
        self.spawn = spawn
        # source key -> keys of entries derived from it (image variants), oldest first.
        self.derived: OrderedDict[str, dict[str, None]] = OrderedDict()

    def lookup(self, key: str, request_headers: Mapping[str, str]) -> Entry | Uncacheable | None:
        found = self.memory.get(key)
        if type(found) is VaryIndex:
            return self.memory.get(variant_storage_key(key, found.names, request_headers))  # type: ignore[return-value]
        return found  # type: ignore[return-value]

    def fits(self, nbytes: int) -> bool:
        """Some tier would store an entry of this size (so a fetch keeps its body)."""
        return self.memory.fits(nbytes) or any(tier.accepts(nbytes) for tier in self.lower)

    async def lookup_lower(self, key: str) -> tuple[Entry, str] | None:
        """An L1 miss: the first lower tier holding `key`, promoted upward; (entry, tier)."""
        for i, tier in enumerate(self.lower):
            entry = await tier.get(key)
            if entry is None:
                continue
            if self.memory.fits(entry.size) and not entry.vary:
                self.memory.put(key, entry)
            now = time.time()
            for upper in self.lower[:i]:
                if upper.accepts(entry.size):
                    self._background(upper.put(key, entry, now))
            return entry, tier.name
        return None

    def store(self, key: str, entry: Entry, request_headers: Mapping[str, str]) -> bool:
        """True when some tier takes the entry (lower tiers are written in the background)."""
        stored = False
        if not entry.vary and self.lower:
            now = time.time()
            for tier in self.lower:
                if tier.accepts(entry.size):
                    self._background(tier.put(key, entry, now))
                    stored = True
        if not self.memory.fits(entry.size):
            return stored
        if not entry.vary:
            return self.memory.put(key, entry) or stored
        index = self.memory.get(key)
        if type(index) is not VaryIndex or index.names != entry.vary:
            self._drop(key)
            index = VaryIndex(entry.vary)
        vkey = variant_key(entry.vary, request_headers)
        if vkey not in index.variants and len(index.variants) >= self.max_variants:
            return False
        if not self.memory.put(f"{key}\x00{vkey}", entry):
            return False
        index.variants.add(vkey)
        self.memory.put(key, index)
        return True

    def mark_uncacheable(self, key: str, until: float) -> None:
        if self.memory.get(key) is None:
            self.memory.put(key, Uncacheable(until))

    def invalidate(self, key: str) -> int:
        """Remove a URL, every variant of it and every entry derived from it (image
        variants, see `link`); returns how many entries went."""
        removed = self._drop(key)
        for derived in self.derived.pop(key, ()):
            removed += self._drop(derived)
        return removed

    def link(self, source_key: str, key: str) -> None:
        """Record that the entry at `key` is derived from the one at `source_key`, so that
        invalidating the source drops it too. Call it before storing the derived entry.
        The index is bounded: beyond MAX_LINKED_SOURCES sources (or MAX_DERIVED_PER_SOURCE
        keys of one source) the oldest links go, and their entries are dropped with them,
        so no derived entry is ever cached without a link. A minimal stand-in for
        surrogate keys (issue 4)."""
        keys = self.derived.get(source_key)
        if keys is None:
            if len(self.derived) >= MAX_LINKED_SOURCES:
                for old in self.derived.popitem(last=False)[1]:
                    self._drop(old)
            keys = self.derived[source_key] = {}
        else:
            self.derived.move_to_end(source_key)
        keys[key] = None
        if len(keys) > MAX_DERIVED_PER_SOURCE:
            oldest = next(iter(keys))
            del keys[oldest]
            self._drop(oldest)

    def _background(self, coro: Coroutine[Any, Any, Any]) -> None:
        if self.spawn is None:
            coro.close()
        else:
            self.spawn(coro)

    def _drop(self, key: str) -> int:
        if self.lower:
            for tier in self.lower:
                self._background(tier.delete(key))
        found = self.memory.get(key)
        removed = 0
        if type(found) is VaryIndex:
            for vkey in found.variants:
                removed += self.memory.delete(f"{key}\x00{vkey}")
        removed += self.memory.delete(key)
        return removed


def variant_storage_key(key: str, names: tuple[str, ...], headers: Mapping[str, str]) -> str:
    return f"{key}\x00{variant_key(names, headers)}"
