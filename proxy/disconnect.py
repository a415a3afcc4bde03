"""Running a response while watching for the client to leave.

Both server engines drop sends after a disconnect silently, so a streaming response would keep
reading (and fetching) for nobody; the watcher cancels it instead."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")
Receive = Callable[[], Awaitable[dict[str, Any]]]


# The status logged for a client that left before its answer was complete (nginx's 499).
CLIENT_GONE = 499


class ClientGone(Exception):
    """The client disconnected before the response was complete."""


async def until_disconnect(receive: Receive, work: Awaitable[T]) -> T:
    """The result of `work`, or ClientGone (with `work` cancelled) if the client leaves
    first."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_wait_disconnect(receive))
    try:
        await asyncio.wait((task, watcher), return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    if not task.done():
        task.cancel()
        raise ClientGone
    return task.result()


async def _wait_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
