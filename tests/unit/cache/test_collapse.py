from __future__ import annotations

import asyncio

import pytest

from proxy.cache.collapse import Fetch, FetchAborted


async def test_late_joiner_gets_every_byte_while_kept() -> None:
    fetch = Fetch("k", window=100)
    first = fetch.subscribe()
    await fetch.append(b"ab")
    late = fetch.subscribe()
    await fetch.append(b"cd")
    fetch.finish()
    assert b"".join([c async for c in fetch.stream(first)]) == b"abcd"
    assert b"".join([c async for c in fetch.stream(late)]) == b"abcd"


async def test_pass_through_memory_is_bounded_by_the_slowest_reader() -> None:
    fetch = Fetch("k", window=1000)
    fetch.stop_keeping()
    reader = fetch.subscribe()
    peak = 0

    async def produce() -> None:
        nonlocal peak
        for _ in range(200):
            await fetch.append(b"x" * 100)
            peak = max(peak, fetch.buffered)
        fetch.finish()

    async def consume() -> int:
        total = 0
        async for chunk in fetch.stream(reader):
            total += len(chunk)
            await asyncio.sleep(0)
        return total

    _, total = await asyncio.gather(produce(), consume())
    assert total == 20_000
    assert peak <= 1100  # window plus one chunk
    assert not fetch.can_join()


async def test_failure_after_head_aborts_readers() -> None:
    fetch = Fetch("k", window=100)
    reader = fetch.subscribe()
    await fetch.append(b"partial")
    fetch.fail(RuntimeError("origin reset"))
    with pytest.raises(FetchAborted):
        async for _ in fetch.stream(reader):
            pass


async def test_abandoned_when_nobody_reads_an_unstorable_object() -> None:
    fetch = Fetch("k", window=100)
    reader = fetch.subscribe()
    fetch.stop_keeping()
    assert not fetch.abandoned
    fetch.unsubscribe(reader)
    assert fetch.abandoned
