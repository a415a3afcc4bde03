from __future__ import annotations

import asyncio
from pathlib import Path

import orjson

from proxy.serve.access_log import FLUSH_BYTES, AccessLog


async def test_a_burst_is_written_whole_without_waiting_for_the_timer(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    log = AccessLog(str(path))
    n = 50_000  # ~3 MB: far more than the in-memory cap if nothing were flushed early
    for i in range(n):
        log.write({"i": i, "path": "/x" * 20})
        if i % 100 == 0:
            await asyncio.sleep(0)  # requests yield to the loop between them
    await asyncio.sleep(0)
    log.close()
    lines = path.read_bytes().splitlines()
    assert len(lines) == n and log.dropped == 0
    assert orjson.loads(lines[-1])["i"] == n - 1


async def test_bounded_when_writing_cannot_keep_up(tmp_path: Path) -> None:
    log = AccessLog(str(tmp_path / "a.log"))
    for i in range(FLUSH_BYTES * 2):  # never yields: the scheduled flush cannot run
        log.write({"i": i})
    assert log.dropped > 0
    assert len(log._buffer) <= FLUSH_BYTES * 16 + 64  # the cap plus one line
    log.close()
