"""Origin connections read at most about READ_AHEAD bytes ahead of their consumer.

Why: httpx reads through httpcore and anyio, whose asyncio protocol queues whatever the
transport delivers and pauses reading only after its consumer's next receive. On uvloop
one wake-up delivers up to 32 reads of 256,000 bytes (libuv's read loop), so an origin
stream whose client stalled held up to several MiB in that queue, about 4 MiB each for
100 stalled no-store streams, far beyond the fetch window (proxy/fetch.py
STREAM_WINDOW) that is meant to bound it. Here the protocol pauses the transport as soon
as its queue passes READ_AHEAD; anyio resumes it when the queue is empty, as it does
today. The bytes wait in the kernel's socket buffer (not process memory), and the
origin's TCP window does the rest. Closing the stream drops what is still queued at
once: httpcore's connection objects sit in reference cycles, so otherwise it would stay
until a full garbage collection.

httpx and httpcore expose no hook for this, so it reaches private attributes (the
transport's pool, the stream's protocol). If their shape changes it does nothing, which
is the previous behaviour, and tests/unit/routing/test_read_ahead.py and
tests/integration/attacks/test_slow_readers.py fail.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import httpcore
import httpx

READ_AHEAD = 256 * 1024


class BoundedReads(httpcore.AsyncNetworkBackend):
    """A network backend whose TCP streams read at most `limit` bytes ahead."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend, limit: int = READ_AHEAD) -> None:
        self.inner = inner
        self.limit = limit

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self.inner.connect_tcp(
            host, port, timeout=timeout, local_address=local_address, socket_options=socket_options
        )
        bound_read_ahead(stream, self.limit)
        return stream

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        return await self.inner.connect_unix_socket(
            path, timeout=timeout, socket_options=socket_options
        )

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


def bound_read_ahead(stream: object, limit: int) -> bool:
    """Make the asyncio protocol under an httpcore stream (anyio's StreamProtocol) pause
    its transport once more than `limit` bytes are queued. False when the stream is not
    of that shape (left as it is)."""
    sock = getattr(stream, "_stream", None)  # httpcore AnyIOStream -> anyio SocketStream
    protocol = getattr(sock, "_protocol", None)
    transport = getattr(sock, "_transport", None)
    queue = getattr(protocol, "read_queue", None)
    if not isinstance(queue, deque) or transport is None:
        return False
    received = protocol.data_received  # type: ignore[union-attr]

    def data_received(data: bytes) -> None:
        received(data)
        if sum(map(len, queue)) > limit:
            transport.pause_reading()  # stops libuv's read loop at once

    protocol.data_received = data_received  # type: ignore[union-attr]
    transport.set_protocol(protocol)  # uvloop keeps the bound method it was given
    close = sock.aclose  # type: ignore[union-attr]

    async def aclose() -> None:
        # httpcore's connection objects form reference cycles: without this, what was
        # queued waits for a full garbage collection after the connection is gone.
        queue.clear()
        await close()

    sock.aclose = aclose  # type: ignore[union-attr]
    return True


def bound_client_reads(client: httpx.AsyncClient, limit: int = READ_AHEAD) -> bool:
    """Give the client's connection pool a BoundedReads backend; False if its shape is
    not the one known (nothing changed)."""
    pool = getattr(getattr(client, "_transport", None), "_pool", None)
    backend = getattr(pool, "_network_backend", None)
    if not isinstance(backend, httpcore.AsyncNetworkBackend):
        return False
    pool._network_backend = BoundedReads(backend, limit)  # type: ignore[union-attr]
    return True
