"""A real app state and a real loopback origin, both on the test's own event loop: for
deciding the pipeline's steps in-process (no subprocess), with real parts throughout.

    async with running_origin_app() as (origin, url):       # tests/support/origin_server.py's
        origin.scripts["/a"] = Script("/a", body=b"x")      # OriginApp, scripted directly
        async with running_state(settings) as state: ...    # the app's own lifespan builds it
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from config.schema import Settings
from proxy.serve.app import EdgeShield
from proxy.serve.state import AppState
from tests.support.asgi import Sink
from tests.support.origin_server import OriginApp


@contextlib.asynccontextmanager
async def running_state(settings: Settings) -> AsyncIterator[AppState]:
    """The app's lifespan started, its state yielded, then shut down."""
    app = EdgeShield(settings)
    lifespan: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await lifespan.put({"type": "lifespan.startup"})
    task = asyncio.ensure_future(app({"type": "lifespan"}, lifespan.get, Sink()))
    for _ in range(3000):  # a hang guard: startup is a few turns of the loop
        if app.state is not None or task.done():
            break
        await asyncio.sleep(0.01)
    assert app.state is not None, "the lifespan did not start"
    try:
        yield app.state
    finally:
        await lifespan.put({"type": "lifespan.shutdown"})
        await task


@contextlib.asynccontextmanager
async def running_origin_app() -> AsyncIterator[tuple[OriginApp, str]]:
    """The scriptable origin served on 127.0.0.1 in this loop: (the app, its base URL)."""
    origin = OriginApp()
    server = await asyncio.start_server(origin.handle, "127.0.0.1", 0, limit=1 << 20)
    port = server.sockets[0].getsockname()[1]
    try:
        yield origin, f"http://127.0.0.1:{port}"
    finally:
        server.close()
        for gate in origin.gates.values():
            gate.set()  # nothing stays held
        for writer in list(origin.writers):
            writer.transport.abort()
        for _ in range(1000):  # a hang guard: each connection's task ends on its abort
            if not origin.writers:
                break
            await asyncio.sleep(0.01)
        await server.wait_closed()


def http_scope(
    method: str, target: str, headers: list[tuple[str, str]] | None = None
) -> dict[str, Any]:
    """An ASGI http scope as uvicorn makes it, for Host example.test unless given."""
    path, _, query = target.partition("?")
    fields = [(b"host", b"example.test")] if not any(n == "host" for n, _ in headers or []) else []
    fields += [(name.encode(), value.encode()) for name, value in headers or []]
    return {
        "type": "http",
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "headers": fields,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8080),
    }


def body_receiver(body: bytes) -> Any:
    """A request body in one message, then (as a server does) nothing until the client
    leaves."""
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()
        return {"type": "http.disconnect"}

    return receive
