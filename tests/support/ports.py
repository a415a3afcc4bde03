"""Local TCP port helpers for tests."""

from __future__ import annotations

import functools
import itertools
import os
import random
import socket
import time
from collections.abc import Iterator

# Ports a test server is told to use come from a band of this range that belongs to one
# pytest-xdist worker, below the kernel's ephemeral range (32768-60999 on Linux): two
# workers never pick the same port between checking it and a server binding it, and no
# outgoing connection takes it meanwhile.
PORT_RANGE = (20000, 32000)
WORKER_BANDS = 16


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago, from this worker's band. The
    band is walked in turn (from a random place), not drawn from at random: a port handed
    out is not handed out again until the band wraps, so two calls before the first
    server binds (a test's admin port, then the server's) never get the same one."""
    low, high = PORT_RANGE
    band = (high - low) // WORKER_BANDS
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    start = low + (int(worker) % WORKER_BANDS if worker.isdigit() else 0) * band
    ports = _walk(start, band)
    for _ in range(200):
        port = next(ports)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {start}-{start + band}")


@functools.cache
def _walk(start: int, band: int) -> Iterator[int]:
    """This process's turn through the band."""
    offset = random.randrange(band)
    return itertools.cycle(start + (offset + i) % band for i in range(band))


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_for_port(port: int, timeout: float = 10.0, host: str = "127.0.0.1") -> None:
    """Block until something accepts connections on host:port; TimeoutError otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        if port_open(port, host):
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")
        time.sleep(0.02)
