"""A scriptable HTTP/1.1 origin for integration tests, run in its own process.

Built on raw asyncio streams (not uvicorn) so that it can misbehave on purpose: lie about
Content-Length, stall, reset, trickle. Start it with

    python -m tests.support.origin_server --port N      (N=0: the OS picks; the chosen
                                                        port is printed as "LISTENING N")

or, from tests, through `OriginServer` / `running_origin()` below.

Control API (same port; control requests are not counted in the stats):

POST /__script   a JSON object (or a list of them), all fields optional except path:
    {"path": "/a.jpg",            exact path (the query is ignored for matching)
     "status": 200,
     "headers": {"cache-control": "max-age=60", "etag": "\\"v1\\""}   (or [[name, value], ...])
     "body": "text" | null,       the body as text (UTF-8) ...
     "body_base64": "..." | null, ... or as base64 (binary bodies) ...
     "size": 12345 | null,        ... or this many gen_bytes(), generated while streaming
     "delay": 0.0,                seconds before the response head
     "mode": "normal" | "hang" | "reset" | "short" | "long" | "trickle" | "chunked"
             | "close-mid",
     "honor_conditionals": true,  If-None-Match / If-Modified-Since -> 304
     "honor_range": false,        single "bytes=" ranges -> 206 / 416
     "trickle_interval": 0.05,    trickle: seconds between body bytes
     "chunked": false,            chunked framing for normal/trickle/close-mid too
     "close_after": null,         short/close-mid: body bytes sent before closing
                                  (default: half the body)
     "extra": null,               long: bytes sent beyond Content-Length (default: 1024)
     "keep_open": false,          long: keep the connection open afterwards (the extra
                                  bytes sit where the client expects its next response)
     "honor_method_override": false,  X-HTTP-Method-Override / X-HTTP-Method /
                                  X-Method-Override naming another method -> 405 with
                                  the script's headers (as a framework that routes by
                                  the overridden method and has no such handler)
     "hold_after": null,          normal/trickle: send this many body bytes, then wait
                                  for POST /__release of the path before the rest (a
                                  fetch that is provably still in progress, no timing)
     "vary_bodies": null,         {"header": "accept-language", "bodies": {"en": <b64>,
                                  "fr": <b64>}}: the body is the one named by the
                                  request field's value (lower-cased, trimmed), else the
                                  script's own (send the Vary header in "headers")
     "early_hints": null}         ["</style.css>; rel=preload; as=style", ...]: a
                                  "103 Early Hints" with these Link fields goes out
                                  before the response head (after "delay")
    Modes: hang = read the request, never answer (until the client goes away);
    reset = read the request, then close with a TCP RST; short = declare Content-Length,
    send close_after bytes, close (FIN); long = declare Content-Length, send `extra` more
    bytes, close; trickle = one body byte every trickle_interval seconds; chunked = no
    Content-Length, chunked framing; close-mid = head + close_after bytes, then RST.
    A Content-Length given in "headers" is sent as is (a lie if you want one) and the
    server does not add its own. Scripts persist until replaced or reset.
POST /__release {"path": "/a.jpg"}: responses of that path held by "hold_after" (now
                 or later) send the rest of their bodies. POST /__reset releases all.
POST /__reset    clears scripts and stats.
GET  /__stats    {"requests": {"GET /a.jpg": 3}, "conditional": {"/a.jpg": 1},
                  "not_modified": {"/a.jpg": 1}, "total": 4, "connections": 2,
                  "open_connections": 1, "last_headers": {"/a.jpg": {...}},
                  "last_target": {"/a.jpg": "/a.jpg?x=1"},
                  "ranges": {"/a.jpg": ["bytes=0-99"]}}
    conditional counts requests carrying If-None-Match/If-Modified-Since; not_modified
    counts 304 answers; connections counts client connections that carried at least one
    non-control request; last_headers holds the lower-cased request headers of the last
    request per path (repeated fields joined with ", "); ranges lists the Range field of
    every request that had one, per path, in order.

Unscripted paths: /gen/<n> -> n gen_bytes, cache-control max-age=3600, etag "gen-<n>",
a fixed last-modified; conditionals honoured. Anything else -> 404, cache-control max-age=5.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from email.utils import formatdate, parsedate_to_datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any, NoReturn

CHUNK = 256 * 1024
_PERIOD = 251
_PATTERN = bytes(range(_PERIOD)) * (CHUNK // _PERIOD + 2)
GEN_LAST_MODIFIED = "Mon, 01 Jan 2024 00:00:00 GMT"
MODES = frozenset({"normal", "hang", "reset", "short", "long", "trickle", "chunked", "close-mid"})
REPO_ROOT = Path(__file__).resolve().parents[2]


def gen_bytes(offset: int, length: int) -> bytes:
    """Deterministic content: byte i of a generated body is i % 251."""
    if length <= 0:
        return b""
    parts: list[bytes] = []
    while length > 0:
        n = min(length, CHUNK)
        start = offset % _PERIOD
        parts.append(_PATTERN[start : start + n])
        offset += n
        length -= n
    return parts[0] if len(parts) == 1 else b"".join(parts)


# --------------------------------------------------------------------------------------
# Server side
# --------------------------------------------------------------------------------------


@dataclass
class Script:
    path: str
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes | None = None
    size: int | None = None
    delay: float = 0.0
    mode: str = "normal"
    honor_conditionals: bool = True
    honor_range: bool = False
    trickle_interval: float = 0.05
    chunked: bool = False
    close_after: int | None = None
    extra: int | None = None
    keep_open: bool = False
    honor_method_override: bool = False
    vary_bodies: dict[str, Any] | None = None
    hold_after: int | None = None
    early_hints: list[str] | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Script:
        if not isinstance(data, dict) or not isinstance(data.get("path"), str):
            raise ValueError("a script needs a string 'path'")
        unknown = set(data) - set(cls.__dataclass_fields__) - {"body_base64"}
        if unknown:
            raise ValueError(f"unknown script fields: {sorted(unknown)}")
        kw = dict(data)
        raw_headers = kw.pop("headers", None) or {}
        items = raw_headers.items() if isinstance(raw_headers, dict) else raw_headers
        headers = [(str(k), str(v)) for k, v in items]
        body = kw.pop("body", None)
        body_b64 = kw.pop("body_base64", None)
        if body is not None and body_b64 is not None:
            raise ValueError("give body or body_base64, not both")
        raw = base64.b64decode(body_b64) if body_b64 is not None else None
        script = cls(**kw, headers=headers, body=raw if body is None else body.encode())
        if script.mode not in MODES:
            raise ValueError(f"unknown mode {script.mode!r}")
        if script.size is not None and script.body is not None:
            raise ValueError("give body or size, not both")
        return script

    @property
    def length(self) -> int:
        if self.body is not None:
            return len(self.body)
        return self.size or 0

    def content(self, offset: int, length: int) -> bytes:
        if self.body is not None:
            return self.body[offset : offset + length]
        return gen_bytes(offset, length)


def _vary_body(script: Script, req: Request) -> Script:
    """vary_bodies: the body named by the value of the request field."""
    spec = script.vary_bodies or {}
    value = (req.header(str(spec.get("header", ""))) or "").strip().lower()
    chosen = spec.get("bodies", {}).get(value)
    if chosen is None:
        return script
    return replace(script, body=base64.b64decode(chosen), size=None)


def _default_script(path: str) -> Script:
    if path.startswith("/gen/") and path[5:].isdigit():
        n = int(path[5:])
        return Script(
            path=path,
            size=n,
            headers=[
                ("content-type", "application/octet-stream"),
                ("cache-control", "max-age=3600"),
                ("etag", f'"gen-{n}"'),
                ("last-modified", GEN_LAST_MODIFIED),
            ],
        )
    return Script(
        path=path,
        status=404,
        body=b"not found\n",
        headers=[("content-type", "text/plain"), ("cache-control", "max-age=5")],
    )


@dataclass
class Request:
    method: str
    target: str
    path: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes = b""

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k == name:
                return v
        return None

    @property
    def keep_alive(self) -> bool:
        conn = (self.header("connection") or "").lower()
        if self.version == "HTTP/1.0":
            return "keep-alive" in conn
        return "close" not in conn


class _BadRequest(Exception):
    pass


async def _read_request(reader: asyncio.StreamReader) -> Request | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    except asyncio.LimitOverrunError as exc:
        raise _BadRequest("request head too large") from exc
    lines = head.decode("latin-1").split("\r\n")
    try:
        method, target, version = lines[0].split(" ")
    except ValueError as exc:
        raise _BadRequest("bad request line") from exc
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise _BadRequest("bad header line")
        headers.append((name.strip().lower(), value.strip()))
    path = target.split("?", 1)[0]
    req = Request(method, target, path, version, headers)
    te = (req.header("transfer-encoding") or "").lower()
    if "chunked" in te:
        parts: list[bytes] = []
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                # Trailers, up to the blank line.
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass
                break
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        req.body = b"".join(parts)
    elif req.header("content-length"):
        req.body = await reader.readexactly(int(req.header("content-length") or 0))
    return req


def _http_date(ts: float | None = None) -> str:
    return formatdate(ts if ts is not None else time.time(), usegmt=True)


def _parse_date(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


def _etag_matches(header: str, etag: str | None) -> bool:
    if etag is None:
        return False
    if header.strip() == "*":
        return True

    def opaque(tag: str) -> str:
        tag = tag.strip()
        return tag[2:] if tag.startswith("W/") else tag

    want = opaque(etag)
    return any(opaque(t) == want for t in header.split(","))


_NOT_MODIFIED_KEEP = frozenset(
    {
        "cache-control",
        "cdn-cache-control",
        "surrogate-control",
        "content-location",
        "date",
        "etag",
        "expires",
        "last-modified",
        "vary",
    }
)


class Stats:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.requests: Counter[str] = Counter()
        self.conditional: Counter[str] = Counter()
        self.not_modified: Counter[str] = Counter()
        self.total = 0
        self.connections = 0
        self.last_headers: dict[str, dict[str, str]] = {}
        self.last_target: dict[str, str] = {}
        self.ranges: dict[str, list[str]] = {}

    def as_json(self, open_connections: int) -> dict[str, Any]:
        return {
            "requests": dict(self.requests),
            "conditional": dict(self.conditional),
            "not_modified": dict(self.not_modified),
            "total": self.total,
            "connections": self.connections,
            "open_connections": open_connections,
            "last_headers": self.last_headers,
            "last_target": self.last_target,
            "ranges": self.ranges,
        }


class _Aborted(Exception):
    """The connection was closed on purpose; stop handling it."""


class OriginApp:
    def __init__(self) -> None:
        self.scripts: dict[str, Script] = {}
        self.stats = Stats()
        self.open_connections = 0
        self.writers: set[asyncio.StreamWriter] = set()
        self.gates: dict[str, asyncio.Event] = {}  # hold_after: released per path

    # -- connection loop ---------------------------------------------------------------

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.add(writer)
        counted = False
        try:
            while True:
                try:
                    req = await _read_request(reader)
                except _BadRequest as exc:
                    await self._send_simple(writer, 400, str(exc).encode(), close=True)
                    return
                if req is None:
                    return
                if req.path.startswith("/__"):
                    await self._control(req, writer)
                else:
                    if not counted:
                        counted = True
                        self.stats.connections += 1
                        self.open_connections += 1
                    await self._serve(req, reader, writer)
                if not req.keep_alive:
                    return
        except (_Aborted, ConnectionError, asyncio.IncompleteReadError, OSError):
            return
        finally:
            if counted:
                self.open_connections -= 1
            self.writers.discard(writer)
            if not writer.is_closing():
                writer.close()

    # -- control API -------------------------------------------------------------------

    async def _control(self, req: Request, writer: asyncio.StreamWriter) -> None:
        if req.method == "POST" and req.path == "/__script":
            try:
                data = json.loads(req.body or b"null")
                items = data if isinstance(data, list) else [data]
                scripts = [Script.from_json(item) for item in items]
            except (ValueError, TypeError, AttributeError) as exc:
                await self._send_json(writer, 400, {"error": str(exc)})
                return
            for script in scripts:
                self.scripts[script.path] = script
            await self._send_json(writer, 200, {"ok": True})
        elif req.method == "POST" and req.path == "/__release":
            path = json.loads(req.body or b"{}").get("path")
            self.gates.setdefault(str(path), asyncio.Event()).set()
            await self._send_json(writer, 200, {"ok": True})
        elif req.method == "POST" and req.path == "/__reset":
            for gate in self.gates.values():
                gate.set()  # nothing stays held across tests
            self.gates.clear()
            self.scripts.clear()
            self.stats.reset()
            await self._send_json(writer, 200, {"ok": True})
        elif req.method == "GET" and req.path == "/__stats":
            await self._send_json(writer, 200, self.stats.as_json(self.open_connections))
        else:
            await self._send_json(writer, 404, {"error": "unknown control endpoint"})

    async def _send_json(self, writer: asyncio.StreamWriter, status: int, data: Any) -> None:
        body = json.dumps(data).encode()
        await self._send_simple(writer, status, body, content_type="application/json")

    async def _send_simple(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        body: bytes,
        *,
        content_type: str = "text/plain",
        close: bool = False,
    ) -> None:
        headers = [("content-type", content_type), ("content-length", str(len(body)))]
        if close:
            headers.append(("connection", "close"))
        writer.write(_head(status, headers) + body)
        await writer.drain()

    # -- scripted responses ------------------------------------------------------------

    def _record(self, req: Request) -> None:
        st = self.stats
        st.total += 1
        st.requests[f"{req.method} {req.path}"] += 1
        if req.header("if-none-match") is not None or req.header("if-modified-since"):
            st.conditional[req.path] += 1
        merged: dict[str, str] = {}
        for k, v in req.headers:
            merged[k] = f"{merged[k]}, {v}" if k in merged else v
        st.last_headers[req.path] = merged
        st.last_target[req.path] = req.target
        if (value := req.header("range")) is not None:
            st.ranges.setdefault(req.path, []).append(value)

    async def _serve(
        self, req: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self._record(req)
        script = self.scripts.get(req.path) or _default_script(req.path)
        if script.honor_method_override and _overridden(req):
            script = replace(script, status=405, body=b"method not allowed\n", size=None)
        if script.vary_bodies:
            script = _vary_body(script, req)
        if script.delay:
            await asyncio.sleep(script.delay)
        if script.mode == "hang":
            while await reader.read(65536):
                pass
            raise _Aborted
        if script.mode == "reset":
            _abort(writer)
        if script.early_hints:
            writer.write(_head(103, [("link", link) for link in script.early_hints]))

        status = script.status
        headers = list(script.headers)
        names = {k.lower() for k, _ in headers}
        if "date" not in names:
            headers.append(("date", _http_date()))
        if "server" not in names:
            headers.append(("server", "edgeshield-test-origin"))
        total = script.length
        start, length = 0, total

        if self._not_modified(req, script):
            self.stats.not_modified[req.path] += 1
            keep = [(k, v) for k, v in headers if k.lower() in _NOT_MODIFIED_KEEP]
            writer.write(_head(304, keep))
            await writer.drain()
            return
        if script.honor_range and status == 200 and req.method in ("GET", "HEAD"):
            rng = _parse_range(req, script, total)
            if isinstance(rng, str):
                writer.write(
                    _head(416, [("content-range", f"bytes */{total}"), ("content-length", "0")])
                )
                await writer.drain()
                return
            if rng is not None:
                start, end = rng
                length = end - start + 1
                status = 206
                headers.append(("content-range", f"bytes {start}-{end}/{total}"))

        has_body = status >= 200 and status not in (204, 304)
        if has_body and "content-type" not in names:
            ctype = "text/plain; charset=utf-8" if script.body is not None else None
            headers.append(("content-type", ctype or "application/octet-stream"))
        chunked = has_body and (script.mode == "chunked" or script.chunked)
        if chunked:
            headers.append(("transfer-encoding", "chunked"))
        elif has_body and "content-length" not in names:
            headers.append(("content-length", str(length)))
        writer.write(_head(status, headers))
        if req.method == "HEAD" or not has_body:
            await writer.drain()
            return

        mode = script.mode
        if script.hold_after is not None and mode in ("normal", "trickle"):
            held = min(script.hold_after, length)
            await _write_body(writer, script, start, held, chunked=chunked, finish=False)
            await self.gates.setdefault(req.path, asyncio.Event()).wait()
            start, length = start + held, length - held
        if mode in ("short", "close-mid"):
            cut = length // 2 if script.close_after is None else min(script.close_after, length)
            await _write_body(writer, script, start, cut, chunked=chunked, finish=False)
            if mode == "close-mid":
                _abort(writer)
            writer.close()
            raise _Aborted
        if mode == "long":
            extra = 1024 if script.extra is None else script.extra
            await _write_body(writer, script, start, length + extra, chunked=False, finish=False)
            if script.keep_open:
                return
            writer.close()
            raise _Aborted
        if mode == "trickle":
            for i in range(length):
                data = script.content(start + i, 1)
                writer.write(_frame(data) if chunked else data)
                await writer.drain()
                await asyncio.sleep(script.trickle_interval)
            if chunked:
                writer.write(b"0\r\n\r\n")
            await writer.drain()
            return
        await _write_body(writer, script, start, length, chunked=chunked, finish=True)

    @staticmethod
    def _not_modified(req: Request, script: Script) -> bool:
        if not script.honor_conditionals or script.status != 200:
            return False
        if req.method not in ("GET", "HEAD"):
            return False
        etag = next((v for k, v in script.headers if k.lower() == "etag"), None)
        inm = req.header("if-none-match")
        if inm is not None:
            return _etag_matches(inm, etag)
        ims = _parse_date(req.header("if-modified-since"))
        lm = _parse_date(next((v for k, v in script.headers if k.lower() == "last-modified"), None))
        return ims is not None and lm is not None and lm <= ims


def _overridden(req: Request) -> bool:
    for name in ("x-http-method-override", "x-http-method", "x-method-override"):
        value = req.header(name)
        if value is not None and value.strip().upper() != req.method:
            return True
    return False


def _parse_range(req: Request, script: Script, total: int) -> tuple[int, int] | str | None:
    value = req.header("range")
    if not value or not value.startswith("bytes=") or "," in value:
        return None
    if_range = req.header("if-range")
    if if_range is not None:
        etag = next((v for k, v in script.headers if k.lower() == "etag"), None)
        if if_range != etag or if_range.startswith("W/"):
            return None
    first, sep, last = value[6:].strip().partition("-")
    if not sep:
        return None
    try:
        if first == "":
            n = int(last)
            if n == 0:
                return "unsatisfiable"
            return max(0, total - n), total - 1
        a = int(first)
        b = int(last) if last else total - 1
    except ValueError:
        return None
    if a >= total or b < a:
        return "unsatisfiable"
    return a, min(b, total - 1)


def _head(status: int, headers: list[tuple[str, str]]) -> bytes:
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Status"
    lines = [f"HTTP/1.1 {status} {reason}"] + [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _frame(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


async def _write_body(
    writer: asyncio.StreamWriter,
    script: Script,
    start: int,
    length: int,
    *,
    chunked: bool,
    finish: bool,
) -> None:
    sent = 0
    while sent < length:
        n = min(CHUNK, length - sent)
        data = script.content(start + sent, n)
        if len(data) < n:  # a text body asked for more than it has ("long")
            data += gen_bytes(start + sent + len(data), n - len(data))
        writer.write(_frame(data) if chunked else data)
        sent += n
        await writer.drain()
    if chunked and finish:
        writer.write(b"0\r\n\r\n")
    await writer.drain()


def _abort(writer: asyncio.StreamWriter) -> NoReturn:
    """Close with a TCP RST (SO_LINGER 0) instead of a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
    raise _Aborted


