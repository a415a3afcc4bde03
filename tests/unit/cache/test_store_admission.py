"""Cache.admits and Cache.store with the memory tier's admission (W-TinyLFU): a refused
entry is known before its body, never stored in memory, left out of the tag index, and
a yes before the body holds when it is stored."""

from __future__ import annotations

from typing import Any

from proxy.cache.entry import Entry
from proxy.cache.memory import MemoryTier
from proxy.cache.store import Cache
from proxy.http.freshness import Freshness

FRESH = Freshness(True, "", 300.0, 0.0, 0.0, 0.0, False, False)
BODY = b"x" * 1000


def entry(vary: tuple[str, ...] = (), tags: tuple[str, ...] = ()) -> Entry:
    return Entry(
        status=200,
        headers=[],
        origin_headers=[],
        body=BODY,
        etag=None,
        last_modified=None,
        content_type=None,
        response_time=100.1,
        freshness=FRESH,
        vary=vary,
        request_time=100.0,
        tags=frozenset(tags),
    )


SIZE = entry().size


class TakesAll:
    """A lower tier that takes any size (writes are dropped: no spawn is given)."""

    name = "lower"

    def accepts(self, key: str, size: int) -> bool:
        return True

    def stats(self) -> dict[str, Any]:
        return {}

    async def get(self, key: str) -> Entry | None:
        return None

    async def put(self, key: str, entry: Entry, now: float) -> bool:
        return True

    async def delete(self, *keys: str) -> int:
        return 0


def full_cache(lower: bool = False) -> Cache:
    """Ten entries fill memory, each asked for three times."""
    c = Cache(MemoryTier(10 * SIZE, 10 * SIZE), max_variants=4, lower=[TakesAll()] if lower else [])
    for i in range(10):
        for _ in range(3):
            c.lookup(f"h/old{i}", {})
        assert c.store(f"h/old{i}", entry(), {})
    return c


def test_an_entry_memory_refuses_is_known_before_its_body_and_not_stored() -> None:
    c = full_cache()
    c.lookup("h/cold", {})  # asked for once: less than any entry it would push out
    assert not c.admits("h/cold", (), {}, SIZE, 100.0)
    assert not c.store("h/cold", entry(tags=("t",)), {})
    assert c.memory.peek("h/cold") is None and "h/cold" not in c.tags
    assert c.memory.stats()["admission_rejections"] == 2  # one per refused answer
    assert all(c.memory.peek(f"h/old{i}") is not None for i in range(10))


def test_a_lower_tier_still_stores_what_memory_refuses() -> None:
    c = full_cache(lower=True)
    c.lookup("h/cold", {})
    assert c.admits("h/cold", (), {}, SIZE, 100.0)
    assert c.store("h/cold", entry(), {})  # kept by the lower tier
    assert c.memory.peek("h/cold") is None


def test_a_yes_before_the_body_holds_when_the_body_is_stored() -> None:
    c = full_cache()
    for _ in range(5):
        c.lookup("h/new", {})
    assert c.admits("h/new", (), {}, SIZE, 100.0)
    for _ in range(10):  # meanwhile every kept entry becomes more popular than h/new
        for i in range(10):
            c.lookup(f"h/old{i}", {})
    assert c.store("h/new", entry(), {})
    assert c.memory.peek("h/new") is not None


def test_a_refused_variant_is_not_indexed() -> None:
    c = full_cache()
    vary = ("accept-language",)
    c.lookup("h/v", {"accept-language": "fr"})
    assert not c.admits("h/v", vary, {"accept-language": "fr"}, SIZE, 100.0)
    assert not c.store("h/v", entry(vary, tags=("t",)), {"accept-language": "fr"})
    assert c.lookup("h/v", {"accept-language": "fr"}) is None
    assert len(c.tags) == 0


def test_checks_and_purges_are_not_counted_as_requests() -> None:
    c = full_cache()
    before = c.memory._cache.frequency("h/old0")
    for _ in range(5):
        c.admits("h/old0", (), {}, SIZE, 100.0)
        c.purge_memory(["h/absent"], soft=True, now=200.0)
        c.mark_uncacheable("h/old0", 300.0)
    assert c.memory._cache.frequency("h/old0") == before
