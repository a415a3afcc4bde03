"""Bans (proxy/cache/bans.py): matching, time, soft, the lurker rule and the bound."""

from __future__ import annotations

import asyncio
import math
from bisect import insort

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import proxy.cache.bans as bans_module
from proxy.cache.bans import Ban, BanList, TagBans, lurk
from proxy.cache.keys import split_url, url_of
from proxy.cache.pacing import Pacer

T0 = 1_700_000_000.0


def prefix_matches(prefix: str, target: str) -> bool:
    """The matching rule, naively: `target` (path [+ "?" query]) is `prefix` or below
    it, on whole segments. The model the trie in BanList is checked against."""
    if not target.startswith(prefix):
        return False
    if prefix.endswith("/") or len(target) == len(prefix):
        return True
    return target[len(prefix)] in "/?"


@pytest.mark.parametrize(
    ("key", "url"),
    [
        ("h.com/a?b=1", "h.com/a?b=1"),
        ("h.com/a\x00accept-encoding=gzip", "h.com/a"),  # a Vary variant
        ("h.com/i.jpg?w=1\x00image\x00webp:w=100", "h.com/i.jpg?w=1"),  # an image variant
    ],
)
def test_url_of_key(key: str, url: str) -> None:
    assert url_of(key) == url


def test_split_url() -> None:
    assert split_url("h.com/a/b?x") == ("h.com", "/a/b?x")
    assert split_url("[::1]/") == ("[::1]", "/")
    assert split_url("odd") == ("odd", "/")


@pytest.mark.parametrize(
    ("prefix", "target", "matches"),
    [
        ("/a/b/", "/a/b/c", True),
        ("/a/b/", "/a/b/", True),
        ("/a/b/", "/a/bc", False),
        ("/a/b/", "/a/b", False),
        ("/a/b", "/a/b", True),
        ("/a/b", "/a/b/c", True),
        ("/a/b", "/a/b?x=1", True),
        ("/a/b", "/a/bc", False),
        ("/v/1", "/v/10", False),
        ("/", "/anything?at=all", True),
        ("/a", "/b", False),
    ],
)
def test_prefix_matches_whole_segments(prefix: str, target: str, matches: bool) -> None:
    assert prefix_matches(prefix, target) is matches
    bans = BanList()
    bans.add(prefix, now=T0)
    assert (bans.check(f"h{target}", T0 - 1) is not None) is matches


def test_entry_stored_before_a_ban_is_banned_after_is_not() -> None:
    bans = BanList()
    ban = bans.add("/a/b/", now=T0)
    assert bans.check("h.com/a/b/c.mp4", T0 - 1) == ban
    assert bans.check("h.com/a/b/c.mp4", T0) == ban  # a tie counts as before
    assert bans.check("h.com/a/b/c.mp4", T0 + 0.001) is None  # the refetched copy
    assert bans.check("h.com/a/bc", T0 - 1) is None
    assert bans.check("other.org/a/b/x", T0 - 1) == ban  # no host: every host


def test_host_ban_only_hits_its_host_and_variants_are_covered() -> None:
    bans = BanList()
    ban = bans.add("/v/", host="a.com", now=T0)
    assert bans.check("a.com/v/1.m3u8", T0 - 5) == ban
    assert bans.check("a.com/v/1.m3u8\x00accept-encoding=br", T0 - 5) == ban
    assert bans.check("b.com/v/1.m3u8", T0 - 5) is None


def test_soft_flag_returned_and_hard_wins() -> None:
    bans = BanList()
    soft = bans.add("/a/", soft=True, now=T0)
    assert bans.check("h/a/x", T0 - 1) == soft and soft.soft
    hard = bans.add("/a/x", now=T0 - 0.5)  # inserted before the soft one in time
    newest_soft = bans.add("/a/", soft=True, now=T0 + 1)
    assert bans.check("h/a/x", T0 - 1) == hard  # hard wins whatever the order
    assert bans.check("h/a/y", T0 - 1) == newest_soft
    assert bans.check("h/a/x", T0 - 0.2) == newest_soft  # stored after the hard one