async def _run(host: str, port: int, watch_stdin: bool) -> None:
    app = OriginApp()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = await asyncio.start_server(app.handle, host, port, limit=1 << 20, reuse_address=True)
    bound = server.sockets[0].getsockname()[1]
    print(f"LISTENING {bound}", flush=True)
    if watch_stdin:
        # The parent holds our stdin open; when it dies, so do we.
        def watch() -> None:
            # Raw fd reads: a daemon thread blocked in a buffered read breaks shutdown.
            with contextlib.suppress(OSError):
                while os.read(0, 4096):
                    pass
            loop.call_soon_threadsafe(stop.set)

        threading.Thread(target=watch, daemon=True).start()
    await stop.wait()
    server.close()
    for writer in list(app.writers):
        writer.transport.abort()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="scriptable test origin")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--watch-stdin", action="store_true", help="exit when stdin closes")
    args = parser.parse_args(argv)
    try:
        import uvloop

        runner: Callable[..., Any] = uvloop.run
    except ImportError:
        runner = asyncio.run
    try:
        runner(_run(args.host, args.port, args.watch_stdin))
    except OSError as exc:
        print(f"origin_server: {exc}", file=sys.stderr, flush=True)
        sys.exit(1)


# --------------------------------------------------------------------------------------
# Test side
# --------------------------------------------------------------------------------------


