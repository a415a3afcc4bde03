"""An entry on its way to a lower tier is found while its write is in flight (a request
in between is not a second origin fetch), purged with the key, and covered by bans;
once written it is read from the tier. A real disk tier on a temporary directory."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any

import pytest

from proxy.cache.disk import DiskTier
from proxy.cache.memory import MemoryTier
from proxy.cache.store import Cache
from tests.unit.cache.test_store_admits import entry

BODY = b"d" * 100_000  # larger than memory takes: the disk tier only


@pytest.fixture
async def cache(tmp_path: Path) -> AsyncIterator[Cache]:
    disk = DiskTier(tmp_path, max_bytes=1 << 24, max_object_bytes=1 << 22)
    await disk.open()
    tasks: list[asyncio.Task[Any]] = []

    def spawn(coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        tasks.append(asyncio.ensure_future(coro))
        return tasks[-1]

    c = Cache(MemoryTier(1 << 20, 1 << 12), 2, lower=[disk], spawn=spawn)
    yield c
    await asyncio.gather(*tasks)
    await disk.close()


async def _settle(c: Cache) -> None:
    for _ in range(500):  # the writes are a few turns of the loop and a thread (hang guard)
        if not c.writing:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("a write never finished")


async def test_found_while_being_written_then_read_from_the_tier(cache: Cache) -> None:
    e = entry(body=BODY, request_time=time.time())
    assert cache.store("h/a", e, {})
    assert cache.memory.peek("h/a") is None  # too large for memory
    found = await cache.find("h/a", {})  # before the write task ran
    assert found.value is e and found.body is None
    await _settle(cache)
    found = await cache.find("h/a", {})
    assert found.tier == "disk" and found.value is not None
    if found.body is not None:
        await found.body.aclose()


async def test_a_purge_drops_the_entry_being_written(cache: Cache) -> None:
    assert cache.store("h/b", entry(body=BODY, request_time=time.time()), {})
    cache.invalidate("h/b")
    assert "h/b" not in cache.writing
    await _settle(cache)


async def test_a_ban_covers_the_entry_being_written(cache: Cache) -> None:
    assert cache.store("h/c", entry(body=BODY, request_time=time.time()), {})
    cache.bans.add("/c", host="h", now=time.time() + 10)
    found = await cache.find("h/c", {})
    assert found.value is None or found.tier != "memory"
    await _settle(cache)
