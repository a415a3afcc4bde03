"""Varnish-style bans: prefix purges that never scan the cache on the request path.

A ban says "entries stored at or before `created` whose URL starts with `prefix` (on
`host`, or on any host) are gone (hard) or stale (soft)". Purging a prefix adds a ban,
which is O(1); the cache is not walked. A lookup asks `check(key, stored_at)` and drops
(hard) or revalidates (soft) what it gets back. Entries stored after the ban are not
affected, so the refetched copy is served normally.

Matching, on the URL part of a cache key (`url_of_key`: host + path [+ "?" query], the
form `proxy.pipeline` builds; variant keys append NUL-separated parts, which are cut):

  * a prefix ending in "/" matches every target under it: "/a/b/" matches "/a/b/c",
    not "/a/b" and not "/a/bc";
  * any other prefix matches whole segments, like route prefixes: "/a/b" matches
    "/a/b", "/a/b/c" and "/a/b?x=1", never "/a/bc" (purging /v/1 must not take /v/10);
  * host None means every host; otherwise the host must be equal (lower case, no port,
    as `routing.rules.host_of` makes it).

Time: `created` and `stored_at` are wall-clock seconds (time.time()), so bans received
from other instances (the purge bus) compare with local entries given synced clocks.
An entry is banned when stored_at <= created: a tie counts as stored before the ban,
which at worst costs one refetch. The caller chooses what stored_at is; the time the
origin request was sent is the exact one (a fetch that started before the purge may
carry pre-purge content and should be banned). The response time (Entry.response_time)
leaves a window of one origin latency. Keep bans sorted by created (`add` inserts in
order even if the clock steps back), so `check` walks only the bans newer than the
entry: O(newer bans), usually none, since `newest` rules most entries out in one
comparison.

The lurker (Varnish's name): a ban can be dropped once no entry it could match exists
or can appear. `retire(before)` drops the bans created before `before`, where `before`
is a lower bound on stored_at of every entry that is cached now *or will be stored*:

  * walk a tier with `lurk(...)`: it applies bans to entries nobody requests (returned
    for the caller to drop or mark) and reports the oldest stored_at that survives; take
    the minimum of that, the start of the oldest fetch still in flight (it will be
    stored with that time), and the bound of every other tier;
  * or, for tiers that cannot be walked (Redis): now - the longest time an entry may
    stay there (its EXPIRE), which bounds the age of anything they can return.

Soft-banned entries stay cached (stale), so they keep holding their bans until they are
refreshed or go; that needs no write to the entry.

Bound: at most `max_bans`. Beyond it the oldest tenth collapse into a floor: "every
entry stored at or before T is banned", T being the newest collapsed ban's time, one
floor for hard bans and one for soft ones (so no soft purge ever becomes a hard one).
That purges more than asked, never less; the floors retire like any ban."""

from __future__ import annotations

import asyncio
import math
import time
from bisect import bisect_left, insort
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from operator import attrgetter

__all__ = [
    "DEFAULT_MAX_BANS",
    "Ban",
    "BanList",
    "LurkReport",
    "lurk",
    "prefix_matches",
    "split_url",
    "url_of_key",
]

DEFAULT_MAX_BANS = 10_000
# Storage keys of variants (Vary, image variants) are the URL key + NUL + more.
KEY_SEPARATOR = "\x00"

_created = attrgetter("created")


def url_of_key(key: str) -> str:
    """The URL part of a storage key: host + path [+ "?" query]."""
    i = key.find(KEY_SEPARATOR)
    return key if i < 0 else key[:i]


def split_url(url: str) -> tuple[str, str]:
    """(host, path [+ "?" query]) of a URL key. A host never contains "/" once routed
    (routes match host names), so the first "/" starts the path; if an odd Host did
    contain one, a ban on the shorter host would match it: more purged, never less."""
    i = url.find("/")
    if i < 0:
        return url, "/"
    return url[:i], url[i:]


