"""proxy/serve/memory_tuning.py on glibc: large blocks are mapped and given back on free, and
the lifespan task frees what sits in reference cycles after a burst."""

from __future__ import annotations

import asyncio
import gc
import platform

import pytest

from proxy.serve.memory_tuning import Malloc, keep_trimmed, tuned_malloc

glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")


@glibc
def test_glibc_is_tuned_and_reports_its_heaps() -> None:
    malloc = tuned_malloc()
    assert malloc is not None
    blocks = [bytes(200_000) for _ in range(50)]  # above the fixed threshold: mapped
    used = malloc.in_use()
    del blocks
    assert malloc.in_use() < used - 5_000_000  # unmapped on free, not kept in a heap
    assert malloc.free_bytes() >= 0
    malloc.trim()


@glibc
async def test_the_lifespan_task_collects_and_trims_after_a_burst() -> None:
    malloc = Malloc.load()
    assert malloc is not None

    class Cycle:
        def __init__(self) -> None:
            self.me = self
            self.buffer = bytes(1_000_000)

    gc.collect()
    base = malloc.in_use()
    task = asyncio.ensure_future(
        keep_trimmed(malloc, interval=0.01, slack=0, collect_every=0.0, collect_slack=1_000_000)
    )
    await asyncio.sleep(0.05)  # the task has taken its baseline
    burst = [Cycle() for _ in range(20)]  # 20 MB that only a full collection frees
    del burst
    for _ in range(500):  # a hang guard, not a timing assertion
        if malloc.in_use() < base + 5_000_000:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    assert malloc.in_use() < base + 5_000_000
