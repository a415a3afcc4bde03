"""The cache as the pipeline sees it: lookup/store/invalidate/purge by key; Vary, bans
and surrogate keys handled here.

L1 (memory) is read synchronously (the hot path never awaits). The lower tiers (Redis,
then disk) are asked only on an L1 miss (`find_lower`); a hit there is promoted into
the tiers above it that take its size, and a disk body too large for them is streamed
from its file, never read whole. Stores go to every tier whose size band takes the
entry: memory up to its max object size, Redis up to its own, disk from its minimum;
lower-tier writes run in the background, never on the client's time. Entries that vary
(Vary) stay in memory only: the lower tiers hold no variant index.

Purges: exact keys and surrogate keys are removed (or made stale) directly; prefixes
become bans checked on lookup (proxy/cache/bans.py), so no purge scans the cache on the
request path. Copies in the lower tiers are also checked against the bans and the tag
bans on the way up, since they may have been stored by another instance."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from proxy.cache.bans import BanList, TagBans, lurk
from proxy.cache.codec import CorruptEntry
from proxy.cache.entry import Entry, Uncacheable, VaryIndex
from proxy.cache.keys import vary_key
from proxy.cache.lookup import Found
from proxy.cache.memory import MemoryTier
from proxy.cache.pacing import Pacer
from proxy.cache.tags import TagIndex
from proxy.http.vary import variant_key

if TYPE_CHECKING:
    from proxy.cache.disk import BodyStream


class LowerTier(Protocol):
    name: str

    def accepts(self, key: str, size: int) -> bool: ...
    def stats(self) -> dict[str, Any]: ...
    async def get(self, key: str) -> Entry | None: ...
    async def put(self, key: str, entry: Entry, now: float) -> bool: ...
    async def delete(self, *keys: str) -> int: ...


@runtime_checkable
class StreamingTier(Protocol):
    """A lower tier that can hand out a body without reading it whole (the disk tier)."""

    async def open_body(self, key: str) -> BodyStream | None: ...


Spawn = Callable[[Coroutine[Any, Any, Any]], Any]

# Bounds of the derived-entry index (image variants per source URL), see `link`.
MAX_LINKED_SOURCES = 65536
MAX_DERIVED_PER_SOURCE = 256
# Bans taken out of the ban index per call of the lurker (about 1 ms of work).
RETIRE_SLICE = 256


class Cache:
    def __init__(
        self,
        memory: MemoryTier,
        max_variants: int,
        lower: Sequence[LowerTier] = (),
        spawn: Spawn | None = None,
        *,
        max_bans: int = 10_000,
        max_tag_links: int = 1_000_000,
        ban_retention: float = 86400.0,
    ) -> None:
        self.memory = memory
        self.max_variants = max_variants
        self.lower = tuple(lower)
        self.spawn = spawn
        # Entries on their way to the lower tiers: found here until written, so a
        # request in between (for an object memory does not keep) is not a second origin
        # fetch. Held by the writes anyway; bounded by the writes in flight.
        self.writing: dict[str, Entry] = {}
        self.bans = BanList(max_bans)
        self.tag_bans = TagBans()
        self.tags = TagIndex(max_tag_links)
        # Lower-tier copies older than this are not trusted (bans are kept this long).
        self.ban_retention = ban_retention
        # source key -> keys of entries derived from it (image variants), oldest first.
        self.derived: OrderedDict[str, dict[str, None]] = OrderedDict()

    # -- lookup ------------------------------------------------------------------------

    def lookup(self, key: str, request_headers: Mapping[str, str]) -> Entry | Uncacheable | None:
        found = self.memory.get(key)
        if type(found) is VaryIndex:
            key = variant_storage_key(key, found.names, request_headers)
            found = self.memory.get(key)
        if type(found) is Entry and found.ban_gen != self.bans.generation:
            ban = self.bans.check(key, found.request_time)
            if ban is not None and not ban.soft:
                self._drop(key)
                return None
            if ban is not None:
                found.make_stale(ban.created)
            found.ban_gen = self.bans.generation
        return found  # type: ignore[return-value]

    async def find(
        self, key: str, request_headers: Mapping[str, str], *, stream: bool = True
    ) -> Found:
        """What `key` holds in any tier: memory first, then each lower tier, a lower-tier
        copy promoted to the tiers above it (lookup.classify says what it is worth)."""
        found = self.lookup(key, request_headers)
        if found is None and self.lower:
            pending = self.writing.get(key)
            if pending is not None and self._admit_lower(key, pending, time.time()):
                return Found(pending)  # in memory until its write lands
            lower = await self._find_lower(key, stream)
            if lower is not None:
                return lower
        return Found(found)

    async def _find_lower(self, key: str, stream: bool) -> Found | None:
        """An L1 miss: the first lower tier holding `key`. A body that memory or an upper
        tier takes is read whole and promoted there; a larger one (with `stream`) stays
        in its file and comes as `body`. A copy a ban covers is dropped there (hard) or
        served stale (soft)."""
        now = time.time()
        for i, tier in enumerate(self.lower):
            found = await self._read_lower(tier, key, self.lower[:i], stream)
            if found is None:
                continue
            entry, body = found
            if not self._admit_lower(key, entry, now):
                if body is not None:
                    await body.aclose()
                self._background(tier.delete(key))
                continue
            if body is None:
                self._promote(key, entry, self.lower[:i], now)
            return Found(entry, tier.name, body)
        return None

    async def _read_lower(
        self, tier: LowerTier, key: str, uppers: Sequence[LowerTier], stream: bool
    ) -> tuple[Entry, BodyStream | None] | None:
        if not isinstance(tier, StreamingTier):
            entry = await tier.get(key)
            return None if entry is None else (entry, None)
        body = await tier.open_body(key)
        if body is None:
            return None
        size = body.entry.size
        try:
            if not stream or self.memory.fits(size) or any(u.accepts(key, size) for u in uppers):
                return await body.read_entry(), None
            await body.verify()  # damage found now is a miss, not a broken response
        except CorruptEntry:
            return None  # the tier dropped the file and closed the stream
        return body.entry, body

    def _promote(self, key: str, entry: Entry, uppers: Sequence[LowerTier], now: float) -> None:
        if self.memory.fits(entry.size) and not entry.vary:
            entry.ban_gen = self.bans.generation  # checked in _admit_lower
            self._index_tags(key, entry)
            self.memory.put(key, entry)
        for upper in uppers:
            if upper.accepts(key, entry.size):
                self._background(upper.put(key, entry, now))

    def _admit_lower(self, key: str, entry: Entry, now: float) -> bool:
        stored = entry.request_time
        if now - stored > self.ban_retention:
            return False  # older than the bans that might cover it
        ban = self.bans.check(key, stored) if stored <= self.bans.newest else None
        tag_ban = self.tag_bans.check(entry.tags, stored)
        if (ban is not None and not ban.soft) or (tag_ban is not None and not tag_ban[1]):
            return False
        if ban is not None:
            entry.make_stale(ban.created)
        if tag_ban is not None:
            entry.make_stale(tag_ban[0])
        return True

    # -- store -------------------------------------------------------------------------

    def fits(self, key: str, nbytes: int) -> bool:
        """Some tier would store an entry of this size under `key` (so a fetch keeps its
        body; a lower tier's yes holds for the key's store)."""
        return self.memory.fits(nbytes) or any(tier.accepts(key, nbytes) for tier in self.lower)

    def admits(
        self,
        key: str,
        vary: tuple[str, ...],
        request_headers: Mapping[str, str],
        size: int,
        request_time: float,
    ) -> bool:
        """Would `store` keep such an entry? What can be known before the body arrives
        (`size` 0 when unknown): a tier takes its size (entries that vary stay in
        memory), memory's admission, the URL's variant cap, a purge since the request
        was sent. `store` refuses by this same check, and a yes from memory's admission
        holds until the entry is stored, so Cache-Status can say `stored` at head time."""
        # A fetch sent before a ban and answered after it: deliver it, never keep it.
        ban = self.bans.check(key, request_time)
        if ban is not None and not ban.soft:
            return False
        memory = self.memory
        if not vary:
            return memory.admits(key, size) or any(tier.accepts(key, size) for tier in self.lower)
        if not memory.fits(size):
            return False
        vkey = variant_key(vary, request_headers)
        index = memory.peek(key)  # another index (other names) would be replaced
        if isinstance(index, VaryIndex) and index.names == vary:
            full = len(index.variants) >= self.max_variants
            if full and vkey not in index.variants:
                return False
        return memory.admits(vary_key(key, vkey), size)

    def store(self, key: str, entry: Entry, request_headers: Mapping[str, str]) -> bool:
        """True when some tier takes the entry (lower tiers are written in the background:
        a failed write there, e.g. a full disk, is only known later)."""
        if not self.admits(key, entry.vary, request_headers, entry.size, entry.request_time):
            return False
        ban = self.bans.check(key, entry.request_time)
        if ban is not None:  # soft (admits refused hard ones): kept, but stale
            entry.make_stale(ban.created)
        stored = False
        if not entry.vary and self.lower:
            tiers = [tier for tier in self.lower if tier.accepts(key, entry.size)]
            if tiers:
                if self.spawn is not None:  # else nothing is written (_background)
                    self.writing[key] = entry
                self._background(self._write_lower(key, entry, tiers))
                stored = True
        if not self.memory.fits(entry.size):
            return stored
        entry.ban_gen = self.bans.generation
        if not entry.vary:
            if self._index_tags(key, entry) and self.memory.put(key, entry):
                return True
            self.tags.forget(key)  # refused by admission: no link to an entry not kept
            return stored
        index = self.memory.peek(key)
        if type(index) is not VaryIndex or index.names != entry.vary:
            self._drop(key)
            index = VaryIndex(entry.vary)
        vkey = variant_key(entry.vary, request_headers)
        skey = vary_key(key, vkey)
        if not self._index_tags(skey, entry) or not self.memory.put(skey, entry):
            self.tags.forget(skey)
            return False
        index.variants.add(vkey)
        self.memory.put(key, index)
        return True

    async def _write_lower(self, key: str, entry: Entry, tiers: Sequence[LowerTier]) -> None:
        now = time.time()
        try:
            await asyncio.gather(*(tier.put(key, entry, now) for tier in tiers))
        finally:
            if self.writing.get(key) is entry:
                del self.writing[key]

    def _index_tags(self, key: str, entry: Entry) -> bool:
        """Link a memory entry to its surrogate keys; False when it must not be stored
        (its tags alone exceed the index). Evicted links take their entries with them,
        so no memory entry is ever out of reach of a tag purge."""
        if not entry.tags and key not in self.tags:
            return True
        evicted = self.tags.add(key, entry.tags)
        for old in evicted:
            if old == key:
                return False
            self.memory.delete(old)
        return True

    def mark_uncacheable(self, key: str, until: float) -> None:
        if self.memory.peek(key) is None:
            self.memory.put(key, Uncacheable(until))

    # -- invalidate and purge ---------------------------------------------------------

    def invalidate(self, key: str) -> int:
        """Remove a URL, every variant of it and every entry derived from it (image
        variants, see `link`), in every tier (lower ones in the background); returns how
        many memory entries went."""
        removed = self._drop(key)
        for derived in self.derived.pop(key, ()):
            removed += self._drop(derived)
        return removed

    def purge_memory(self, keys: Iterable[str], *, soft: bool, now: float) -> tuple[int, set[str]]:
        """Exact keys out of memory (soft: made stale instead): (entries touched, the
        storage keys the lower tiers may hold, derived entries included)."""
        touched = 0
        lower_keys: set[str] = set()
        for key in keys:
            for k in (key, *self.derived.get(key, ())):
                lower_keys.add(k)
                if soft:
                    touched += self._make_stale(k, now)
                else:
                    touched += self._drop_memory(k)
            if not soft:
                self.derived.pop(key, None)
        return touched, lower_keys

    async def lurk(self, now: float) -> tuple[int, int]:
        """The ban lurker (Varnish): drop the memory entries a ban covers, then retire
        the bans no entry can need any more: older than every entry kept in memory and
        than `ban_retention` (lower-tier copies older than that are not trusted).
        Every step runs in slices of about 2 ms (`Pacer`), yielding to requests between
        them, and a check costs the bans matching the URL, not all bans.
        Returns (entries dropped, bans retired)."""
        bans = self.bans
        if not len(bans) and not len(self.tag_bans):
            return 0, 0
        pacer = Pacer()
        memory = self.memory
        # keys snapshotted, entries read when their turn comes (they change meanwhile)
        entries = (
            (key, entry.request_time)
            for key in memory.key_snapshot()
            if type(entry := memory.peek(key)) is Entry
        )
        report = await lurk(entries, bans, pacer)
        dropped = 0
        for key in report.hard:
            current = memory.peek(key)  # may have been replaced since it was checked
            if type(current) is Entry:
                ban = bans.check(key, current.request_time)
                if ban is not None and not ban.soft:
                    dropped += self._drop_memory(key)
            await pacer.tick()
        floor = now - self.ban_retention
        oldest = report.oldest if report.oldest is not None else floor
        retired = await _retire_in_slices(bans.retire, min(floor, oldest), pacer)
        await _retire_in_slices(self.tag_bans.retire, floor, pacer)
        return dropped, retired

    def _make_stale(self, key: str, now: float) -> int:
        found = self.memory.peek(key)
        entries = [found]
        pending = self.writing.get(key)
        if pending is not None and pending is not found:
            entries.append(pending)
        if type(found) is VaryIndex:
            entries = [self.memory.peek(vary_key(key, v)) for v in found.variants]
        n = 0
        for entry in entries:
            if type(entry) is Entry:
                entry.make_stale(now)
                n += 1
        return n

    def link(self, source_key: str, key: str) -> None:
        """Record that the entry at `key` is derived from the one at `source_key`, so that
        invalidating the source drops it too. Call it before storing the derived entry.
        The index is bounded: beyond MAX_LINKED_SOURCES sources (or MAX_DERIVED_PER_SOURCE
        keys of one source) the oldest links go, and their entries are dropped with them,
        so no derived entry is ever cached without a link."""
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
        for tier in self.lower:
            self._background(tier.delete(key))
        return self._drop_memory(key)

    def _drop_memory(self, key: str) -> int:
        self.writing.pop(key, None)
        found = self.memory.peek(key)
        removed = 0
        if type(found) is VaryIndex:
            for vkey in found.variants:
                skey = vary_key(key, vkey)
                self.tags.forget(skey)
                removed += self.memory.delete(skey)
        self.tags.forget(key)
        removed += self.memory.delete(key)
        return removed


async def _retire_in_slices(retire: Callable[..., int], before: float, pacer: Pacer) -> int:
    """Call a `retire(before, limit=...)` until it has nothing more to drop, a slice at
    a time (each ban out of the index costs a walk of its prefix); how many went."""
    total = 0
    while True:
        gone = retire(before, limit=RETIRE_SLICE)
        total += gone
        await pacer.tick()
        if gone < RETIRE_SLICE:
            return total


def variant_storage_key(key: str, names: tuple[str, ...], headers: Mapping[str, str]) -> str:
    return vary_key(key, variant_key(names, headers))
