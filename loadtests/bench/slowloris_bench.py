"""Slowloris: the normal client's latency with and without 10,000 half-sent requests held
open, in the same run, on each engine:

    python loadtests/bench/slowloris_bench.py [--connections 10000] [--requests 1000]
                                              [--engines granian,uvicorn]

One real `edgeshield serve` per engine (header_read_timeout 30 s so the attack is held
while it is measured, max_connections above the attack) in front of the scripted test
origin. A normal client asks for a cached 10 KiB object, sequentially, on a new
connection each time and then on one kept-alive connection: first alone, then while
tests/support/slowloris.py (another process) holds the half-sent requests, a header byte
a second each. Printed: p50/p99 of each, the ratio of p99 under attack to p99 alone, the
connections the worker held (its descriptors), and how many of the attack's connections
the server closed. Exit 0 whatever the figures.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.origin_server import running_origin  # noqa: E402
from tests.support.proxy_server import ENGINES, proxy_config, running_proxy  # noqa: E402
from tests.support.raw_http import exchange, read_response  # noqa: E402
from tests.support.slowloris import fd_budget, raise_fd_limit  # noqa: E402

HEAD_TIMEOUT = 30
PATH = "/gen/10240"
CLOSE = f"GET {PATH} HTTP/1.1\r\nHost: media.example\r\nConnection: close\r\n\r\n".encode()
KEEP = f"GET {PATH} HTTP/1.1\r\nHost: media.example\r\n\r\n".encode()


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def timed(port: int, requests: int, deadline: float) -> tuple[list[float], list[float]]:
    """Latencies (s) of new-connection requests, then of requests on one connection."""
    fresh: list[float] = []
    for _ in range(requests):
        if time.monotonic() > deadline:
            break
        start = time.perf_counter()
        assert exchange(port, CLOSE, timeout=60).status == 200
        fresh.append(time.perf_counter() - start)
    kept: list[float] = []
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        for _ in range(requests):
            if time.monotonic() > deadline:
                break
            start = time.perf_counter()
            sock.sendall(KEEP)
            assert read_response(sock).status == 200
            kept.append(time.perf_counter() - start)
    return fresh, kept


def worker_of(pid: int) -> psutil.Process:
    """The process serving the port: granian's worker, or uvicorn's only process."""
    root = psutil.Process(pid)
    return max([root, *root.children(recursive=True)], key=lambda p: p.num_fds())


def line(label: str, samples: list[float]) -> str:
    p50, p99 = percentile(samples, 0.5) * 1000, percentile(samples, 0.99) * 1000
    return f"{label:<42} n={len(samples):>5}  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms"


def run(engine: str, connections: int, requests: int) -> None:
    server = {"header_read_timeout": HEAD_TIMEOUT, "max_connections": connections + 1000}
    with (
        running_origin() as origin,
        running_proxy(proxy_config(origin.url, server=server), engine=engine) as proxy,
    ):
        assert proxy.proc is not None
        exchange(proxy.port, CLOSE)  # cached from here on
        alone = timed(proxy.port, requests, time.monotonic() + 60)
        args = ["--port", str(proxy.port), "--connections", str(connections)]
        attacker = subprocess.Popen(
            [sys.executable, "-m", "tests.support.slowloris", *args, "--guard", "90"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert attacker.stdout is not None
        opened = attacker.stdout.readline().split()  # "OPEN <n>" once all are open
        start = time.monotonic()
        worker = worker_of(proxy.proc.pid)
        held = worker.num_fds()
        # Measure only while the attack is held: its first connection closes at 30 s.
        under = timed(proxy.port, requests, start + HEAD_TIMEOUT - 8)
        held = max(held, worker.num_fds())
        report = json.loads(attacker.communicate(timeout=120)[0].splitlines()[-1])
    print(f"{engine}: {opened[1]} half-sent requests held; worker descriptors at {held}")
    for label, base, attacked in (
        ("new connection per request", alone[0], under[0]),
        ("one kept-alive connection", alone[1], under[1]),
    ):
        print("  " + line(f"{label}, alone", base))
        print("  " + line(f"{label}, under attack", attacked))
        ratio = percentile(attacked, 0.99) / percentile(base, 0.99)
        print(f"  {'':<42} p99 under attack / alone: {ratio:.2f}")
    print(
        f"  closed by the server: {report['closed_by_server']}/{report['opened']}"
        f" (opening took {report['open_seconds']} s, last close at"
        f" {report['last_close_seconds']} s, header_read_timeout {HEAD_TIMEOUT} s)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--connections", type=int, default=10_000)
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--engines", default=",".join(ENGINES))
    args = ap.parse_args()
    raise_fd_limit()
    budget, hard = fd_budget()
    connections = min(args.connections, budget)
    if connections < args.connections:
        print(f"scaled down to {connections} connections: RLIMIT_NOFILE hard limit {hard}")
    for engine in args.engines.split(","):
        run(engine, connections, args.requests)


if __name__ == "__main__":
    main()
