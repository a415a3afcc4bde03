"""Long loops on the event loop, in slices of about 2 ms with a yield between them.

The ban lurker and the purge engine may have 100,000 items to go through, on the loop
that also answers requests. A `Pacer` lets such a loop run until its slice is used up,
then gives the loop one turn (requests that arrived meanwhile run), so no request waits
behind it for more than a slice or two, however long the whole job is."""

from __future__ import annotations

import asyncio
from time import perf_counter

__all__ = ["SLICE_SECONDS", "Pacer"]

SLICE_SECONDS = 0.002


class Pacer:
    __slots__ = ("_until", "budget")

    def __init__(self, budget: float = SLICE_SECONDS) -> None:
        self.budget = budget
        self._until = perf_counter() + budget

    async def tick(self) -> None:
        """Call after each unit of work: yields once the slice's time is used up."""
        if perf_counter() >= self._until:
            await asyncio.sleep(0)
            self._until = perf_counter() + self.budget
