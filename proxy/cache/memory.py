"""L1: an in-process LRU bounded in bytes (cachetools), no locks: one event loop owns it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cachetools import Cache, LRUCache

from proxy.cache.entry import Entry, Uncacheable, VaryIndex

if TYPE_CHECKING:
    from proxy.serve.metrics import Stats

Stored = Entry | VaryIndex | Uncacheable


def _size(value: Stored) -> int:
    return value.size


class _CountingLRU(LRUCache[str, Stored]):
    evictions = 0

    def popitem(self) -> tuple[str, Stored]:
        self.evictions += 1
        return super().popitem()


class MemoryTier:
    name = "memory"

    def __init__(self, max_bytes: int, max_object_bytes: int) -> None:
        self.max_object_bytes = min(max_object_bytes, max_bytes)
        self._lru = _CountingLRU(maxsize=max(1, max_bytes), getsizeof=_size)

    def get(self, key: str) -> Stored | None:
        return self._lru.get(key)

    def fits(self, nbytes: int) -> bool:
        return nbytes <= self.max_object_bytes

    def put(self, key: str, value: Stored) -> bool:
        if value.size > self.max_object_bytes and not isinstance(value, VaryIndex):
            return False
        self._lru[key] = value
        return True

    def delete(self, key: str) -> bool:
        return self._lru.pop(key, None) is not None

    def key_snapshot(self) -> list[str]:
        """A snapshot of the keys, for a scan that awaits between slices (the lurker)."""
        return list(self._lru)

    def peek(self, key: str) -> Stored | None:
        """`get` without touching recency (a scan must not reorder the LRU)."""
        try:
            return Cache.__getitem__(self._lru, key)
        except KeyError:
            return None

    def items(self) -> list[tuple[str, Stored]]:
        """A snapshot, without touching recency (LRUCache's own lookup would)."""
        lru = self._lru
        return [(key, Cache.__getitem__(lru, key)) for key in list(lru)]

    def clear(self) -> None:
        self._lru.clear()

    def stats(self) -> dict[str, Any]:
        return {
            "bytes": self._lru.currsize,
            "entries": len(self._lru),
            "evictions": self._lru.evictions,
            "max_bytes": self._lru.maxsize,
        }

    def register_metrics(self, stats: Stats) -> None:
        stats.sample_sizes(self.name, self.stats)
