"""Entries derived from a source (image variants) go when the source is invalidated."""

from __future__ import annotations

import pytest

from proxy.cache import store
from proxy.cache.entry import Entry
from proxy.cache.memory import MemoryTier
from proxy.cache.store import Cache
from proxy.http.freshness import Freshness

FRESH = Freshness(
    storable=True,
    reason="",
    lifetime=60.0,
    initial_age=0.0,
    stale_while_revalidate=0.0,
    stale_if_error=0.0,
    must_revalidate=False,
    no_cache=False,
)


def entry(body: bytes = b"x") -> Entry:
    return Entry(
        status=200,
        headers=[],
        origin_headers=[],
        body=body,
        etag=None,
        last_modified=None,
        content_type=None,
        response_time=0.0,
        freshness=FRESH,
    )


def cache() -> Cache:
    return Cache(MemoryTier(1 << 20, 1 << 16), max_variants=4)


def test_invalidating_the_source_drops_linked_entries() -> None:
    c = cache()
    c.store("h/a.jpg", entry(), {})
    for key in ("h/a.jpg\x00image\x00w=1", "h/a.jpg\x00image\x00w=2"):
        c.link("h/a.jpg", key)
        c.store(key, entry(), {})
    c.store("h/b.jpg", entry(), {})
    assert c.invalidate("h/a.jpg") == 3
    assert c.memory.get("h/a.jpg\x00image\x00w=1") is None
    assert c.memory.get("h/b.jpg") is not None
    assert c.invalidate("h/a.jpg") == 0  # the links went with the entries


def test_the_index_is_bounded_and_never_leaves_an_unlinked_entry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(store, "MAX_LINKED_SOURCES", 2)
    monkeypatch.setattr(store, "MAX_DERIVED_PER_SOURCE", 2)
    c = cache()
    for n in range(3):  # the third variant pushes out the oldest, and its entry
        c.link("s1", f"s1|{n}")
        c.store(f"s1|{n}", entry(), {})
    assert c.memory.get("s1|0") is None and c.memory.get("s1|2") is not None
    c.link("s2", "s2|0")
    c.store("s2|0", entry(), {})
    c.link("s3", "s3|0")  # a third source: the least recently linked (s1) goes
    c.store("s3|0", entry(), {})
    assert list(c.derived) == ["s2", "s3"]
    assert c.memory.get("s1|1") is None and c.memory.get("s1|2") is None
