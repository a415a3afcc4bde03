"""The lookup decision, made once: what a found entry may be used for now.

Every path that reads the cache (plain objects, image variants and their sources, slice
records and slices) asks `Cache.find` for what a key holds in any tier and `classify`
what that is worth at `now`, then acts on the answer:

    FRESH         serve it
    STALE         serve it and refresh it in the background (stale-while-revalidate)
    EXPIRED       fetch, conditionally with its validators (RFC 9111 4.3.1)
    HIT_FOR_MISS  fetch without collapsing: the last answer could not be shared
    ABSENT        fetch, collapsed with whoever else is fetching the key

An entry stored with `no-cache` is never fresh nor served stale (RFC 9111 5.2.2.4, 4.2.4).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from proxy.cache.entry import Entry, Uncacheable

if TYPE_CHECKING:
    from proxy.cache.disk import BodyStream


class Use(Enum):
    FRESH = "fresh"
    STALE = "stale"
    EXPIRED = "expired"
    HIT_FOR_MISS = "hit-for-miss"
    ABSENT = "absent"


def classify(found: Entry | Uncacheable | None, now: float) -> Use:
    if type(found) is Entry:
        if found.freshness.no_cache:
            return Use.EXPIRED
        if now < found.fresh_until:
            return Use.FRESH
        if now < found.stale_while_revalidate_until:
            return Use.STALE
        return Use.EXPIRED
    if type(found) is Uncacheable and now < found.until:
        return Use.HIT_FOR_MISS
    return Use.ABSENT


@dataclass(slots=True)
class Found:
    """What `Cache.find` found for a key: the entry or hit-for-miss marker (or None), the
    tier that held it, and for a disk entry too large to hold in memory its body, left in
    its file (the caller closes it)."""

    value: Entry | Uncacheable | None
    tier: str = "memory"
    body: BodyStream | None = None

    @property
    def entry(self) -> Entry | None:
        return self.value if type(self.value) is Entry else None

    def use(self, now: float) -> Use:
        return classify(self.value, now)

    async def close(self) -> None:
        if self.body is not None:
            await self.body.aclose()
            self.body = None
