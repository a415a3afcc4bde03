"""The cache as the pipeline sees it: lookup/store/invalidate by key, Vary handled here.

Tiers below L1 (Redis, disk) plug in behind this facade; the pipeline does not change."""

from __future__ import annotations

from collections.abc import Mapping

from proxy.cache.entry import Entry, Uncacheable, VaryIndex
from proxy.cache.memory import MemoryTier
from proxy.http.vary import variant_key


class Cache:
    def __init__(self, memory: MemoryTier, max_variants: int) -> None:
        self.memory = memory
        self.max_variants = max_variants

    def lookup(self, key: str, request_headers: Mapping[str, str]) -> Entry | Uncacheable | None:
        found = self.memory.get(key)
        if type(found) is VaryIndex:
            return self.memory.get(variant_storage_key(key, found.names, request_headers))  # type: ignore[return-value]
        return found  # type: ignore[return-value]

    def store(self, key: str, entry: Entry, request_headers: Mapping[str, str]) -> bool:
        if not self.memory.fits(entry.size):
            return False
        if not entry.vary:
            return self.memory.put(key, entry)
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
        """Remove a URL and every variant of it; returns how many entries went."""
        return self._drop(key)

    def _drop(self, key: str) -> int:
        found = self.memory.get(key)
        removed = 0
        if type(found) is VaryIndex:
            for vkey in found.variants:
                removed += self.memory.delete(f"{key}\x00{vkey}")
        removed += self.memory.delete(key)
        return removed


def variant_storage_key(key: str, names: tuple[str, ...], headers: Mapping[str, str]) -> str:
    return f"{key}\x00{variant_key(names, headers)}"
