"""Hit latency while purges are being applied (issue 11 item 7), measured on loopback:

    python loadtests/bench/lurker_bench.py [--objects 2000] [--bans 10000]
                                           [--urls 100000] [--seconds 6] [--clients 4]

One edgeshield process (one worker, fs origin, `[purge] lurk_interval = 1`) with
`--objects` small objects in its memory tier. `--clients` keep-alive connections request
one hot object (a fresh memory hit) back to back, in three phases of one run:

  1. no bans, `--seconds` long (the lurker has nothing to do);
  2. `--bans` prefix bans added through `POST /_purge` (1,000 per request, none matching
     a cached object, so every entry must be checked against them and none retire), then
     `--seconds` long: several lurker cycles;
  3. one `POST /_purge` of `--urls` URLs (none cached but the cold objects' neighbours),
     from the request sent to its answer.

Prints hit p50/p99/max per phase and as ratios to phase 1, and the requests that failed
(target 0). Bounded in count and time; exit 0 whatever the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from loadtests.bench.common import HOST, Server, free_port  # noqa: E402

TOKEN = "bench-admin-token-0123456789"
AUTH = {"authorization": f"Bearer {TOKEN}"}
HOT = "/hot.bin"
HOT_BODY = b"h" * 1024
PREFIXES_PER_REQUEST = 1000  # proxy/purge/request.py MAX_PREFIXES
MAX_SECONDS = 60.0

CONFIG = """
[server]
host = "{host}"
port = {port}
access_log = "off"
log_level = "warning"
[admin]
token = "{token}"
[purge]
lurk_interval = {lurk_interval}
[origins.files]
kind = "fs"
root = "{root}"
[[routes]]
origin = "files"
[routes.cache]
override_ttl = 3600
"""


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Hits:
    """Clients requesting the hot object back to back; latencies in ms, failures."""

    def __init__(self, port: int, clients: int) -> None:
        self.port = port
        self.clients = clients
        self.latencies: list[float] = []
        self.failed = 0
        self._running = False

    async def run(self, until: asyncio.Event) -> None:
        self._running = True
        await asyncio.gather(*(self._client(until) for _ in range(self.clients)))

    async def _client(self, until: asyncio.Event) -> None:
        request = f"GET {HOT} HTTP/1.1\r\nhost: {HOST}\r\n\r\n".encode()
        reader, writer = await asyncio.open_connection(HOST, self.port)
        try:
            while not until.is_set():
                t0 = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.lower() == b"content-length":
                        length = int(value)
                body = await reader.readexactly(length)
                self.latencies.append((time.perf_counter() - t0) * 1000)
                if not head.startswith(b"HTTP/1.1 200") or body != HOT_BODY:
                    self.failed += 1
        except (OSError, asyncio.IncompleteReadError):
            self.failed += 1
        finally:
            writer.close()


async def phase(port: int, clients: int, work: object) -> tuple[list[float], int, float]:
    """Hits while `work` (an awaitable) runs: (latencies ms, failures, work seconds)."""
    hits = Hits(port, clients)
    done = asyncio.Event()
    load = asyncio.create_task(hits.run(done))
    await asyncio.sleep(0.2)  # connections open and warm
    hits.latencies.clear()
    t0 = time.perf_counter()
    await work  # type: ignore[misc]
    elapsed = time.perf_counter() - t0
    done.set()
    await load
    return hits.latencies, hits.failed, elapsed


async def add_bans(client: httpx.AsyncClient, count: int) -> None:
    for start in range(0, count, PREFIXES_PER_REQUEST):
        stop = min(count, start + PREFIXES_PER_REQUEST)
        prefixes = [f"/banned/{i}/" for i in range(start, stop)]
        r = await client.post("/_purge", json={"prefixes": prefixes}, headers=AUTH)
        r.raise_for_status()


async def bench(args: argparse.Namespace, port: int) -> None:
    rows: list[tuple[str, list[float], int, float]] = []
    timeout = httpx.Timeout(MAX_SECONDS)
    async with httpx.AsyncClient(base_url=f"http://{HOST}:{port}", timeout=timeout) as client:
        for i in range(args.objects):
            (await client.get(f"/cold/{i}.bin")).raise_for_status()
        assert (await client.get(HOT)).content == HOT_BODY
        assert "hit" in (await client.get(HOT)).headers["cache-status"]

        rows.append(("no bans", *await phase(port, args.clients, asyncio.sleep(args.seconds))))
        await add_bans(client, args.bans)
        rows.append(
            (
                f"{args.bans} bans, lurker",
                *await phase(port, args.clients, asyncio.sleep(args.seconds)),
            )
        )
        # encoded before the phase: this process's own loop must not stall the clients
        body = json.dumps({"host": HOST, "urls": [f"/cold/{i}x.bin" for i in range(args.urls)]})
        headers = {**AUTH, "content-type": "application/json"}
        purge = client.post("/_purge", content=body.encode(), headers=headers)
        rows.append((f"{args.urls}-URL purge", *await phase(port, args.clients, purge)))

    base_p50 = statistics.median(rows[0][1])
    base_p99 = pct(rows[0][1], 0.99)
    base_max = max(rows[0][1])
    print(
        f"hit latency, {args.clients} clients, {args.objects} cached objects, "
        f"lurk_interval {args.lurk_interval} s (ms; ratio to 'no bans'):"
    )
    for name, lat, failed, seconds in rows:
        p50, p99, top = statistics.median(lat), pct(lat, 0.99), max(lat)
        print(
            f"  {name:<22} {len(lat):>6} hits in {seconds:5.1f} s  "
            f"p50 {p50:6.2f} ({p50 / base_p50:4.1f}x)  p99 {p99:7.2f} ({p99 / base_p99:5.1f}x)  "
            f"max {top:8.2f} ({top / base_max:5.1f}x)  failed {failed}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=2000)
    parser.add_argument("--bans", type=int, default=10_000)
    parser.add_argument("--urls", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--lurk-interval", type=float, default=1.0)
    args = parser.parse_args(argv)
    args.objects = min(args.objects, 20_000)
    args.bans = min(args.bans, 10_000)
    args.urls = min(args.urls, 100_000)
    args.seconds = min(args.seconds, MAX_SECONDS)
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        root = tmp / "objects"
        (root / "cold").mkdir(parents=True)
        (root / "hot.bin").write_bytes(HOT_BODY)
        for i in range(args.objects):
            (root / "cold" / f"{i}.bin").write_bytes(b"c" * 512)
        port = free_port()
        path = tmp / "lurker.toml"
        path.write_text(
            CONFIG.format(
                host=HOST, port=port, token=TOKEN, lurk_interval=args.lurk_interval, root=root
            )
        )
        argv_ = [sys.executable, "-m", "proxy.serve.cli", "serve", "--config", str(path)]
        server = Server("edgeshield", argv_, port, tmp / "lurker.log")
        server.start("/healthz")
        try:
            asyncio.run(bench(args, port))
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