def test_ids_increase_and_clock_steps_keep_order() -> None:
    bans = BanList()
    first = bans.add("/x", now=T0)
    late = bans.add("/y", now=T0 - 100)  # the clock stepped back
    assert late.id == first.id + 1
    assert [b.created for b in bans.bans()] == [T0 - 100, T0]
    assert bans.check("h/y", T0 - 200) == late
    assert bans.check("h/y", T0 - 50) is None
    assert bans.newest == T0


def test_check_costs_the_matching_bans_not_all_bans(monkeypatch: pytest.MonkeyPatch) -> None:
    bans = BanList(max_bans=20_000)
    for i in range(10_000):
        bans.add(f"/p{i}/", now=T0 + i)
    bans.add("/p5", host="h", soft=True, now=T0 + 1)
    compared: list[Ban] = []
    original = bans_module._newer

    def counting(ban: Ban, than: Ban | None) -> bool:
        compared.append(ban)
        return original(ban, than)

    monkeypatch.setattr(bans_module, "_newer", counting)
    # Stored after all of them: the one comparison with `newest` answers.
    assert bans.check("h/p5/x", T0 + 20_000) is None
    assert compared == []
    # Stored before all of them: only the bans of the prefixes of the URL are looked at.
    found = bans.check("h/p5/x?y=1", T0 - 1)
    assert found is not None and found.prefix == "/p5/" and not found.soft
    assert sorted(b.prefix for b in compared) == ["/p5", "/p5/"]
    compared.clear()
    assert bans.check("h/q/p5/x", T0 - 1) is None
    assert compared == []


def test_add_refuses_non_paths() -> None:
    with pytest.raises(ValueError):
        BanList().add("a.com/x")
    with pytest.raises(ValueError):
        BanList(max_bans=0)


def test_retire_drops_bans_older_than_every_entry() -> None:
    bans = BanList()
    bans.add("/a", now=T0)
    b2 = bans.add("/b", now=T0 + 10)
    assert bans.retire(T0 + 5) == 1
    assert bans.bans() == [b2]
    assert bans.retired == 1
    # A ban exactly at the bound still matters (entries stored at T0+10 are banned).
    assert bans.retire(T0 + 10) == 0
    assert bans.retire(T0 + 10.001) == 1
    assert len(bans) == 0 and bans.newest == float("-inf")
    assert bans.check("h/b", 0.0) is None


def test_bound_collapses_oldest_into_conservative_floors() -> None:
    bans = BanList(max_bans=10)
    for i in range(10):
        bans.add(f"/h{i}", soft=i % 2 == 1, now=T0 + i)
    assert bans.floor_hard is None and len(bans) == 10
    bans.add("/new", now=T0 + 10)  # 11 > 10: the oldest two collapse (keep 9)
    assert bans.collapsed == 2
    assert bans.floor_hard is not None and bans.floor_hard.created == T0
    assert bans.floor_soft is not None and bans.floor_soft.created == T0 + 1
    assert len(bans._bans) == 9
    # Everything stored at or before the floor is banned now, on any path...
    assert bans.check("any.host/unrelated", T0) == bans.floor_hard
    # ...softly between the hard and the soft floor: no soft purge became hard.
    floor_soft = bans.check("any.host/unrelated", T0 + 0.5)
    assert floor_soft is not None and floor_soft.soft
    assert bans.check("any.host/unrelated", T0 + 1.5) is None
    # A ban still in the list is not affected.
    kept = bans.check("h/h5", T0 + 4)
    assert kept is not None and kept.prefix == "/h5" and kept.soft
    # Floors retire like bans.
    assert bans.retire(T0 + 1.5) == 2
    assert bans.floor_hard is None and bans.floor_soft is None


