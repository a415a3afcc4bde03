"""A lean HTTP/1.1 keep-alive load generator, used by hit_bench when `wrk` is absent.

N connections, each a raw asyncio Protocol that sends one GET, reads the response by
its Content-Length, records the latency and sends the next (closed loop, no pipelining),
for a fixed duration. Latencies go into a fixed-size log-scale histogram (~1% buckets),
so memory is bounded whatever the request count. It runs in its own process (see
`run_in_process`) so it never shares an event loop with a server under test.

Standalone: python loadtests/bench/loadgen.py http://127.0.0.1:8080/obj -c 32 -d 10
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import multiprocessing
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any, cast
from urllib.parse import urlsplit

# Histogram: bucket i holds latencies in [BASE**i, BASE**(i+1)) microseconds.
BASE = 1.01
_INV_LOG_BASE = 1.0 / math.log(BASE)
BUCKETS = int(math.log(120e6) * _INV_LOG_BASE) + 1  # up to 120 s, ~1900 buckets
MAX_CONNECTIONS = 1024
MAX_DURATION = 600.0


class Histogram:
    """Fixed-size log-scale latency histogram (microseconds)."""

    __slots__ = ("count", "counts", "max_us", "total_us")

    def __init__(self) -> None:
        self.counts = [0] * BUCKETS
        self.count = 0
        self.total_us = 0.0
        self.max_us = 0.0

    def record(self, us: float) -> None:
        i = int(math.log(us) * _INV_LOG_BASE) if us > 1.0 else 0
        self.counts[i if i < BUCKETS else BUCKETS - 1] += 1
        self.count += 1
        self.total_us += us
        if us > self.max_us:
            self.max_us = us

    def percentile(self, q: float) -> float:
        """The q-th percentile in microseconds (bucket's geometric midpoint)."""
        if self.count == 0:
            return math.nan
        rank = math.ceil(self.count * q / 100.0)
        seen = 0
        for i, n in enumerate(self.counts):
            seen += n
            if seen >= rank:
                return min(BASE ** (i + 0.5), self.max_us)
        return self.max_us


@dataclass
class LoadResult:
    generator: str
    url: str
    connections: int
    duration: float
    requests: int
    errors: int
    non_2xx: int
    body_bytes: int
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Run:
    """Shared state of one measurement."""

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.hist = Histogram()
        self.recording = False
        self.stopping = False
        self.requests = 0
        self.errors = 0
        self.non_2xx = 0
        self.body_bytes = 0
        self.open = 0
        self.all_closed: asyncio.Event = asyncio.Event()


class _Conn(asyncio.Protocol):
    __slots__ = ("buf", "remaining", "run", "started", "status", "transport")

    def __init__(self, run: _Run) -> None:
        self.run = run
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.remaining = -1  # -1: reading the head
        self.started = 0.0
        self.status = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.run.open += 1
        self._send()

    def _send(self) -> None:
        assert self.transport is not None
        self.started = time.perf_counter()
        self.transport.write(self.run.request)

    def data_received(self, data: bytes) -> None:
        if self.remaining < 0:
            buf = self.buf + data if self.buf else data
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.buf = buf
                return
            self.buf = b""
            head = buf[:end]
            self.status = int(head[9:12])
            lower = head.lower()
            at = lower.find(b"\r\ncontent-length:")
            if at < 0:
                self._fail()  # no Content-Length (chunked or close-delimited): unsupported
                return
            stop = lower.find(b"\r\n", at + 2)
            length = int(lower[at + 17 : stop if stop >= 0 else len(lower)])
            self.remaining = length - (len(buf) - end - 4)
            got = len(buf) - end - 4
        else:
            self.remaining -= len(data)
            got = len(data)
        run = self.run
        if run.recording:
            run.body_bytes += got
        if self.remaining > 0:
            return
        if self.remaining < 0:
            self._fail()  # more bytes than announced: a framing error
            return
        self.remaining = -1
        if run.recording:
            run.hist.record((time.perf_counter() - self.started) * 1e6)
            run.requests += 1
            if not 200 <= self.status < 300:
                run.non_2xx += 1
        if run.stopping:
            assert self.transport is not None
            self.transport.close()
        else:
            self._send()

    def _fail(self) -> None:
        self.run.errors += 1
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        run = self.run
        if not run.stopping:
            run.errors += 1
        run.open -= 1
        if run.open <= 0:
            run.all_closed.set()


async def _measure(url: str, connections: int, duration: float, warmup: float) -> LoadResult:
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or 80
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    request = f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nUser-Agent: loadgen\r\n\r\n"
    run = _Run(request.encode("latin-1"))
    loop = asyncio.get_running_loop()
    transports = []
    for _ in range(connections):
        transport, _proto = await loop.create_connection(lambda: _Conn(run), host, port)
        transports.append(transport)
    if warmup > 0:
        await asyncio.sleep(warmup)
    run.recording = True
    t0 = time.perf_counter()
    await asyncio.sleep(duration)
    run.recording = False
    elapsed = time.perf_counter() - t0
    run.stopping = True
    # Connections close after their request in flight; bounded wait, then force.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(run.all_closed.wait(), timeout=5.0)
    for transport in transports:
        transport.abort()
    hist = run.hist
    if run.requests == 0:
        raise RuntimeError(f"no request completed against {url} ({run.errors} errors)")
    return LoadResult(
        generator="loadgen",
        url=url,
        connections=connections,
        duration=elapsed,
        requests=run.requests,
        errors=run.errors,
        non_2xx=run.non_2xx,
        body_bytes=run.body_bytes,
        rps=run.requests / elapsed if elapsed > 0 else 0.0,
        p50_ms=hist.percentile(50) / 1000,
        p90_ms=hist.percentile(90) / 1000,
        p99_ms=hist.percentile(99) / 1000,
        max_ms=hist.max_us / 1000,
        mean_ms=(hist.total_us / hist.count / 1000) if hist.count else math.nan,
    )


def measure(url: str, connections: int, duration: float, warmup: float = 0.0) -> LoadResult:
    """Run the load in this process (use `run_in_process` from a harness)."""
    if not 1 <= connections <= MAX_CONNECTIONS:
        raise ValueError(f"connections must be 1..{MAX_CONNECTIONS}")
    if not 0 < duration <= MAX_DURATION or not 0 <= warmup <= MAX_DURATION:
        raise ValueError(f"duration must be in (0, {MAX_DURATION}] s")
    try:
        import uvloop
    except ImportError:  # plain asyncio works too, only slower
        return asyncio.run(_measure(url, connections, duration, warmup))
    return uvloop.run(_measure(url, connections, duration, warmup))


def _child(conn: Any, url: str, connections: int, duration: float, warmup: float) -> None:
    try:
        conn.send(("ok", measure(url, connections, duration, warmup).as_dict()))
    except BaseException as exc:
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def run_in_process(url: str, connections: int, duration: float, warmup: float = 0.0) -> LoadResult:
    """Run `measure` in a fresh process (spawned, so nothing is inherited) and return its
    result; bounded by a timeout well past the duration."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child, url, connections, duration, warmup), daemon=True)
    proc.start()
    child.close()
    try:
        if not parent.poll(duration + warmup + 60):
            raise RuntimeError("load generator did not report in time")
        kind, payload = parent.recv()
    finally:
        proc.join(timeout=10)
        if proc.is_alive():
            proc.terminate()
            proc.join(timeout=5)
    if kind != "ok":
        raise RuntimeError(f"load generator failed: {payload}")
    return LoadResult(**payload)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("url")
    parser.add_argument("-c", "--connections", type=int, default=32)
    parser.add_argument("-d", "--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    args = parser.parse_args(argv)
    result = measure(args.url, args.connections, args.duration, args.warmup)
    for key, value in result.as_dict().items():
        print(f"{key:12} {value:.3f}" if isinstance(value, float) else f"{key:12} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
