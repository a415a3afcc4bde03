"""Carrying out a purge on this instance: memory (and the disk tier) always, the shared
Redis tier only where the purge was accepted (`shared`), since every instance would
otherwise delete the same keys again. Prefixes become bans and tags become tag bans,
which also cover copies in lower tiers that other instances stored."""

from __future__ import annotations

from proxy.cache.store import Cache
from proxy.purge.batch import batches
from proxy.purge.report import PurgeReport
from proxy.purge.request import PurgeRequest

SHARED_TIERS = frozenset({"redis"})


async def apply(cache: Cache, req: PurgeRequest, *, now: float, shared: bool) -> PurgeReport:
    report = PurgeReport(soft=req.soft)
    for prefix in req.prefixes:
        cache.bans.add(prefix.prefix, host=prefix.host, soft=req.soft, now=now)
        report.bans += 1
    lower_keys: set[str] = set()
    # in batches, yielding between them: a 10k-URL purge never holds up requests
    async for batch in batches(req.keys):
        touched, keys = cache.purge_memory(batch, soft=req.soft, now=now)
        report.count("memory", touched)
        lower_keys |= keys
    if req.tags:
        touched, keys = cache.purge_tags_memory(req.tags, soft=req.soft, now=now)
        report.count("memory", touched)
        report.tags = len(req.tags)
        lower_keys |= keys
    for tier in cache.lower:
        if tier.name in SHARED_TIERS and not shared:
            continue
        # Soft purges remove lower-tier copies too: their freshness is rebuilt from the
        # stored response, so they could not stay marked stale there.
        async for batch in batches(sorted(lower_keys)):
            report.count(tier.name, await tier.delete(*batch))
        if tier.stats().get("circuit_state", "closed") != "closed":
            report.errors.append(f"{tier.name}: unavailable, its copies were not deleted")
    return report