@settings(max_examples=200, deadline=None)
@given(
    bans_in=st.lists(
        st.tuples(
            st.sampled_from(["/", "/a", "/a/", "/a/b", "/b/"]),
            st.sampled_from([None, "h1", "h2"]),
            st.booleans(),
            st.integers(0, 50),
        ),
        max_size=30,
    ),
    bound=st.integers(1, 8),
    key=st.sampled_from(["h1/a", "h1/a/b", "h2/a/bc?x", "h2/b/1", "h1/c"]),
    stored=st.integers(0, 55),
)
def test_fuzz_against_a_model(
    bans_in: list[tuple[str, str | None, bool, int]], bound: int, key: str, stored: int
) -> None:
    """A bounded list never bans less than the unbounded truth, never hard-bans what only
    soft bans cover, and stays within its bound."""
    bounded = BanList(max_bans=bound)
    for prefix, host, soft, at in bans_in:
        bounded.add(prefix, host=host, soft=soft, now=float(at))
        assert len(bounded._bans) <= bound
    host, target = split_url(key)
    truth = [
        soft
        for prefix, h, soft, at in bans_in
        if at >= stored and (h is None or h == host) and prefix_matches(prefix, target)
    ]
    got = bounded.check(key, float(stored))
    if truth:
        assert got is not None
        if not all(truth):  # a hard ban applies
            assert not got.soft
    if got is not None and not got.soft:
        # Hard only if some hard ban was made at or after `stored` (maybe now a floor).
        assert any(not soft and at >= stored for _, _, soft, at in bans_in)


def test_lurk_applies_bans_and_reports_the_oldest_survivor() -> None:
    bans = BanList()
    bans.add("/gone/", now=T0)
    bans.add("/stale/", soft=True, now=T0)
    entries = [
        ("h/gone/1", T0 - 10),
        ("h/stale/1", T0 - 20),
        ("h/keep", T0 - 30),
        ("h/gone/2", T0 + 1),  # stored after the ban: stays
    ]
    report = asyncio.run(lurk(entries, bans))
    assert report.hard == ["h/gone/1"]
    assert report.soft == ["h/stale/1"]
    assert report.oldest == T0 - 30  # soft-banned entries still count: they stay cached
    assert report.checked == 4
    assert asyncio.run(lurk([], bans)).oldest is None


def test_lurk_yields_between_batches() -> None:
    bans = BanList()
    ticks = 0

    async def main() -> None:
        nonlocal ticks

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        before = ticks
        # a slice of 0 s: the loop gets a turn after every entry
        await lurk(((f"h/{i}", T0) for i in range(50)), bans, Pacer(0.0))
        task.cancel()
        assert ticks - before >= 50

    asyncio.run(main())


def test_lurker_rule_end_to_end() -> None:
    """The rule: retire(min(oldest survivor, oldest fetch in flight))."""
    bans = BanList()
    bans.add("/a/", now=T0)
    inflight_started = T0 - 1  # a fetch that began before the ban, not yet stored
    report = asyncio.run(lurk([("h/a/1", T0 - 5), ("h/b", T0 + 3)], bans))
    assert report.hard == ["h/a/1"] and report.oldest == T0 + 3
    bans.retire(min(report.oldest, inflight_started))
    # The ban survives for the fetch in flight: stored later with its start time...
    assert bans.check("h/a/1", inflight_started) is not None
    # ...and goes once that fetch is stored and nothing older remains.
    assert bans.retire(T0 + 3) == 1


# -- the index against a naive scan ------------------------------------------------------


