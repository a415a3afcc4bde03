"""A slowloris client, run in its own process so the process under test is not the
bottleneck:

    python -m tests.support.slowloris --port N --connections 10000 --guard 40 [--tls]

opens the connections (asyncio, a few hundred at a time; with --tls each completes a
TLS handshake first, the certificate unchecked), sends each a request head without its
end, then one more header byte per connection every second, so any timeout
that restarts on data never fires. It prints "OPEN <n>" once every connection is open
(or failed to), and a JSON report when every connection was closed by the server or the
guard ran out:

    {"opened": 10000, "failed": 0, "closed_by_server": 10000, "peak_open": 10000,
     "open_seconds": 1.2, "last_close_seconds": 7.3}

`open_seconds` is the time to open them all, `last_close_seconds` the time from the start
to the server's last close (null if some outlived the guard).

The caller raises nothing: this process raises its own RLIMIT_NOFILE soft limit to the
hard one, and `fd_budget()` says how many connections the hard limit allows.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import ssl
import sys
import time
from dataclasses import dataclass, field

HEAD = b"GET /slowloris HTTP/1.1\r\nHost: slowloris.example\r\nX-Slow: "
BATCH = 250
# Descriptors a process keeps for itself besides its connections (the interpreter, the
# event loop, pipes, the server's own files).
SPARE_FDS = 1100


def fd_budget() -> tuple[int, int]:
    """(connections the hard RLIMIT_NOFILE allows with SPARE_FDS left, the hard limit)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        return 1_000_000, hard
    return max(0, hard - SPARE_FDS), hard


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


@dataclass
class Attack:
    port: int
    tls: ssl.SSLContext | None = None
    host: str = "127.0.0.1"
    start: float = field(default_factory=time.monotonic)
    writers: list[asyncio.StreamWriter] = field(default_factory=list)
    failed: int = 0
    open_now: int = 0
    peak_open: int = 0
    closed_by_server: int = 0
    last_close: float | None = None

    async def one(self, ready: asyncio.Queue[None]) -> None:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port, ssl=self.tls), timeout=30
            )
            writer.write(HEAD)
        except (OSError, TimeoutError):  # ssl.SSLError is an OSError
            self.failed += 1
            ready.put_nowait(None)
            return
        self.writers.append(writer)
        self.open_now += 1
        self.peak_open = max(self.peak_open, self.open_now)
        ready.put_nowait(None)
        try:
            while await reader.read(65536):
                pass  # an answer (408) is fine, only the close counts
        except OSError:
            pass  # a reset is a close too
        self.open_now -= 1
        self.closed_by_server += 1
        self.last_close = time.monotonic() - self.start
        writer.close()

    async def trickle(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            for writer in self.writers:
                if not writer.is_closing():
                    writer.write(b"a")


def unchecked_tls() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def attack(port: int, connections: int, guard: float, tls: bool) -> dict[str, object]:
    run = Attack(port, unchecked_tls() if tls else None)
    ready: asyncio.Queue[None] = asyncio.Queue()
    tasks = []
    for first in range(0, connections, BATCH):
        batch = min(BATCH, connections - first)
        tasks += [asyncio.create_task(run.one(ready)) for _ in range(batch)]
        for _ in range(batch):
            await ready.get()
    open_seconds = time.monotonic() - run.start
    print(f"OPEN {len(run.writers)}", flush=True)
    trickle = asyncio.create_task(run.trickle())
    await asyncio.wait(tasks, timeout=max(1.0, guard - open_seconds))
    trickle.cancel()
    finished = all(task.done() for task in tasks)
    for task in tasks:
        task.cancel()
    return {
        "opened": len(run.writers),
        "failed": run.failed,
        "closed_by_server": run.closed_by_server,
        "peak_open": run.peak_open,
        "open_seconds": round(open_seconds, 2),
        "last_close_seconds": round(run.last_close, 2) if finished and run.last_close else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--guard", type=float, default=40.0)
    parser.add_argument("--tls", action="store_true")
    args = parser.parse_args()
    raise_fd_limit()
    report = asyncio.run(attack(args.port, args.connections, args.guard, args.tls))
    print(json.dumps(report), flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