def prefix_matches(prefix: str, target: str) -> bool:
    """`target` (path [+ "?" query]) is `prefix` or below it, on whole segments."""
    if not target.startswith(prefix):
        return False
    if prefix.endswith("/") or len(target) == len(prefix):
        return True
    return target[len(prefix)] in "/?"


@dataclass(frozen=True, slots=True)
class Ban:
    id: int  # increases by one per ban added to this list
    created: float  # wall-clock seconds
    prefix: str  # path prefix, "/..."
    host: str | None = None  # None: every host
    soft: bool = False

    def matches(self, host: str, target: str) -> bool:
        if self.host is not None and self.host != host:
            return False
        return prefix_matches(self.prefix, target)


class BanList:
    def __init__(self, max_bans: int = DEFAULT_MAX_BANS) -> None:
        if max_bans < 1:
            raise ValueError("max_bans must be at least 1")
        self.max_bans = max_bans
        self._bans: list[Ban] = []  # sorted by created
        self._next_id = 1
        # Bans ever added (an attribute: the hot path reads it). An entry checked at this
        # generation needs no check until it grows, whatever later bans' `created` times.
        self.generation = 0
        # "Everything stored at or before floor.created": collapsed old bans.
        self.floor_hard: Ban | None = None
        self.floor_soft: Ban | None = None
        # The latest `created` of any ban or floor: an entry stored after it is not
        # banned, which the hot path can test with one comparison.
        self.newest = -math.inf
        # Bans folded into a floor, and bans retired: counters for metrics.
        self.collapsed = 0
        self.retired = 0

    def __len__(self) -> int:
        return len(self._bans) + (self.floor_hard is not None) + (self.floor_soft is not None)

    def bans(self) -> list[Ban]:
        """A snapshot, floors first, then the bans oldest first."""
        floors = [f for f in (self.floor_hard, self.floor_soft) if f is not None]
        return sorted(floors, key=_created) + list(self._bans)

    def add(
        self, prefix: str, *, host: str | None = None, soft: bool = False, now: float | None = None
    ) -> Ban:
        """Ban `prefix` (a path, "/..."; "/" is every path) on `host` or every host.
        `now`: the ban's time, e.g. from the instance that received the purge."""
        if not prefix.startswith("/"):
            raise ValueError(f"a ban prefix is a path starting with '/', not {prefix!r}")
        created = time.time() if now is None else now
        ban = Ban(self._next_id, created, prefix, host, soft)
        self._next_id += 1
        self.generation += 1
        bans = self._bans
        if not bans or created >= bans[-1].created:
            bans.append(ban)
        else:  # the clock stepped back, or a ban from the bus arrived late
            insort(bans, ban, key=_created)
        self.newest = max(self.newest, created)
        if len(bans) > self.max_bans:
            self._collapse(len(bans) - self.max_bans * 9 // 10)
        return ban

    def check(self, key: str, stored_at: float) -> Ban | None:
        """The ban that applies to the entry at `key` (a storage key; the URL part is
        used) stored at `stored_at`, or None. A hard ban wins over soft ones."""
        if stored_at > self.newest:
            return None
        host, target = split_url(url_of_key(key))
        soft: Ban | None = None
        for ban in reversed(self._bans):
            if ban.created < stored_at:
                break
            if ban.matches(host, target):
                if not ban.soft:
                    return ban
                if soft is None:
                    soft = ban
        floor = self.floor_hard
        if floor is not None and stored_at <= floor.created:
            return floor
        if soft is not None:
            return soft
        floor = self.floor_soft
        if floor is not None and stored_at <= floor.created:
            return floor
        return None

    def retire(self, before: float) -> int:
        """Drop the bans created before `before`, a lower bound on the stored_at of every
        entry cached now or stored later (see the module text). Returns how many went."""
        bans = self._bans
        cut = bisect_left(bans, before, key=_created)
        del bans[:cut]
        gone = cut
        if self.floor_hard is not None and self.floor_hard.created < before:
            self.floor_hard = None
            gone += 1
        if self.floor_soft is not None and self.floor_soft.created < before:
            self.floor_soft = None
            gone += 1
        times = [f.created for f in (self.floor_hard, self.floor_soft) if f is not None]
        if bans:
            times.append(bans[-1].created)
        self.newest = max(times, default=-math.inf)
        self.retired += gone
        return gone

    def _collapse(self, count: int) -> None:
        old = self._bans[:count]
        del self._bans[:count]
        self.collapsed += len(old)
        for soft in (False, True):
            group = [b for b in old if b.soft is soft]
            if not group:
                continue
            last = group[-1]  # sorted: the newest of the group
            floor = self.floor_soft if soft else self.floor_hard
            if floor is None or last.created > floor.created:
                floor = Ban(last.id, last.created, "/", None, soft)
            if soft:
                self.floor_soft = floor
            else:
                self.floor_hard = floor


@dataclass(slots=True)
class LurkReport:
    hard: list[str] = field(default_factory=list)  # keys to drop
    soft: list[str] = field(default_factory=list)  # keys to treat as stale (they stay)
    # Oldest stored_at among the entries that stay (not hard-banned); None if none.
    oldest: float | None = None
    checked: int = 0


async def lurk(
    entries: Iterable[tuple[str, float]], bans: BanList, *, batch_size: int = 500
) -> LurkReport:
    """Test (key, stored_at) pairs against `bans`, yielding to the event loop every
    `batch_size` entries so a large tier never blocks requests. Pass a snapshot (e.g. a
    list), not a live dict view: the cache changes while this awaits."""
    report = LurkReport()
    oldest = math.inf
    for n, (key, stored_at) in enumerate(entries, 1):
        ban = bans.check(key, stored_at)
        if ban is not None and not ban.soft:
            report.hard.append(key)
        else:
            if ban is not None:
                report.soft.append(key)
            oldest = min(oldest, stored_at)
        if n % batch_size == 0:
            await asyncio.sleep(0)
        report.checked = n
    report.oldest = None if oldest == math.inf else oldest
    return report


class TagBans:
    """Bans by surrogate key, for copies no local index knows (the shared and disk tiers
    hold entries other instances stored): an entry carrying a banned tag and stored at
    or before the ban is banned. Bounded: beyond `max_tags` the oldest fold into a hard
    floor ("every tagged entry stored at or before T"), purging more, never less."""

    def __init__(self, max_tags: int = 100_000) -> None:
        self.max_tags = max_tags
        self._bans: OrderedDict[str, tuple[float, bool]] = OrderedDict()
        self.floor = -math.inf
        self.newest = -math.inf

    def __len__(self) -> int:
        return len(self._bans)

    def add(self, tags: Iterable[str], *, soft: bool, now: float) -> None:
        for tag in tags:
            old = self._bans.pop(tag, None)
            # a hard ban is never weakened by a later soft one on the same tag
            hard_before = old is not None and not old[1]
            self._bans[tag] = (now, soft and not hard_before)
        while len(self._bans) > self.max_tags:
            _, (created, _soft) = self._bans.popitem(last=False)
            self.floor = max(self.floor, created)
        self.newest = max(self.newest, now)

    def check(self, tags: frozenset[str], stored_at: float) -> tuple[float, bool] | None:
        """(ban time, soft) of the strongest ban covering an entry with `tags`."""
        if not tags or stored_at > self.newest:
            return None
        if stored_at <= self.floor:
            return self.floor, False
        found: tuple[float, bool] | None = None
        for tag in tags:
            ban = self._bans.get(tag)
            if ban is not None and stored_at <= ban[0]:
                if not ban[1]:
                    return ban
                found = ban
        return found

    def retire(self, before: float) -> None:
        for tag in [t for t, (created, _) in self._bans.items() if created < before]:
            del self._bans[tag]
        if self.floor < before:
            self.floor = -math.inf
