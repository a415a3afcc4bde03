from __future__ import annotations

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
