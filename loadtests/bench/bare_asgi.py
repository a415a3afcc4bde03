"""The reference for hit_bench: a raw ASGI app that serves files from memory.

It does no per-request work beyond one dict lookup and two `send` calls: the ceiling
of what any ASGI app can do under the same uvicorn options. The headers mirror an
edgeshield memory hit (content-type, last-modified, etag, date, content-length,
accept-ranges, age, cache-status) so the bytes on the wire are comparable.

The folder to serve comes from $EDGESHIELD_BENCH_DIR, read at lifespan start-up:

    EDGESHIELD_BENCH_DIR=/tmp/objs python -m uvicorn loadtests.bench.bare_asgi:app \\
        --loop uvloop --http httptools --no-access-log --no-server-header --no-date-header
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from email.utils import formatdate
from pathlib import Path
from typing import Any

ENV_DIR = "EDGESHIELD_BENCH_DIR"

Header = tuple[bytes, bytes]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_NOT_FOUND: list[Header] = [
    (b"content-type", b"text/plain"),
    (b"content-length", b"10"),
]

# path -> (headers, body), built once.
OBJECTS: dict[str, tuple[list[Header], bytes]] = {}


def load(folder: Path) -> None:
    """Read every regular file of `folder` (not recursive) into OBJECTS."""
    date = formatdate(usegmt=True).encode()
    for path in sorted(folder.iterdir()):
        if not path.is_file():
            continue
        body = path.read_bytes()
        st = path.stat()
        headers: list[Header] = [
            (b"content-type", b"application/octet-stream"),
            (b"last-modified", formatdate(st.st_mtime, usegmt=True).encode()),
            (b"etag", f'"{st.st_size:x}-{st.st_mtime_ns:x}"'.encode()),
            (b"date", date),
            (b"content-length", str(len(body)).encode()),
            (b"accept-ranges", b"bytes"),
            (b"age", b"0"),
            (b"cache-status", b"edgeshield; hit; ttl=3599; detail=memory"),
        ]
        OBJECTS["/" + path.name] = (headers, body)


async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    if scope["type"] == "http":
        found = OBJECTS.get(scope["path"])
        if found is None:
            await send({"type": "http.response.start", "status": 404, "headers": _NOT_FOUND})
            await send({"type": "http.response.body", "body": b"not found\n"})
            return
        headers, body = found
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        if scope["method"] == "HEAD":
            body = b""
        await send({"type": "http.response.body", "body": body})
    elif scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                folder = os.environ.get(ENV_DIR)
                if not folder:
                    await send({"type": "lifespan.startup.failed", "message": f"${ENV_DIR}?"})
                    return
                load(Path(folder))
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
