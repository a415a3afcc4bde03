"""Purging in batches, yielding to the event loop between them.

A purge of 100,000 URLs runs in the event loop that also serves requests; done in one
go it would stall every request for its whole duration. Batches of `DEFAULT_BATCH` with
`await asyncio.sleep(0)` between them bound the stall to one batch."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import TypeVar

__all__ = ["DEFAULT_BATCH", "apply_batched", "apply_batched_async", "batches"]

DEFAULT_BATCH = 500

T = TypeVar("T")


async def batches(items: Iterable[T], size: int = DEFAULT_BATCH) -> AsyncIterator[list[T]]:
    """Lists of at most `size` items; control goes back to the loop after each one."""
    if size < 1:
        raise ValueError("batch size must be at least 1")
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
            await asyncio.sleep(0)
    if batch:
        yield batch


async def apply_batched(
    items: Iterable[T], action: Callable[[T], int | bool], size: int = DEFAULT_BATCH
) -> int:
    """Run a synchronous per-item `action` (e.g. `Cache.invalidate`, which returns how
    many entries went) over `items` in batches; the sum of its results."""
    total = 0
    async for batch in batches(items, size):
        for item in batch:
            total += int(action(item))
    return total


async def apply_batched_async(
    items: Iterable[T],
    action: Callable[[list[T]], Awaitable[int]],
    size: int = DEFAULT_BATCH,
) -> int:
    """Run an async per-batch `action` (e.g. one Redis DEL of many keys) over `items`;
    the sum of its results. The await itself yields too, so no extra sleep is needed
    for I/O-bound actions, but `batches` adds one anyway for actions that finish
    without suspending."""
    total = 0
    async for batch in batches(items, size):
        total += await action(batch)
    return total
