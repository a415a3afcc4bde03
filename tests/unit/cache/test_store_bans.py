"""Bans as the cache applies them: on lookup (checked once per ban generation), on
store (a fetch sent before a ban is delivered but not kept), late bans from the bus."""

from __future__ import annotations

from proxy.cache.entry import Entry
from proxy.cache.memory import MemoryTier
from proxy.cache.store import Cache
from proxy.http.freshness import Freshness
from proxy.purge.engine import apply
from proxy.purge.request import PurgeRequest

FRESH = Freshness(True, "", 300.0, 0.0, 30.0, 0.0, False, False)


def entry(request_time: float, tags: frozenset[str] = frozenset()) -> Entry:
    return Entry(
        status=200,
        headers=[],
        origin_headers=[],
        body=b"x",
        etag=None,
        last_modified=None,
        content_type=None,
        response_time=request_time + 0.1,
        freshness=FRESH,
        request_time=request_time,
        tags=tags,
    )


def cache() -> Cache:
    return Cache(MemoryTier(1 << 20, 1 << 16), 4)


def test_a_ban_with_an_older_time_arriving_late_still_applies() -> None:
    c = cache()
    c.store("h/a/1", entry(100.0), {})
    c.bans.add("/b/", host="h", now=200.0)  # unrelated ban: the entry is checked past it
    assert c.lookup("h/a/1", {}) is not None
    c.bans.add("/a/", host="h", now=150.0)  # from the bus, created before the first
    assert c.lookup("h/a/1", {}) is None


def test_a_fetch_sent_before_a_ban_is_not_kept() -> None:
    c = cache()
    c.bans.add("/a/", host="h", now=200.0)
    assert not c.store("h/a/1", entry(199.0), {})
    assert c.store("h/a/2", entry(201.0), {})
    assert c.lookup("h/a/1", {}) is None and c.lookup("h/a/2", {}) is not None


def test_soft_ban_makes_stale_and_keeps_the_entry() -> None:
    c = cache()
    c.store("h/a/1", entry(100.0), {})
    c.bans.add("/a/", host="h", soft=True, now=150.0)
    found = c.lookup("h/a/1", {})
    assert isinstance(found, Entry)
    assert found.fresh_until == 150.0 and found.stale_while_revalidate_until == 180.0


async def test_tag_purge_removes_tagged_entries_and_bans_lower_copies() -> None:
    c = cache()
    c.store("h/1", entry(100.0, frozenset({"album"})), {})
    c.store("h/2", entry(100.0, frozenset({"other"})), {})
    report = await apply(c, PurgeRequest(tags=("album",)), now=150.0, shared=True)
    assert report.purged["memory"] == 1 and report.tags == 1
    assert c.tags.tags_of("h/1") == frozenset()  # its links went with it
    assert c.lookup("h/1", {}) is None and c.lookup("h/2", {}) is not None
    # a copy another instance stored (known to no local index) is refused on the way up
    assert not c._admit_lower("h/9", entry(120.0, frozenset({"album"})), now=160.0)
    assert c._admit_lower("h/9", entry(151.0, frozenset({"album"})), now=160.0)


async def test_the_lurker_drops_banned_entries_and_retires_old_bans() -> None:
    c = cache()
    c.ban_retention = 100.0
    c.store("h/a/1", entry(100.0), {})
    c.store("h/b/1", entry(100.0), {})
    c.bans.add("/a/", host="h", now=150.0)
    dropped, retired = await c.lurk(now=200.0)
    # the banned entry is gone; the ban stays: a lower-tier copy from before it may live
    assert (dropped, retired) == (1, 0)
    assert c.memory.get("h/a/1") is None and c.memory.get("h/b/1") is not None
    # later: every kept entry and the retention window are past the ban
    c.memory.delete("h/b/1")
    c.store("h/b/2", entry(300.0), {})
    dropped, retired = await c.lurk(now=400.0)
    assert (dropped, retired) == (0, 1) and len(c.bans) == 0


def test_a_snapshot_does_not_touch_recency_or_frequency() -> None:
    one = entry(100.0)
    memory = MemoryTier(2 * one.size, one.size)
    memory.put("a", one)
    memory.put("b", entry(100.0))
    memory.get("a")  # recency now b, a (insertion order is still a, b)
    for _ in range(3):
        assert [k for k, _ in memory.items()] == ["a", "b"]
        assert memory.peek("b") is not None
    memory.get("c")  # asked for once: more than b (snapshots and peeks are not requests)
    assert memory.put("c", entry(100.0))  # pushes out the least recent and least asked: b
    assert memory.get("b") is None and memory.get("a") is not None
