"""routing/origins/read_ahead.py against a real loopback origin: the httpx client used
for origins gets the bounded backend, and a stream nobody reads holds at most the bound
plus one read in its queue, however much the origin sends (without it: MiBs)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import uvloop

from config.schema import HttpOrigin
from routing.origins.http import new_client
from routing.origins.read_ahead import READ_AHEAD, BoundedReads
from tests.support.origin_server import OriginServer, running_origin

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def origin() -> Iterator[OriginServer]:
    with running_origin() as server:
        server.script("/big.bin", size=64 * MiB, headers={"cache-control": "no-store"})
        yield server


def _queued(stream: object) -> int:
    protocol = stream._stream._protocol  # type: ignore[attr-defined]
    return sum(map(len, protocol.read_queue))


async def _stall(url: str) -> None:
    client = new_client(HttpOrigin.model_validate({"kind": "http", "url": url}))
    assert isinstance(client._transport._pool._network_backend, BoundedReads)  # type: ignore[attr-defined]
    async with client, client.stream("GET", url + "/big.bin") as response:
        chunks = response.aiter_raw()
        for _ in range(20):  # read a little, stall while the origin fills the socket
            await anext(chunks)
            await asyncio.sleep(0.05)
            stream = response.extensions["network_stream"]
            # one transport read (at most 256 KiB) may land after the bound is passed
            assert _queued(stream) <= READ_AHEAD + 256 * 1024
        await chunks.aclose()  # type: ignore[attr-defined]
    assert _queued(stream) == 0  # closed early: what was queued went with it


def test_a_stalled_origin_stream_queues_a_bounded_amount(origin: OriginServer) -> None:
    # uvloop, as edgeshield serves: one wake-up there reads up to 32 x 256,000 bytes.
    uvloop.run(_stall(origin.url))
