"""Varnish-style bans: prefix purges that never scan the cache on the request path.

A ban says "entries stored at or before `created` whose URL starts with `prefix` (on
`host`, or on any host) are gone (hard) or stale (soft)". Purging a prefix adds a ban,
which is O(1); the cache is not walked. A lookup asks `check(key, stored_at)` and drops
(hard) or revalidates (soft) what it gets back. Entries stored after the ban are not
affected, so the refetched copy is served normally.

Matching, on the URL part of a cache key (proxy/cache/keys.py `url_of`: host + path
[+ "?" query]; derived keys append NUL-separated parts, which are cut):

  * a prefix ending in "/" matches every target under it: "/a/b/" matches "/a/b/c",
    not "/a/b" and not "/a/bc";
  * any other prefix matches whole segments, like route prefixes: "/a/b" matches
    "/a/b", "/a/b/c" and "/a/b?x=1", never "/a/bc" (purging /v/1 must not take /v/10);
  * host None means every host; otherwise the host must be equal (lower case, no port,
    as proxy/http/authority.py makes it).

Time: `created` and `stored_at` are wall-clock seconds (time.time()), so bans received
from other instances (the purge bus) compare with local entries given synced clocks.
An entry is banned when stored_at <= created: a tie counts as stored before the ban,
which at worst costs one refetch. The caller chooses what stored_at is; the time the
origin request was sent is the exact one (a fetch that started before the purge may
carry pre-purge content and should be banned). The response time (Entry.response_time)
leaves a window of one origin latency.

Cost: `check` is O(segments of the URL), whatever the number of bans. The bans live in
a trie keyed by host (or "every host"), then by the URL's segments and separators
(`_tokens`), so a lookup walks only the nodes of prefixes the URL could match; a node
keeps the newest hard and the newest soft ban of its prefix (an older ban of the same
prefix and kind covers a subset of what the newer one covers). `newest` rules most
entries out in one comparison before any walk. The list sorted by `created` (`add`
inserts in order even if the clock steps back) is kept for retiring and the bound.

The lurker (Varnish's name): a ban can be dropped once no entry it could match exists
or can appear. `retire(before)` drops the bans created before `before`, where `before`
is a lower bound on stored_at of every entry that is cached now *or will be stored*:

  * walk a tier with `lurk(...)`: it applies bans to entries nobody requests (returned
    for the caller to drop or mark) and reports the oldest stored_at that survives; take
    the minimum of that, the start of the oldest fetch still in flight (it will be
    stored with that time), and the bound of every other tier;
  * or, for tiers that cannot be walked (Redis): now - the longest time an entry may
    stay there (its EXPIRE), which bounds the age of anything they can return.

Both run in slices (`lurk` takes a `Pacer`, `retire` a `limit`) so the lurker never
holds the event loop for more than a few milliseconds, whatever the cache or ban count.
Soft-banned entries stay cached (stale), so they keep holding their bans until they are
refreshed or go; that needs no write to the entry.

Bound: at most `max_bans`. Beyond it the oldest tenth collapse into a floor: "every
entry stored at or before T is banned", T being the newest collapsed ban's time, one
floor for hard bans and one for soft ones (so no soft purge ever becomes a hard one).
That purges more than asked, never less; the floors retire like any ban."""

from __future__ import annotations

import math
import re
import time
from bisect import bisect_left, insort
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from operator import attrgetter
from typing import TYPE_CHECKING

from proxy.cache.keys import split_url, url_of
from proxy.cache.pacing import Pacer

if TYPE_CHECKING:
    from proxy.serve.metrics import Stats

__all__ = [
    "DEFAULT_MAX_BANS",
    "Ban",
    "BanList",
    "LurkReport",
    "TagBans",
    "lurk",
]

DEFAULT_MAX_BANS = 10_000
# Where a prefix not ending in "/" may end in a target (the whole-segment rule).
_BOUNDARY = "/?"
_SEPARATORS = re.compile(r"([/?])")

_created = attrgetter("created")


def _tokens(text: str) -> list[str]:
    """`text` cut before and after every "/" and "?": "/a/b?x" -> ["", "/", "a", "/",
    "b", "?", "x"], without a trailing "". A prefix that matches a target (module text)
    ends where one of the target's tokens ends, so its tokens start the target's."""
    tokens = _SEPARATORS.split(text)
    if not tokens[-1]:
        tokens.pop()
    return tokens


@dataclass(frozen=True, slots=True)
class Ban:
    id: int  # increases by one per ban added to this list
    created: float  # wall-clock seconds
    prefix: str  # path prefix, "/..."
    host: str | None = None  # None: every host
    soft: bool = False


def _newer(ban: Ban, than: Ban | None) -> bool:
    """The list order: by created, then by id (a tie keeps the order of adding)."""
    return than is None or (ban.created, ban.id) > (than.created, than.id)


class _Node:
    """One token of a prefix; the bans whose prefix ends here (newest of each kind)."""

    __slots__ = ("children", "hard", "soft")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.hard: Ban | None = None
        self.soft: Ban | None = None


