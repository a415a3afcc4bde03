"""Purges carried out on this instance (proxy/purge/engine.py): what they remove, and
that a large one gives the event loop back between slices (proxy/cache/pacing.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

import pytest

import proxy.purge.engine as engine
from proxy.cache.entry import Entry
from proxy.cache.memory import MemoryTier
from proxy.cache.pacing import Pacer
from proxy.cache.store import Cache
from proxy.http.freshness import Freshness
from proxy.purge.engine import apply
from proxy.purge.request import PrefixPurge, PurgeRequest

T = TypeVar("T")
FRESH = Freshness(True, "", 300.0, 0.0, 30.0, 0.0, False, False)


def entry(tags: frozenset[str] = frozenset()) -> Entry:
    return Entry(
        status=200,
        headers=[],
        origin_headers=[],
        body=b"x",
        etag=None,
        last_modified=None,
        content_type=None,
        response_time=100.1,
        freshness=FRESH,
        request_time=100.0,
        tags=tags,
    )


def cache_with(keys: list[str], tags: frozenset[str] = frozenset()) -> Cache:
    c = Cache(MemoryTier(1 << 26, 1 << 16), 4)
    for key in keys:
        assert c.store(key, entry(tags), {})
    return c


async def with_ticker(work: Awaitable[T]) -> tuple[T, int]:
    """Run `work` while another task counts how often it gets the loop."""
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    start = ticks
    result = await work
    task.cancel()
    return result, ticks - start


async def test_pacer_yields_only_once_its_slice_is_used() -> None:
    async def ticks_of(pacer: Pacer) -> int:
        async def work() -> None:
            for _ in range(100):
                await pacer.tick()

        return (await with_ticker(work()))[1]

    assert await ticks_of(Pacer(0.0)) >= 100  # a slice of 0 s: every unit
    assert await ticks_of(Pacer(3600.0)) == 0  # one slice holds it all


async def test_a_100k_url_purge_gives_the_loop_back_between_slices(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cached = [f"h/u/{i}" for i in range(0, 100_000, 100)]
    c = cache_with([*cached, "h/keep"])
    monkeypatch.setattr(engine, "Pacer", lambda: Pacer(0.0))  # yield at every step
    req = PurgeRequest(keys=tuple(f"h/u/{i}" for i in range(100_000)))
    report, ticks = await with_ticker(apply(c, req, now=200.0, shared=True))
    assert report.purged["memory"] == len(cached)
    assert all(c.lookup(key, {}) is None for key in cached)
    assert c.lookup("h/keep", {}) is not None
    assert ticks >= 100_000 // engine.MEMORY_BATCH  # other tasks ran between the slices


@pytest.mark.parametrize("soft", [False, True])
async def test_tags_and_prefixes(soft: bool) -> None:
    c = cache_with([f"h/t/{i}" for i in range(300)], frozenset({"album"}))
    c.store("h/p/1", entry(), {})
    c.store("h/other", entry(), {})
    req = PurgeRequest(tags=("album",), prefixes=(PrefixPurge("h", "/p/"),), soft=soft)
    report = await apply(c, req, now=200.0, shared=True)
    assert (report.purged["memory"], report.tags, report.bans) == (300, 1, 1)
    for key in ("h/t/0", "h/t/299", "h/p/1"):
        found = c.lookup(key, {})
        if soft:  # kept, stale from the purge on
            assert isinstance(found, Entry) and found.fresh_until == 200.0
        else:
            assert found is None
    assert isinstance(c.lookup("h/other", {}), Entry)
    # tag links go with the entries a hard purge removes, and stay with soft ones
    assert c.tags.keys_for("album") == (set() if not soft else {f"h/t/{i}" for i in range(300)})