class OriginServer:
    """Controls one test origin subprocess. Blocking API: usable from sync and async tests."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.port: int | None = None
        self._client: Any = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("origin server not started")
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, port: int | None = None, timeout: float = 10.0) -> OriginServer:
        if self.running:
            raise RuntimeError("origin server already running")
        cmd = [
            sys.executable,
            "-m",
            "tests.support.origin_server",
            "--port",
            str(port or 0),
            "--watch-stdin",
        ]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        proc = subprocess.Popen(
            cmd, cwd=REPO_ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        assert proc.stdout is not None
        deadline = time.monotonic() + timeout
        line = b""
        while not line.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or proc.poll() is not None:
                break
            ready, _, _ = select.select([proc.stdout], [], [], min(remaining, 0.1))
            if ready:
                data = os.read(proc.stdout.fileno(), 256)
                if not data:
                    break
                line += data
        if not line.startswith(b"LISTENING "):
            proc.kill()
            proc.wait()
            _close_pipes(proc)
            raise RuntimeError(f"test origin did not start (port {port}): {line!r}")
        self.proc = proc
        self.port = int(line.split()[1])
        self._new_client()
        return self

    def _new_client(self) -> None:
        import httpx

        if self._client is not None:
            self._client.close()
        self._client = httpx.Client(base_url=self.url, timeout=10.0, trust_env=False)

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM and wait (SIGKILL if it does not exit in time)."""
        proc, self.proc = self.proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            _close_pipes(proc)
        if self._client is not None:
            self._client.close()
            self._client = None

    def kill(self) -> None:
        """SIGKILL: the origin vanishes mid-whatever, sockets reset by the kernel."""
        proc, self.proc = self.proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            _close_pipes(proc)
        if self._client is not None:
            self._client.close()
            self._client = None

    def restart(self) -> OriginServer:
        """Stop (if running) and start again on the same port. Scripts and stats reset."""
        port = self.port
        self.stop()
        return self.start(port)

    def _control(self, method: str, path: str, payload: Any = None) -> Any:
        if self._client is None:
            raise RuntimeError("origin server not running")
        response = self._client.request(method, path, json=payload)
        if response.status_code != 200:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text}")
        return response.json()

    def script(self, path: str, **fields: Any) -> None:
        """Script the answer for `path` (fields as in the module docstring)."""
        self._control("POST", "/__script", {"path": path, **fields})

    def scripts(self, scripts: list[dict[str, Any]]) -> None:
        self._control("POST", "/__script", scripts)

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = self._control("GET", "/__stats")
        return stats

    def reset(self) -> None:
        self._control("POST", "/__reset")

    def release(self, path: str) -> None:
        """Let responses held by a script's "hold_after" finish."""
        self._control("POST", "/__release", {"path": path})

    def requests(self, path: str, method: str = "GET") -> int:
        """How many `method path` requests the origin has seen."""
        count: int = self.stats()["requests"].get(f"{method} {path}", 0)
        return count

    def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 5.0
    ) -> dict[str, Any]:
        """Poll stats until predicate(stats) is true; TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            stats = self.stats()
            if predicate(stats):
                return stats
            if time.monotonic() >= deadline:
                raise TimeoutError(f"origin stats never matched: {stats}")
            time.sleep(0.01)

    def __enter__(self) -> OriginServer:
        if not self.running:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _close_pipes(proc: subprocess.Popen[bytes]) -> None:
    for pipe in (proc.stdin, proc.stdout):
        if pipe is not None:
            with contextlib.suppress(OSError):
                pipe.close()


@contextlib.contextmanager
def running_origin(port: int | None = None) -> Iterator[OriginServer]:
    """A started OriginServer, stopped on exit."""
    server = OriginServer().start(port)
    try:
        yield server
    finally:
        server.stop()


if __name__ == "__main__":
    main()
