"""Slowloris: the normal client's latency with and without 10,000 half-sent requests held
open, in the same run, on each engine:

    python loadtests/bench/slowloris_bench.py [--connections 10000] [--requests 1000]
                                              [--engines granian,uvicorn] [--tls]

One real `edgeshield serve` per engine (header_read_timeout 30 s so the attack is held
while it is measured, max_connections above the attack) in front of the scripted test
origin. With --tls the listener serves HTTPS (a throwaway certificate, HTTP/2 on) and
every connection, the attacker's and the normal client's, completes a TLS handshake
first; header_read_timeout is 60 s then, as opening the attack takes longer. A normal
client asks for a cached 10 KiB object, sequentially, on a new connection each time and
then on one kept-alive connection: first alone, then while
tests/support/slowloris.py (another process) holds the half-sent requests, a header byte
a second each. Printed: p50/p99 of each, the ratio of p99 under attack to p99 alone, the
connections the worker held (its descriptors), and how many of the attack's connections
the server closed. Exit 0 whatever the figures.
"""

from __future__ import annotations

import argparse
import json
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.origin_server import running_origin  # noqa: E402
from tests.support.proxy_server import (  # noqa: E402
    ENGINES,
    ProxyServer,
    proxy_config,
    running_proxy,
)
from tests.support.raw_http import RawResponse, read_response  # noqa: E402
from tests.support.slowloris import fd_budget, raise_fd_limit, unchecked_tls  # noqa: E402
from tests.support.tls_certs import TestPki  # noqa: E402

HEAD_TIMEOUT = 30
TLS_HEAD_TIMEOUT = 60
PATH = "/gen/10240"
CLOSE = f"GET {PATH} HTTP/1.1\r\nHost: media.example\r\nConnection: close\r\n\r\n".encode()
KEEP = f"GET {PATH} HTTP/1.1\r\nHost: media.example\r\n\r\n".encode()


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def connect(port: int, tls: ssl.SSLContext | None) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    return tls.wrap_socket(sock) if tls is not None else sock


def exchange(port: int, data: bytes, tls: ssl.SSLContext | None) -> RawResponse:
    with connect(port, tls) as sock:
        sock.sendall(data)
        return read_response(sock)


def timed(
    port: int, requests: int, deadline: float, tls: ssl.SSLContext | None
) -> tuple[list[float], list[float]]:
    """Latencies (s) of new-connection requests (the TLS handshake included), then of
    requests on one connection."""
    fresh: list[float] = []
    for _ in range(requests):
        if time.monotonic() > deadline:
            break
        start = time.perf_counter()
        assert exchange(port, CLOSE, tls).status == 200
        fresh.append(time.perf_counter() - start)
    kept: list[float] = []
    with connect(port, tls) as sock:
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


def run(engine: str, connections: int, requests: int, tls: bool) -> None:
    head_timeout = TLS_HEAD_TIMEOUT if tls else HEAD_TIMEOUT
    server = {"header_read_timeout": head_timeout, "max_connections": connections + 1000}
    client_tls = unchecked_tls() if tls else None
    with (
        tempfile.TemporaryDirectory() as folder,
        running_origin() as origin,
    ):
        config = proxy_config(origin.url, server=server)
        if tls:
            leaf = TestPki(Path(folder)).leaf("slowloris")
            config += f'[server.tls]\ncert = "{leaf.cert}"\nkey = "{leaf.key}"\n'
        scheme = "https" if tls else "http"
        with running_proxy(config, engine=engine, scheme=scheme) as proxy:
            measure(proxy, engine, connections, requests, client_tls, head_timeout)


def measure(
    proxy: ProxyServer,
    engine: str,
    connections: int,
    requests: int,
    tls: ssl.SSLContext | None,
    head_timeout: float,
) -> None:
    assert proxy.proc is not None
    exchange(proxy.port, CLOSE, tls)  # cached from here on
    alone = timed(proxy.port, requests, time.monotonic() + 60, tls)
    args = ["--port", str(proxy.port), "--connections", str(connections)]
    args += ["--tls"] if tls is not None else []
    launched = time.monotonic()
    attacker = subprocess.Popen(
        [sys.executable, "-m", "tests.support.slowloris", *args, "--guard", str(head_timeout + 60)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert attacker.stdout is not None
    opened = attacker.stdout.readline().split()  # "OPEN <n>" once all are open
    worker = worker_of(proxy.proc.pid)
    held = worker.num_fds()
    # Measure only while the attack is held: its first connection closes head_timeout
    # after it opened.
    under = timed(proxy.port, requests, launched + head_timeout - 8, tls)
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
        f" {report['last_close_seconds']} s, header_read_timeout {head_timeout} s)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--connections", type=int, default=10_000)
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--engines", default=",".join(ENGINES))
    ap.add_argument("--tls", action="store_true", help="HTTPS, every connection a TLS one")
    args = ap.parse_args()
    raise_fd_limit()
    budget, hard = fd_budget()
    connections = min(args.connections, budget)
    if connections < args.connections:
        print(f"scaled down to {connections} connections: RLIMIT_NOFILE hard limit {hard}")
    for engine in args.engines.split(","):
        run(engine, connections, args.requests, args.tls)


if __name__ == "__main__":
    main()
