"""Figures of key ownership ([cluster], proxy/cluster/): origin fetches of a cold object
across instances and workers, and what a peer hop adds to a hit.

    python loadtests/bench/peer_bench.py [--requests 500] [--keys 300] [--delay 0.2]

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

Latencies come from one run on a shared machine: compare the two columns of one run,
not runs on different machines.
"""

from __future__ import annotations

import argparse
import asyncio
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

from proxy.cluster.owner import Member, Ring  # noqa: E402
from tests.support.origin_server import OriginServer, running_origin  # noqa: E402
from tests.support.ports import free_port  # noqa: E402
from tests.support.proxy_server import ProxyServer, proxy_config, running_proxy  # noqa: E402

HOST = "media.bench"
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--keys", type=int, default=300)
    parser.add_argument("--delay", type=float, default=0.2)
    args = parser.parse_args()
    with running_origin() as origin:
        cold_burst(origin, args.requests, args.delay)
        hop_latency(origin, args.keys)


if __name__ == "__main__":
    main()
