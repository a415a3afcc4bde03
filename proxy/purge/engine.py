"""Carrying out a purge on this instance: memory (and the disk tier) always, the shared
Redis tier only where the purge was accepted (`shared`), since every instance would
otherwise delete the same keys again. Prefixes become bans and tags become tag bans,
which also cover copies in lower tiers that other instances stored.

A purge may name 100,000 URLs or tags covering as many entries, and it runs on the
event loop that answers requests: every step works in slices of about 2 ms (`Pacer`)
and yields between them, so requests keep being answered while a large purge runs."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from proxy.cache.pacing import Pacer
from proxy.cache.store import Cache
from proxy.purge.report import PurgeReport
from proxy.purge.request import PurgeRequest

SHARED_TIERS = frozenset({"redis"})
# Keys per memory purge call (well under a slice), and per lower-tier delete call (one
# Redis DEL, or one disk batch).
MEMORY_BATCH = 64
LOWER_BATCH = 500


async def apply(cache: Cache, req: PurgeRequest, *, now: float, shared: bool) -> PurgeReport:
    report = PurgeReport(soft=req.soft)
    pacer = Pacer()
    for prefix in req.prefixes:
        cache.bans.add(prefix.prefix, host=prefix.host, soft=req.soft, now=now)
        report.bans += 1
        await pacer.tick()
    keys: dict[str, None] = dict.fromkeys(req.keys)
    if req.tags:
        report.tags = len(req.tags)
        for tags in _chunks(req.tags, MEMORY_BATCH):
            cache.tag_bans.add(tags, soft=req.soft, now=now)
            for tag in tags:
                keys.update(dict.fromkeys(cache.tags.keys_for(tag)))
            await pacer.tick()
    lower_keys: set[str] = set()
    for batch in _chunks(keys, MEMORY_BATCH):
        touched, found = cache.purge_memory(batch, soft=req.soft, now=now)
        report.count("memory", touched)
        lower_keys |= found
        await pacer.tick()
    for tier in cache.lower:
        if tier.name in SHARED_TIERS and not shared:
            continue
        # Soft purges remove lower-tier copies too: their freshness is rebuilt from the
        # stored response, so they could not stay marked stale there.
        for batch in _chunks(lower_keys, LOWER_BATCH):
            report.count(tier.name, await tier.delete(*batch))
            await pacer.tick()
        if tier.stats().get("circuit_state", "closed") != "closed":
            report.errors.append(f"{tier.name}: unavailable, its copies were not deleted")
    return report


def _chunks(items: Iterable[str], size: int) -> Iterator[list[str]]:
    """Lists of at most `size` items, from a snapshot of `items` (the caller awaits
    between chunks, and the cache may change meanwhile)."""
    snapshot = list(items)
    for i in range(0, len(snapshot), size):
        yield snapshot[i : i + size]
