"""L1: an in-process cache bounded in bytes, kept by a size-aware W-TinyLFU (what is asked
for most per byte stays: proxy/cache/admission.py). No locks: one event loop owns it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from proxy.cache.admission import WTinyLFU
from proxy.cache.entry import ENTRY_OVERHEAD, Entry, Uncacheable, VaryIndex

if TYPE_CHECKING:
    from proxy.serve.metrics import Stats

Stored = Entry | VaryIndex | Uncacheable


def _size(value: Stored) -> int:
    return value.size


class MemoryTier:
    name = "memory"

    def __init__(self, max_bytes: int, max_object_bytes: int) -> None:
        self.max_object_bytes = min(max_object_bytes, max_bytes)
        self._cache: WTinyLFU[str, Stored] = WTinyLFU(max(1, max_bytes), getsizeof=_size)

    def get(self, key: str) -> Stored | None:
        """The value under `key`; the request is counted for admission, found or not.
        Reads that are not requests (scans, checks) use `peek`."""
        return self._cache.get(key)

    def fits(self, nbytes: int) -> bool:
        return nbytes <= self.max_object_bytes

    def admits(self, key: str, nbytes: int) -> bool:
        """Would `put` keep an entry of this size under `key` now (`nbytes` 0 when not
        known yet)? A yes holds for the next `put` of the key, so a response that says
        `stored` before its body arrived is not refused when it is complete.

        Admission weighs requests per byte, and an entry carries `ENTRY_OVERHEAD` on top
        of its body: a size told before the body arrives is its Content-Length, and a
        cold object must not outweigh an as cold resident by the bytes its body lacks."""
        if not self.fits(nbytes):
            return False
        return self._cache.admits(key, nbytes, nbytes + ENTRY_OVERHEAD)

    def promise(self, key: str) -> None:
        """Take the next entry stored under `key` whatever admission would say (an image
        source: its variants need it whole, and are only stored beside it)."""
        self._cache.promise(key)

    def put(self, key: str, value: Stored) -> bool:
        """False when the entry is not kept: too large, or refused by admission (it was
        asked for less often per byte than an entry it would push out)."""
        if value.size > self.max_object_bytes and not isinstance(value, VaryIndex):
            self._cache.pop(key)  # an older value is not kept in its place either
            return False
        return self._cache.put(key, value)

    def delete(self, key: str) -> bool:
        return self._cache.pop(key) is not None

    def key_snapshot(self) -> list[str]:
        """A snapshot of the keys, for a scan that awaits between slices (the lurker)."""
        return list(self._cache)

    def frequency(self, key: str) -> int:
        """How often `key` was asked for lately, as admission counts it."""
        return self._cache.frequency(key)

    def peek(self, key: str) -> Stored | None:
        """`get` without counting a request or touching recency (scans and checks)."""
        return self._cache.peek(key)

    def items(self) -> list[tuple[str, Stored]]:
        """A snapshot, without touching recency or frequency."""
        cache = self._cache
        return [(key, value) for key in list(cache) if (value := cache.peek(key)) is not None]

    def clear(self) -> None:
        self._cache.clear()

    def stats(self) -> dict[str, Any]:
        cache = self._cache
        return {
            "bytes": cache.currsize,
            "entries": len(cache),
            "evictions": cache.evictions,
            "admission_rejections": cache.rejections,
            "max_bytes": cache.max_bytes,
        }

    def register_metrics(self, stats: Stats) -> None:
        stats.sample_sizes(self.name, self.stats)
        cache = self._cache
        stats.sample(
            "edgeshield_cache_admission_rejections",
            self.name,
            lambda: {(self.name,): cache.rejections},
        )
