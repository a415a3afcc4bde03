"""Figures of key ownership ([cluster], proxy/cluster/): origin fetches of a cold object
across instances and workers, and what a peer hop adds to a hit.

    python loadtests/bench/peer_bench.py [--requests 500] [--keys 300] [--delay 0.2]
    python loadtests/bench/peer_bench.py --zipf [--zipf-requests 12000]
        [--zipf-objects 2000] [--zipf-memory-mib 16] [--connections 16] [--seed 13]

1. Cold burst: `--requests` concurrent GETs for one cold object, spread evenly over 2
   edgeshield instances x 2 workers, each on its own connection; the origin answers
   after `--delay` seconds. Run twice: [cluster] off (each worker collapses on its own:
   up to one fetch per worker), then on (instances as peers, workers as peers through
   `socket_dir`). Printed: origin fetches of the object, and the memory copies left.
2. Hop on a hit: 2 instances x 1 worker, cluster on. For `--keys` objects the other
   instance owns, each stored there first: the first request to this instance goes over
   the hop to the owner's hit, the second is this instance's own hit (it kept a copy).
   Printed: time to the full answer, p50 and p99 of each, and their difference; one
   keep-alive connection, requests one after another.

3. Zipf over workers (`--zipf`, only this section): one instance, a Zipf(1.0) trace of
   `--zipf-requests` requests over `--zipf-objects` objects of 2-64 KiB (admission_bench's
   `zipf_trace`, seeded), replayed on `--connections` keep-alive connections at once
   (request i on connection i mod n, so the kernel spreads the connections over the
   workers and the trace's order holds roughly), through three setups with the same
   total memory, `--zipf-memory-mib`: 1 worker with all of it; 4 workers with a quarter
   each and `[cluster] socket_dir` (each key owned by one worker, the others relay it
   and keep no copy); the same with `hot_copy_requests = 8` (a relay keeps its own copy
   of what it was asked for 8 times); 4 workers with a quarter each and no cluster
   (each worker caches what it is asked for). Printed: the hit ratio (answers whose
   Cache-Status has a `hit` member: a relay from the owning worker's hit counts), origin fetches and
   bytes (counted by the test origin), and the difference from 1 worker in points.

Latencies come from one run on a shared machine: compare the two columns of one run,
not runs on different machines. The Zipf figures do not depend on timing, only on how
the connections fell on the workers.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from loadtests.bench.admission_bench import zipf_trace  # noqa: E402
from proxy.cluster.owner import Member, Ring  # noqa: E402
from tests.support.origin_server import OriginServer, running_origin  # noqa: E402
from tests.support.ports import free_port  # noqa: E402
from tests.support.proxy_server import ProxyServer, proxy_config, running_proxy  # noqa: E402

HOST = "media.bench"
MiB = 1024 * 1024
SECRET = "bench-cluster-secret"


def config(origin: str, self_port: int | None, ports: list[int], sockets: Path | None) -> str:
    text = proxy_config(origin)
    if self_port is None and sockets is None:
        return text
    lines = ["[cluster]", f'secret = "{SECRET}"']
    if self_port is not None:
        lines.append(f'self = "http://127.0.0.1:{self_port}"')
        lines.append("peers = [" + ", ".join(f'"http://127.0.0.1:{p}"' for p in ports) + "]")
    if sockets is not None:
        lines.append(f'socket_dir = "{sockets}"')
    return text + "\n".join(lines) + "\n"


@contextmanager
def instances(origin: OriginServer, workers: int, cluster: bool) -> Iterator[list[ProxyServer]]:
    ports = [free_port(), free_port()]
    with ExitStack() as stack:
        proxies = []
        for port in ports:
            sockets = (
                Path(tempfile.mkdtemp(prefix="es-peers-")) if cluster and workers > 1 else None
            )
            text = config(origin.url, port if cluster else None, ports, sockets)
            proxies.append(stack.enter_context(running_proxy(text, workers=workers)))
        if cluster and workers > 1:
            for proxy in proxies:
                wait_for(proxy, "edgeshield_peer_workers", workers)
        yield proxies


def metric(proxy: ProxyServer, prefix: str, but: str | None = None) -> float:
    """The sum of the series starting with `prefix`, less those containing `but`."""
    text = httpx.get(proxy.url + "/metrics", timeout=30).text
    lines = [x for x in text.splitlines() if x.startswith(prefix)]
    return sum(float(x.rsplit(" ", 1)[1]) for x in lines if but is None or but not in x)


def wait_for(proxy: ProxyServer, prefix: str, value: float, but: str | None = None) -> None:
    deadline = time.monotonic() + 60
    while metric(proxy, prefix, but) < value:
        if time.monotonic() > deadline:
            raise SystemExit(f"{prefix} never reached {value}:\n{proxy.log()}")
        time.sleep(0.2)


async def burst(proxies: list[ProxyServer], path: str, n: int) -> int:
    async def one(i: int) -> int:
        async with httpx.AsyncClient(timeout=120, headers={"host": HOST}) as client:
            resp = await client.get(proxies[i % len(proxies)].url + path)
            return resp.status_code

    statuses = await asyncio.gather(*(one(i) for i in range(n)))
    return sum(1 for s in statuses if s != 200)


def cold_burst(origin: OriginServer, requests: int, delay: float) -> None:
    print(f"1. {requests} concurrent requests, one cold object, 2 instances x 2 workers")
    print(f"   {'cluster':<8} {'origin fetches':>15} {'memory copies':>14} {'errors':>7}")
    for cluster in (False, True):
        origin.reset()
        origin.script(
            "/cold", size=256 * 1024, delay=delay, headers={"cache-control": "max-age=600"}
        )
        with instances(origin, 2, cluster) as proxies:
            errors = asyncio.run(burst(proxies, "/cold", requests))
            for proxy in proxies:  # until every worker's snapshot counts its requests
                wait_for(proxy, "edgeshield_requests_total{", requests // 2, but='cache="ops"')
            copies = sum(metric(p, 'edgeshield_cache_entries{tier="memory"}') for p in proxies)
        fetches = origin.stats()["requests"].get("GET /cold", 0)
        print(f"   {'on' if cluster else 'off':<8} {fetches:>15} {copies:>14.0f} {errors:>7}")


def pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] * 1000


def hop_latency(origin: OriginServer, keys: int) -> None:
    print(f"\n2. Time to a full 10 KiB answer, {keys} objects, 2 instances x 1 worker")
    origin.reset()
    with instances(origin, 1, True) as (here, owner):
        configured = [p.config_text or "" for p in (here, owner)]
        names = [t.split('self = "', 1)[1].split('"', 1)[0] for t in configured]
        ring = Ring.of(Member(n) for n in names)
        paths = [
            p
            for p in (f"/gen/{10240 + i}" for i in range(keys * 4))
            if ring.owner(f"{HOST}{p}") == Member(names[1])
        ][:keys]
        hop_ms: list[float] = []
        local_ms: list[float] = []
        with httpx.Client(headers={"host": HOST}, timeout=30) as client:
            for path in paths:  # stored at the owner first
                client.get(owner.url + path).raise_for_status()
            for path in paths:
                for into in (hop_ms, local_ms):
                    started = time.perf_counter()
                    client.get(here.url + path).raise_for_status()
                    into.append(time.perf_counter() - started)
        fetched = sum(origin.stats()["requests"].get(f"GET {p}", 0) for p in paths)
    print(f"   {'':<26} {'p50 ms':>8} {'p99 ms':>8}")
    print(f"   {'local hit':<26} {pct(local_ms, 50):>8.2f} {pct(local_ms, 99):>8.2f}")
    print(f"   {'hop to the owner (a hit)':<26} {pct(hop_ms, 50):>8.2f} {pct(hop_ms, 99):>8.2f}")
    added50 = pct(hop_ms, 50) - pct(local_ms, 50)
    added99 = pct(hop_ms, 99) - pct(local_ms, 99)
    print(f"   {'added by the hop':<26} {added50:>8.2f} {added99:>8.2f}")
    print(f"   origin fetches for the {len(paths)} objects: {fetched}")


def zipf_config(origin: str, memory: int, sockets: Path | None, hot: int = 0) -> str:
    text = proxy_config(origin, cache_settings={"memory_bytes": memory})
    if sockets is None:
        return text
    return text + (
        f'[cluster]\nsecret = "{SECRET}"\nsocket_dir = "{sockets}"\nhot_copy_requests = {hot}\n'
    )


async def replay(url: str, targets: list[str], connections: int) -> int:
    """Request i of `targets` on connection i mod `connections`; the number of answers
    with a hit member in Cache-Status."""

    async def one(lane: list[str]) -> int:
        hits = 0
        async with httpx.AsyncClient(base_url=url, timeout=60, headers={"host": HOST}) as client:
            for target in lane:
                resp = await client.get(target)
                resp.raise_for_status()
                members = resp.headers.get("cache-status", "").split(",")
                hits += any(m.strip().startswith("edgeshield; hit") for m in members)
        return hits

    lanes = [targets[i::connections] for i in range(connections)]
    return sum(await asyncio.gather(*(one(lane) for lane in lanes)))


def origin_bytes(origin: OriginServer) -> tuple[int, int]:
    """(GET requests, body bytes) the origin answered: /gen/<n> is n bytes."""
    fetches = size = 0
    for name, count in origin.stats()["requests"].items():
        method, _, path = name.partition(" ")
        if method == "GET" and path.startswith("/gen/"):
            fetches += count
            size += count * int(path.removeprefix("/gen/"))
    return fetches, size


def zipf_workers(
    origin: OriginServer, requests: int, objects: int, memory: int, connections: int, seed: int
) -> None:
    trace, _ = zipf_trace(random.Random(seed), requests, objects, 1.0, 0)
    run = time.time_ns()
    targets = [f"/gen/{size}?o={run}-{key}" for key, size in trace]
    total = sum(size for _, size in trace)
    print(
        f"\n3. Zipf(1.0): {requests} requests, {objects} objects of 2-64 KiB, "
        f"{memory / MiB:g} MiB of memory in all, {connections} connections"
    )
    print(
        f"   {'setup':<34} {'hit ratio':>9} {'points':>7} {'origin fetches':>15} {'origin MiB':>11}"
    )
    setups = [
        ("1 worker", 1, False, 0),
        ("4 workers, socket_dir (owners)", 4, True, 0),
        ("4 workers, owners + hot copies (8)", 4, True, 8),
        ("4 workers, no cluster", 4, False, 0),
    ]
    reference: float | None = None
    for name, workers, owned, hot in setups:
        origin.reset()
        sockets = Path(tempfile.mkdtemp(prefix="es-zipf-")) if owned else None
        text = zipf_config(origin.url, memory // workers, sockets, hot)
        with running_proxy(text, workers=workers) as proxy:
            if owned:
                wait_for(proxy, "edgeshield_peer_workers", workers)
            hits = asyncio.run(replay(proxy.url, targets, connections))
        fetches, fetched = origin_bytes(origin)
        ratio = hits / len(targets)
        reference = ratio if reference is None else reference
        points = (ratio - reference) * 100
        print(f"   {name:<34} {ratio:>9.3f} {points:>+7.1f} {fetches:>15} {fetched / MiB:>11.1f}")
    print(f"   (the trace asks for {total / MiB:.1f} MiB in all)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--keys", type=int, default=300)
    parser.add_argument("--delay", type=float, default=0.2)
    parser.add_argument("--zipf", action="store_true", help="only the Zipf section (3.)")
    parser.add_argument("--zipf-requests", type=int, default=12_000)
    parser.add_argument("--zipf-objects", type=int, default=2_000)
    parser.add_argument("--zipf-memory-mib", type=float, default=16)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    with running_origin() as origin:
        if args.zipf:
            memory = int(args.zipf_memory_mib * MiB)
            zipf_workers(
                origin, args.zipf_requests, args.zipf_objects, memory, args.connections, args.seed
            )
            return
        cold_burst(origin, args.requests, args.delay)
        hop_latency(origin, args.keys)


if __name__ == "__main__":
    main()
