"""Clients that ask for a large object and then stop reading, and the server's RSS.

Shared by tests/integration/attacks/test_slow_readers.py and
loadtests/bench/slow_reader_bench.py. Raw sockets with a small SO_RCVBUF, so the client
kernel absorbs next to nothing and the server's send path meets backpressure at once.
Memory is measured, never time: waits are hang guards that end as soon as the condition
holds."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psutil

RCVBUF = 4096
HEAD_END = b"\r\n\r\n"


def rss(pid: int) -> int:
    return int(psutil.Process(pid).memory_info().rss)


def _request(host: str, path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: slow-reader\r\n\r\n".encode()


def _head(sock: socket.socket) -> bytes:
    """Read until the response head is complete; returns what came (head and maybe a
    little body)."""
    got = b""
    while HEAD_END not in got:
        data = sock.recv(1024)
        if not data:
            raise ConnectionError(f"closed before a response head: {got[:200]!r}")
        got += data
    return got


@contextmanager
def stalled_readers(
    port: int, path: str, count: int, *, host: str = "127.0.0.1", timeout: float = 120.0
) -> Iterator[list[bytes]]:
    """`count` connections that each sent GET `path`, read the response head and then
    stopped reading; yields the heads. Closed (with a reset, as a client that gives up)
    on exit."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(s)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)  # before connect
            s.settimeout(timeout)
            s.connect((host, port))
            s.sendall(_request(host, path))
        yield [_head(s) for s in socks]
    finally:
        for s in socks:
            # SO_LINGER 0: close sends RST, the server learns at once that we are gone.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            s.close()


def settle(sample: Callable[[], int], *, timeout: float = 60.0, interval: float = 0.5) -> int:
    """The value once three samples in a row agree within 1 % (or at the deadline: a
    hang guard, not a measure)."""
    deadline = time.monotonic() + timeout
    last = [sample()]
    while time.monotonic() < deadline:
        time.sleep(interval)
        last = [*last[-2:], sample()]
        if len(last) == 3 and max(last) <= min(last) * 1.01:
            break
    return last[-1]


def wait_until(check: Callable[[], bool], *, timeout: float = 60.0, interval: float = 0.5) -> bool:
    """Poll `check` until true or the deadline (a hang guard); returns the last result."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True