class NaiveBans:
    """BanList without its index: every check scans every ban. Same bound and floors."""

    def __init__(self, max_bans: int) -> None:
        self.max_bans = max_bans
        self.bans: list[Ban] = []
        self.next_id = 1
        self.floors: dict[bool, Ban] = {}  # soft -> floor

    def add(self, prefix: str, host: str | None, soft: bool, now: float) -> None:
        insort(self.bans, Ban(self.next_id, now, prefix, host, soft), key=lambda b: b.created)
        self.next_id += 1
        if len(self.bans) > self.max_bans:
            old = self.bans[: len(self.bans) - self.max_bans * 9 // 10]
            del self.bans[: len(old)]
            for soft_ in (False, True):
                group = [b for b in old if b.soft is soft_]
                floor = self.floors.get(soft_)
                if group and (floor is None or group[-1].created > floor.created):
                    self.floors[soft_] = Ban(group[-1].id, group[-1].created, "/", None, soft_)

    def retire(self, before: float) -> None:
        self.bans = [b for b in self.bans if b.created >= before]
        self.floors = {s: f for s, f in self.floors.items() if f.created >= before}

    def check(self, key: str, stored_at: float) -> Ban | None:
        host, target = split_url(url_of(key))
        live = [
            b
            for b in self.bans
            if b.created >= stored_at
            and (b.host is None or b.host == host)
            and prefix_matches(b.prefix, target)
        ]
        newest = {
            soft: max(
                (b for b in live if b.soft is soft), key=lambda b: (b.created, b.id), default=None
            )
            for soft in (False, True)
        }
        floors = {s: f for s, f in self.floors.items() if stored_at <= f.created}
        return newest[False] or floors.get(False) or newest[True] or floors.get(True)


_PATHS = st.text(alphabet="/?ab", max_size=7).map(lambda s: "/" + s)
_ADD = st.tuples(
    st.just("add"), _PATHS, st.sampled_from([None, "h1", "h2"]), st.booleans(), st.integers(0, 40)
)
_RETIRE = st.tuples(st.just("retire"), st.integers(0, 45), st.sampled_from([None, 1, 3]))


@settings(max_examples=400, deadline=None)
@given(
    ops=st.lists(st.one_of(_ADD, _ADD, _ADD, _RETIRE), max_size=40),
    bound=st.sampled_from([4, 10, 10_000]),
    keys=st.lists(
        st.tuples(st.sampled_from(["h1", "h2", "h3"]), _PATHS, st.sampled_from(["", "\x00v"])),
        min_size=1,
        max_size=8,
    ),
    stored=st.integers(-1, 42),
)
def test_the_index_answers_exactly_as_a_naive_scan(
    ops: list[tuple], bound: int, keys: list[tuple[str, str, str]], stored: int
) -> None:
    fast, naive = BanList(max_bans=bound), NaiveBans(bound)
    for op in ops:
        if op[0] == "add":
            _, prefix, host, soft, at = op
            fast.add(prefix, host=host, soft=soft, now=float(at))
            naive.add(prefix, host, soft, float(at))
        else:
            _, before, limit = op
            if limit is None:
                fast.retire(float(before))
            else:  # in slices, as the lurker does
                while fast.retire(float(before), limit=limit) >= limit:
                    pass
            naive.retire(float(before))
        for host, path, variant in keys:
            key = f"{host}{path}{variant}"
            assert fast.check(key, float(stored)) == naive.check(key, float(stored)), key
    assert fast.bans() == sorted(naive.floors.values(), key=lambda b: b.created) + naive.bans
    fast.retire(math.inf)
    assert not fast._index._roots  # nothing left behind once every ban went


def test_retire_in_slices_and_the_index_empties() -> None:
    bans = BanList()
    for i in range(1000):
        bans.add(f"/a/{i}/b", host="h" if i % 2 else None, now=T0 + i)
    assert bans.retire(T0 + 500, limit=200) == 200
    assert bans.retire(T0 + 500, limit=200) == 200
    assert bans.retire(T0 + 500, limit=200) == 100
    assert bans.retire(T0 + 500, limit=200) == 0
    assert bans.check("h/a/499/b", T0) is None and bans.check("h/a/500/b", T0) is not None
    assert bans.retire(math.inf) == 500 and not bans._index._roots


def test_tag_bans_check_by_tag_and_retire_in_slices() -> None:
    tags = TagBans()
    for i in range(10):
        tags.add([f"t{i}"], soft=i == 9, now=T0 + i)
    assert tags.check(frozenset({"t3", "other"}), T0 + 3) == (T0 + 3, False)
    assert tags.check(frozenset({"t3"}), T0 + 3.5) is None  # stored after its ban
    assert tags.check(frozenset({"t9"}), T0) == (T0 + 9, True)
    tags.add(["late"], soft=False, now=T0 - 100)  # from the bus, an older time
    assert tags.retire(T0 + 5, limit=2) == 2
    assert tags.retire(T0 + 5, limit=2) == 2
    assert tags.retire(T0 + 5, limit=2) == 1  # t5 is not older than the bound
    assert len(tags) == 6
    # the late ban waits behind newer ones: kept longer, never dropped early
    assert tags.check(frozenset({"late"}), T0 - 200) == (T0 - 100, False)
    assert tags.retire(math.inf) == 6 and len(tags) == 0
