"""Surrogate key index: tag -> cache keys and key -> tags, bounded in links.

The tags come from `proxy.http.surrogate.surrogate_keys`. One index per process (per
worker); it describes what this process's tiers hold. Usage, like `Cache.link`:

    evicted = index.add(key, tags)    # before storing the entry
    for old in evicted: drop(old)     # entries that lost their links must go
    if key not in evicted: store(key, entry)

    keys = index.keys_for(tag)        # a purge: the keys carrying a tag (a copy)
    index.forget(key)                 # the entry left the cache (dropped, purged, evicted)

A purge reads the keys tag by tag and drops their entries in slices (proxy/purge/
engine.py); dropping an entry forgets its links, a soft purge keeps them.

The bound counts links (one per (key, tag) pair): each response has at most
`surrogate.MAX_KEYS` tags, so a count of keys alone would not bound memory. At the bound
the keys linked longest ago go first (oldest stored first, as `Cache.link`): the hot
path never touches this index, so recency of use is not known here and store order
stands in for it. The evicted keys are returned, because an entry that stays cached
without its links would survive a purge of its tags."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

__all__ = ["DEFAULT_MAX_LINKS", "TagIndex"]

# About 100 MB of index at the worst (long keys and tags), far less with typical ones.
DEFAULT_MAX_LINKS = 1_000_000


class TagIndex:
    def __init__(self, max_links: int = DEFAULT_MAX_LINKS) -> None:
        if max_links < 1:
            raise ValueError("max_links must be at least 1")
        self.max_links = max_links
        # key -> its tags, oldest link first (the eviction order).
        self._tags_of: OrderedDict[str, frozenset[str]] = OrderedDict()
        # tag -> keys carrying it.
        self._keys_of: dict[str, set[str]] = {}
        self.links = 0
        # Keys dropped to keep the bound, for a metric (never reset).
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._tags_of)

    def __contains__(self, key: object) -> bool:
        return key in self._tags_of

    def tags_of(self, key: str) -> frozenset[str]:
        return self._tags_of.get(key, frozenset())

    def tag_count(self) -> int:
        return len(self._keys_of)

    def add(self, key: str, tags: Iterable[str]) -> list[str]:
        """Link `key` to `tags`, replacing its earlier links (a stored response replaces
        the previous one, and with it the tags that applied). Returns the keys evicted to
        stay within `max_links`, oldest first; the caller must drop those entries. If
        `tags` alone exceed the bound the result is [key]: do not store that entry.
        An empty `tags` only forgets the key."""
        new = frozenset(tags)
        self.forget(key)
        if not new:
            return []
        if len(new) > self.max_links:
            self.evictions += 1
            return [key]
        evicted: list[str] = []
        while self.links + len(new) > self.max_links:
            old, old_tags = self._tags_of.popitem(last=False)
            self._unlink(old, old_tags)
            evicted.append(old)
        self._tags_of[key] = new
        keys_of = self._keys_of
        for tag in new:
            keys = keys_of.get(tag)
            if keys is None:
                keys_of[tag] = {key}
            else:
                keys.add(key)
        self.links += len(new)
        self.evictions += len(evicted)
        return evicted

    def keys_for(self, tag: str) -> set[str]:
        """The keys tagged `tag` (a copy: the caller may purge while iterating)."""
        return set(self._keys_of.get(tag, ()))

    def forget(self, key: str) -> bool:
        """Remove every link of `key`; False when it had none."""
        tags = self._tags_of.pop(key, None)
        if tags is None:
            return False
        self._unlink(key, tags)
        return True

    def clear(self) -> None:
        self._tags_of.clear()
        self._keys_of.clear()
        self.links = 0

    def _unlink(self, key: str, tags: frozenset[str]) -> None:
        keys_of = self._keys_of
        for tag in tags:
            keys = keys_of.get(tag)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del keys_of[tag]  # no empty sets left behind: they would be unbounded
        self.links -= len(tags)
