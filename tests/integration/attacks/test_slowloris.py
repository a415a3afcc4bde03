"""Slowloris: 10,000 half-sent requests held open (a header byte a second each, from
another process, tests/support/slowloris.py) while a normal client keeps getting 200s
on new connections; the header-read timeout closes every half-open connection, and the
worker's file descriptors fall back afterwards. On both engines.

Only behaviour is asserted; the normal client's latency under the attack is a figure,
measured by loadtests/bench/slowloris_bench.py."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator

import psutil
import pytest

from tests.support.origin_server import OriginServer
from tests.support.proxy_server import ENGINES, REPO_ROOT, ProxyServer, proxy_config, running_proxy
from tests.support.raw_http import exchange
from tests.support.slowloris import fd_budget, raise_fd_limit

WANTED = 10_000
HEAD_TIMEOUT = 5  # seconds: opening 10,000 connections takes ~3 s on a 2-core machine
GUARD = 45.0  # hang guard for the attack as a whole
NORMAL = b"GET /gen/10 HTTP/1.1\r\nHost: media.example\r\nConnection: close\r\n\r\n"


def connections_to_hold() -> int:
    """10,000, or what the machine's hard RLIMIT_NOFILE allows, said out loud."""
    budget, hard = fd_budget()
    if budget >= WANTED:
        return WANTED
    if budget < 500:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} leaves room for {budget} connections")
    message = f"slowloris scaled down to {budget} connections: RLIMIT_NOFILE hard limit {hard}"
    warnings.warn(message, stacklevel=2)
    print(message)
    return budget


@pytest.fixture(params=ENGINES)
def edge(request: pytest.FixtureRequest, origin_server: OriginServer) -> Iterator[ProxyServer]:
    server = {"header_read_timeout": HEAD_TIMEOUT, "max_connections": WANTED + 100}
    with running_proxy(proxy_config(origin_server.url, server=server), engine=request.param) as p:
        yield p


def fd_counts(procs: list[psutil.Process]) -> dict[int, int]:
    counts = {}
    for proc in procs:
        with contextlib.suppress(psutil.Error):  # a process that ended
            counts[proc.pid] = proc.num_fds()
    return counts


def test_slowloris_is_cut_off_while_clients_are_served(edge: ProxyServer) -> None:
    raise_fd_limit()
    count = connections_to_hold()
    assert edge.proc is not None
    root = psutil.Process(edge.proc.pid)
    tree = [root, *root.children(recursive=True)]
    assert exchange(edge.port, NORMAL).status == 200  # cached before the attack
    base = fd_counts(tree)
    peak = dict(base)

    args = ["--port", str(edge.port), "--connections", str(count), "--guard", str(GUARD)]
    attacker = subprocess.Popen(
        [sys.executable, "-m", "tests.support.slowloris", *args],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    statuses = []
    try:
        while attacker.poll() is None:
            for pid, n in fd_counts(tree).items():
                peak[pid] = max(peak[pid], n)
            statuses.append(exchange(edge.port, NORMAL, timeout=GUARD).status)
            time.sleep(0.05)
        out, _ = attacker.communicate(timeout=GUARD)
    finally:
        if attacker.poll() is None:
            attacker.kill()
            attacker.wait()
    report = json.loads(out.splitlines()[-1])
    worker = max(peak, key=lambda pid: peak[pid] - base[pid])
    print(f"{edge.engine}: {report}; worker fds {base[worker]} -> {peak[worker]}")

    assert report["opened"] == count and report["failed"] == 0
    # The server closed every one of them, before the guard ran out.
    assert report["closed_by_server"] == count
    assert report["last_close_seconds"] is not None
    # A normal client was answered throughout, on a new connection each time.
    assert statuses and set(statuses) == {200}, statuses
    # The worker's descriptors fall back (the closes may take a moment to be processed).
    deadline = time.monotonic() + GUARD
    while fd_counts([psutil.Process(worker)])[worker] > base[worker] + 20:
        assert time.monotonic() < deadline, "the worker kept the attack's descriptors"
        time.sleep(0.2)
