"""Bans (proxy/cache/bans.py): matching, time, soft, the lurker rule and the bound."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.cache.bans import Ban, BanList, lurk, prefix_matches, split_url, url_of_key

T0 = 1_700_000_000.0


@pytest.mark.parametrize(
    ("key", "url"),
    [
        ("h.com/a?b=1", "h.com/a?b=1"),
        ("h.com/a\x00accept-encoding=gzip", "h.com/a"),  # a Vary variant
        ("h.com/i.jpg?w=1\x00image\x00webp:w=100", "h.com/i.jpg?w=1"),  # an image variant
    ],
)
def test_url_of_key(key: str, url: str) -> None:
    assert url_of_key(key) == url


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


def test_check_only_walks_newer_bans(monkeypatch: pytest.MonkeyPatch) -> None:
    bans = BanList()
    for i in range(1000):
        bans.add(f"/p{i}", now=T0 + i)
    tested: list[str] = []
    original = Ban.matches

    def counting(self: Ban, host: str, target: str) -> bool:
        tested.append(self.prefix)
        return original(self, host, target)

    monkeypatch.setattr(Ban, "matches", counting)
    # Stored after all of them: the one comparison with `newest` answers.
    assert bans.check("h/p5", T0 + 5000) is None
    assert tested == []
    # Stored after ban 997: only the two newer bans are tested.
    assert bans.check("h/p5", T0 + 997.5) is None
    assert tested == ["/p999", "/p998"]
    assert bans.check("h/p999", T0 + 997.5) is not None


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
    report = asyncio.run(lurk(entries, bans, batch_size=2))
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
        await lurk([(f"h/{i}", T0) for i in range(5000)], bans, batch_size=500)
        task.cancel()
        assert ticks - before >= 9  # the loop ran between the 10 batches

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