class _PrefixIndex:
    """The bans by host, then by prefix tokens: `matching` costs O(tokens of the URL)."""

    def __init__(self) -> None:
        self._roots: dict[str | None, _Node] = {}

    def add(self, ban: Ban) -> None:
        node = self._roots.setdefault(ban.host, _Node())
        for token in _tokens(ban.prefix):
            node = node.children.setdefault(token, _Node())
        if ban.soft:
            if _newer(ban, node.soft):
                node.soft = ban
        elif _newer(ban, node.hard):
            node.hard = ban

    def remove(self, ban: Ban) -> None:
        """Forget `ban` if it is its node's newest; prune the nodes left empty."""
        node = self._roots.get(ban.host)
        path: list[tuple[_Node, str]] = []
        for token in _tokens(ban.prefix):
            if node is None:
                return
            path.append((node, token))
            node = node.children.get(token)
        if node is None:
            return
        if node.soft is ban:
            node.soft = None
        elif node.hard is ban:
            node.hard = None
        for parent, token in reversed(path):
            if node.children or node.hard is not None or node.soft is not None:
                return
            del parent.children[token]
            node = parent
        if not node.children and ban.host in self._roots:
            del self._roots[ban.host]

    def matching(self, host: str, target: str) -> Iterator[_Node]:
        """The nodes of the prefixes that match `target` on `host` or on every host."""
        tokens: list[str] | None = None
        for root in (self._roots.get(host), self._roots.get(None)):
            if root is None:
                continue
            if tokens is None:
                tokens = _tokens(target)
            node, end = root, 0
            for token in tokens:
                child = node.children.get(token)
                if child is None:
                    break
                node = child
                end += len(token)
                # a prefix ending in "/" matches below it; any other only on a boundary
                if token == "/" or end == len(target) or target[end] in _BOUNDARY:
                    yield node


class BanList:
    def __init__(self, max_bans: int = DEFAULT_MAX_BANS) -> None:
        if max_bans < 1:
            raise ValueError("max_bans must be at least 1")
        self.max_bans = max_bans
        self._bans: list[Ban] = []  # sorted by created
        self._index = _PrefixIndex()
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

    def register_metrics(self, stats: Stats) -> None:
        stats.sample("edgeshield_bans", "bans", lambda: {(): len(self)})

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
        self._index.add(ban)
        self.newest = max(self.newest, created)
        if len(bans) > self.max_bans:
            self._collapse(len(bans) - self.max_bans * 9 // 10)
        return ban

    def check(self, key: str, stored_at: float) -> Ban | None:
        """The ban that applies to the entry at `key` (a storage key; the URL part is
        used) stored at `stored_at`, or None: the newest hard one, else the hard floor,
        else the newest soft one, else the soft floor."""
        if stored_at > self.newest:
            return None
        host, target = split_url(url_of(key))
        hard: Ban | None = None
        soft: Ban | None = None
        for node in self._index.matching(host, target):
            ban = node.hard
            if ban is not None and ban.created >= stored_at and _newer(ban, hard):
                hard = ban
            ban = node.soft
            if ban is not None and ban.created >= stored_at and _newer(ban, soft):
                soft = ban
        if hard is not None:
            return hard
        floor = self.floor_hard
        if floor is not None and stored_at <= floor.created:
            return floor
        if soft is not None:
            return soft
        floor = self.floor_soft
        if floor is not None and stored_at <= floor.created:
            return floor
        return None

    def retire(self, before: float, *, limit: int | None = None) -> int:
        """Drop the bans created before `before`, a lower bound on the stored_at of every
        entry cached now or stored later (see the module text), at most `limit` of them
        (call again while it returns `limit`). Returns how many went."""
        bans = self._bans
        cut = bisect_left(bans, before, key=_created)
        if limit is not None:
            cut = min(cut, limit)
        for ban in islice(bans, cut):
            self._index.remove(ban)
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
        for ban in old:
            self._index.remove(ban)
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
    entries: Iterable[tuple[str, float]], bans: BanList, pacer: Pacer | None = None
) -> LurkReport:
    """Test (key, stored_at) pairs against `bans`, yielding to the event loop whenever
    `pacer`'s slice is used up, so a large tier never blocks requests. `entries` is read
    lazily, between yields: pass a snapshot or a generator over one (e.g. a list of keys,
    each looked up when its turn comes), not a live dict view."""
    pacer = pacer or Pacer()
    report = LurkReport()
    oldest = math.inf
    for key, stored_at in entries:
        ban = bans.check(key, stored_at)
        if ban is not None and not ban.soft:
            report.hard.append(key)
        else:
            if ban is not None:
                report.soft.append(key)
            oldest = min(oldest, stored_at)
        report.checked += 1
        await pacer.tick()
    report.oldest = None if oldest == math.inf else oldest
    return report


class TagBans:
    """Bans by surrogate key, for copies no local index knows (the shared and disk tiers
    hold entries other instances stored): an entry carrying a banned tag and stored at
    or before the ban is banned. `check` costs O(tags of the entry). Bounded: beyond
    `max_tags` the oldest fold into a hard floor ("every tagged entry stored at or
    before T"), purging more, never less."""

    def __init__(self, max_tags: int = 100_000) -> None:
        self.max_tags = max_tags
        # tag -> (created, soft), in the order the bans came (mostly by time)
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

    def retire(self, before: float, *, limit: int | None = None) -> int:
        """Drop the tag bans created before `before`, oldest first, at most `limit`;
        returns how many went. It stops at the first newer one: a ban that arrived late
        (from the bus) with an older time waits behind it, kept longer, never shorter."""
        bans = self._bans
        gone = 0
        while bans and (limit is None or gone < limit):
            tag, (created, _soft) = next(iter(bans.items()))
            if created >= before:
                break
            del bans[tag]
            gone += 1
        if self.floor < before:
            self.floor = -math.inf
        return gone
