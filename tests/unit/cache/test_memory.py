from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.cache.entry import ENTRY_OVERHEAD, Entry
from proxy.cache.memory import MemoryTier
from proxy.cache.store import Cache
from proxy.http.freshness import Freshness


def _entry(size: int, vary: tuple[str, ...] = ()) -> Entry:
    fresh = Freshness(
        storable=True,
        reason="",
        lifetime=60,
        initial_age=0,
        stale_while_revalidate=0,
        stale_if_error=0,
        must_revalidate=False,
        no_cache=False,
    )
    return Entry(
        status=200,
        headers=[],
        origin_headers=[],
        body=b"x" * size,
        etag=None,
        last_modified=None,
        content_type=None,
        response_time=1000.0,
        freshness=fresh,
        vary=vary,
    )


def test_bounded_in_bytes_not_entries() -> None:
    tier = MemoryTier(max_bytes=10 * (1000 + ENTRY_OVERHEAD), max_object_bytes=5000)
    kept = [tier.put(f"k{i}", _entry(1000)) for i in range(30)]
    stats = tier.stats()
    assert stats["bytes"] <= 10 * (1000 + ENTRY_OVERHEAD)
    assert stats["entries"] == 10 and stats["evictions"] + stats["admission_rejections"] == 20
    # nobody asked for any of them: the ones kept are not pushed out by equally cold ones
    assert kept == [True] * 10 + [False] * 20
    for _ in range(2):  # asked for twice: now more popular than every kept entry
        assert tier.get("k29") is None
    assert tier.put("k29", _entry(1000))
    assert tier.peek("k29") is not None and tier.stats()["entries"] == 10


def test_per_object_limit() -> None:
    tier = MemoryTier(max_bytes=1 << 20, max_object_bytes=2000)
    assert not tier.put("big", _entry(5000))
    assert tier.get("big") is None


def test_entry_times_are_absolute() -> None:
    e = _entry(10)
    assert e.fresh_until == 1060.0
    assert e.age(1030.0) == 30


def test_variant_cap_and_invalidate_all_variants() -> None:
    cache = Cache(MemoryTier(1 << 20, 1 << 20), max_variants=3)
    names = ("accept-language",)
    for lang in ("en", "fr", "de"):
        assert cache.store("u", _entry(10, names), {"accept-language": lang})
    assert not cache.store("u", _entry(10, names), {"accept-language": "it"})
    assert cache.store("u", _entry(10, names), {"accept-language": "en"})  # replacing is fine
    assert isinstance(cache.lookup("u", {"accept-language": "fr"}), Entry)
    assert cache.lookup("u", {"accept-language": "it"}) is None
    assert cache.invalidate("u") == 4  # three variants and the index
    assert cache.lookup("u", {"accept-language": "en"}) is None


def test_no_cache_entry_is_never_fresh_nor_stale_servable() -> None:
    fresh = Freshness(
        storable=True,
        reason="",
        lifetime=60,
        initial_age=0,
        stale_while_revalidate=30,
        stale_if_error=0,
        must_revalidate=False,
        no_cache=True,
    )
    e = Entry(
        status=200,
        headers=[],
        origin_headers=[],
        body=b"x",
        etag='"a"',
        last_modified=None,
        content_type=None,
        response_time=1000.0,
        freshness=fresh,
    )
    assert e.fresh_until <= 1000.0


@settings(max_examples=60, deadline=None)
@given(
    ops=st.lists(
        st.tuples(
            st.sampled_from(["get", "get", "put", "delete", "admits", "promise"]),
            st.integers(0, 60),
            st.integers(0, 6000),
        ),
        max_size=400,
    )
)
def test_bytes_accounted_exactly_and_refused_entries_never_found(
    ops: list[tuple[str, int, int]],
) -> None:
    tier = MemoryTier(max_bytes=40_000, max_object_bytes=5_000)
    for op, k, size in ops:
        key = f"k{k}"
        if op == "get":
            tier.get(key)
        elif op == "put":
            kept = tier.put(key, _entry(size))
            assert kept == (tier.peek(key) is not None)
            if not kept:
                assert tier.get(key) is None
        elif op == "delete":
            tier.delete(key)
            assert tier.peek(key) is None
        elif op == "promise":
            tier.promise(key)
        elif tier.admits(key, size + ENTRY_OVERHEAD):
            assert tier.put(key, _entry(size)), "a yes from admits is binding"
        stats = tier.stats()
        items = tier.items()
        assert stats["bytes"] == sum(value.size for _, value in items) <= 40_000
        assert stats["entries"] == len(items) == len(tier.key_snapshot())


def test_a_small_object_asked_for_as_often_as_a_large_one_is_kept_instead() -> None:
    """Per byte: one 4 KB object asked for twice earns more hits from the memory it takes
    than a 16 KB one asked for twice."""
    large = _entry(16_000)
    tier = MemoryTier(max_bytes=4 * large.size, max_object_bytes=20_000)
    for i in range(4):
        tier.get(f"large{i}")
        tier.get(f"large{i}")
        assert tier.put(f"large{i}", large)
    tier.get("small")
    tier.get("small")
    assert tier.put("small", _entry(4_000))
    stats = tier.stats()
    assert stats["entries"] == 4 and stats["evictions"] == 1 and tier.peek("small") is not None


def test_a_size_told_before_the_body_is_weighed_as_the_entry_will_be() -> None:
    """Content-Length lacks the bytes every entry carries: a cold object asked for as
    often as the residents does not outweigh them by those bytes."""
    body = 8192
    resident = _entry(body)
    tier = MemoryTier(max_bytes=8 * resident.size, max_object_bytes=1 << 20)
    for i in range(8):
        for _ in range(2):
            tier.get(f"hot{i}")
        assert tier.put(f"hot{i}", resident)
    for _ in range(2):
        tier.get("cold")
    assert not tier.admits("cold", body)  # as often, and the same size once stored
    tier.get("cold")
    assert tier.admits("cold", body) and tier.put("cold", _entry(body))
