"""Disk bodies streamed from their files (issue 11 item 5): the CRC is checked before a
streamed response begins, once per file version; a file changed behind the tier's back
is checked again; a stream closed mid-read never closes a descriptor under a read."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from proxy.cache import codec
from proxy.cache.disk import CHUNK_BYTES, DiskTier
from tests.unit.cache.test_disk import NOW, damage, make_entry, path_of

BODY = os.urandom(4 * CHUNK_BYTES + 99)


@pytest.fixture
async def tier(tmp_path: Path) -> AsyncIterator[DiskTier]:
    t = DiskTier(tmp_path / "disk", max_bytes=64 << 20, max_object_bytes=64 << 20, io_threads=4)
    await t.open(now=NOW)
    assert await t.put("k", make_entry(BODY), NOW)
    yield t
    await t.close()


async def _verify_reads(tier: DiskTier) -> int:
    """Body bytes the tier read to verify one fresh open of "k"."""
    stream = await tier.open_body("k", now=NOW)
    assert stream is not None
    async with stream:
        before = tier.stats()["bytes_read"]
        await stream.verify()
        return int(tier.stats()["bytes_read"] - before)


async def test_the_body_is_checked_once_per_file_version(tier: DiskTier) -> None:
    assert await _verify_reads(tier) == len(BODY)
    assert await _verify_reads(tier) == 0  # same file, only our own LRU touches since
    whole = await tier.get("k", now=NOW)  # a whole read checks the CRC by itself
    assert whole is not None and whole.body == BODY
    assert await _verify_reads(tier) == 0


@pytest.mark.parametrize("how", ["flipped", "garbage"])
async def test_a_file_changed_after_its_check_is_checked_again(tier: DiskTier, how: str) -> None:
    assert await _verify_reads(tier) == len(BODY)
    path = path_of(Path(tier.root), "k")
    await asyncio.sleep(0.02)  # a later ctime tick than our own last touch
    damage(path, how)
    stream = await tier.open_body("k", now=NOW)
    if stream is not None:  # garbage fails the header check at open already
        with pytest.raises(codec.CorruptEntry):
            await stream.verify()
    assert not path.exists() and "k" not in tier
    stats = tier.stats()
    assert (stats["corrupt_dropped"], stats["hits"], stats["misses"]) == (1, 1, 1)


async def test_many_concurrent_opens_agree_and_drop_nothing(tier: DiskTier) -> None:
    async def one() -> bytes:
        stream = await tier.open_body("k", now=NOW)
        assert stream is not None
        async with stream:
            await stream.verify()
            return b"".join([c async for c in stream])

    bodies = await asyncio.gather(*(one() for _ in range(24)))
    assert all(b == BODY for b in bodies)
    assert tier.stats()["corrupt_dropped"] == 0
    assert await _verify_reads(tier) == 0


async def test_a_stream_closed_while_a_read_runs_stays_correct(tier: DiskTier) -> None:
    # The client leaves mid-read: the read finishes in its thread, then the file closes.
    for _ in range(20):
        stream = await tier.open_body("k", now=NOW)
        assert stream is not None
        task = asyncio.ensure_future(anext(stream.pieces(CHUNK_BYTES, len(BODY))))
        await asyncio.sleep(0)
        task.cancel()
        await stream.aclose()
        with pytest.raises((asyncio.CancelledError, StopAsyncIteration)):
            await task
    with pytest.raises(ValueError):
        async for _ in stream:
            pass
    again = await tier.get("k", now=NOW)
    assert again is not None and again.body == BODY


async def test_ranges_read_only_their_bytes(tier: DiskTier) -> None:
    stream = await tier.open_body("k", now=NOW)
    assert stream is not None
    async with stream:
        before = tier.stats()["bytes_read"]
        got = b"".join([c async for c in stream.pieces(CHUNK_BYTES + 7, 2 * CHUNK_BYTES + 9)])
        assert got == BODY[CHUNK_BYTES + 7 : 2 * CHUNK_BYTES + 9]
        assert tier.stats()["bytes_read"] - before == len(got)
