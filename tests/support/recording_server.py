"""A recording, scriptable HTTP/1.1 server on 127.0.0.1 for tests of HTTP clients (the
CDN purge adapters): a real socket and a real HTTP parser (h11), in a thread with its own
event loop, so the client under test talks to it exactly as it would to a vendor API.

    with RecordingServer() as server:
        server.script(Reply(429, headers={"retry-after": "1"}), Reply(500))   # then default
        ... point the client at server.url ...
        [request] = server.requests          # method, path, query, headers, body

Every request is recorded as it arrived (raw target, lower-cased header names in order,
body bytes). Answers come from the script (first in, first out), then from `default`: a
Reply, or a function of the recorded request (to answer per path). A Reply may wait
(`delay`) or close the connection without answering (`drop`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import h11


@dataclass(frozen=True)
class Recorded:
    method: str
    target: str  # the request target as sent: percent-encoded path and query
    headers: list[tuple[str, str]]  # lower-cased names, in order
    body: bytes
    at: float = field(default_factory=time.monotonic)

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    @property
    def query(self) -> str:
        return self.target.split("?", 1)[1] if "?" in self.target else ""

    @property
    def params(self) -> dict[str, list[str]]:
        return parse_qs(self.query, keep_blank_values=True)

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k == name.lower()]
        return ", ".join(values) if values else None

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | str = b""
    json: Any = None  # when set, the body (application/json)
    delay: float = 0.0  # seconds before answering
    drop: bool = False  # close the connection instead of answering

    def encoded(self) -> tuple[list[tuple[str, str]], bytes]:
        headers = dict(self.headers)
        if self.json is not None:
            body = json.dumps(self.json).encode()
            headers.setdefault("content-type", "application/json")
        else:
            body = self.body.encode() if isinstance(self.body, str) else self.body
        headers["content-length"] = str(len(body))
        return list(headers.items()), body


Default = Reply | Callable[[Recorded], Reply]


class RecordingServer:
    def __init__(self, default: Default | None = None) -> None:
        self.default: Default = default if default is not None else Reply(200)
        self.port = 0
        self._lock = threading.Lock()
        self._requests: list[Recorded] = []
        self._script: deque[Reply] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[Any]] = set()

    # -- control (from the test's thread) -----------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def requests(self) -> list[Recorded]:
        with self._lock:
            return list(self._requests)

    def script(self, *replies: Reply) -> None:
        """Answer the next requests with these, in order (before the default)."""
        with self._lock:
            self._script.extend(replies)

    def reset(self, default: Default | None = None) -> None:
        with self._lock:
            self._requests.clear()
            self._script.clear()
            if default is not None:
                self.default = default

    def start(self) -> RecordingServer:
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            self._server = loop.run_until_complete(
                asyncio.start_server(self._handle, "127.0.0.1", 0)
            )
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            loop.run_forever()

        self._loop = loop
        self._thread = threading.Thread(target=run, name="recording-server", daemon=True)
        self._thread.start()
        if not ready.wait(5):
            raise RuntimeError("recording server did not start")
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
        self._loop = self._thread = None

    def __enter__(self) -> RecordingServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the server (in its own thread) -------------------------------------------------

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)

    def _next_reply(self, request: Recorded) -> Reply:
        with self._lock:
            self._requests.append(request)
            if self._script:
                return self._script.popleft()
            default = self.default
        return default(request) if callable(default) else default

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, h11.ProtocolError, asyncio.CancelledError):
            pass
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER)
        request: h11.Request | None = None
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(65536)
                conn.receive_data(data)  # b"" marks the end
                if not data and conn.their_state is not h11.DONE:
                    return
                continue
            if isinstance(event, h11.Request):
                request, body = event, bytearray()
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                assert request is not None
                recorded = Recorded(
                    method=request.method.decode("ascii"),
                    target=request.target.decode("latin-1"),
                    headers=[
                        (k.decode("latin-1").lower(), v.decode("latin-1"))
                        for k, v in request.headers
                    ],
                    body=bytes(body),
                )
                reply = self._next_reply(recorded)
                if reply.delay:
                    await asyncio.sleep(reply.delay)
                if reply.drop:
                    return
                headers, payload = reply.encoded()
                writer.write(conn.send(h11.Response(status_code=reply.status, headers=headers)))
                writer.write(conn.send(h11.Data(data=payload)))
                writer.write(conn.send(h11.EndOfMessage()))
                await writer.drain()
                if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                    return
                conn.start_next_cycle()
                request = None
            elif isinstance(event, h11.ConnectionClosed):
                return
