"""Clients that open large objects and stop reading (issue 11 item 5), against a real
`edgeshield serve`: memory stays bounded whatever they do, and comes back when they go.

Raw sockets with a small SO_RCVBUF read the response head and then nothing, so the
server meets backpressure at once; the server's RSS is read with psutil on its pid.
Every assertion is about memory or bytes, never about time: waits are hang guards that
end as soon as their condition holds. After each attack a clean client gets the whole,
right object (nothing poisoned, nothing dropped) and the log has no traceback."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator

import httpx
import pytest

from proxy.serve.memory_tuning import TRIM_INTERVAL
from tests.support.origin_server import OriginServer, gen_bytes, running_origin
from tests.support.proxy_server import ProxyServer, running_proxy
from tests.support.slow_readers import rss, settle, stalled_readers, wait_until

MiB = 1024 * 1024
# The largest body the disk tier's default 64 MiB object limit takes with its headers.
DISK_OBJECT = 64 * MiB - 4096
PASS_OBJECT = 96 * MiB  # no-store: each client has its own origin stream
MEMORY_OBJECT = 12 * MiB  # under the memory tier's default 16 MiB object limit
ETAG = '"disk-v1"'


@pytest.fixture(scope="module")
def origin() -> Iterator[OriginServer]:
    with running_origin() as server:
        cached = {"cache-control": "max-age=3600"}
        server.script("/disk.bin", size=DISK_OBJECT, headers={**cached, "etag": ETAG})
        server.script("/pass.bin", size=PASS_OBJECT, headers={"cache-control": "no-store"})
        server.script("/memory.bin", size=MEMORY_OBJECT, headers=cached)
        yield server


@pytest.fixture(scope="module")
def proxy(origin: OriginServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyServer]:
    disk = tmp_path_factory.mktemp("slow-readers") / "disk"
    config = f"""
[server]
access_log = "off"
[cache.disk]
path = "{disk}"
max_bytes = {512 * MiB}
[origins.main]
kind = "http"
url = "{origin.url}"
read_timeout = 600.0
[[routes]]
origin = "main"
"""
    with running_proxy(config) as server:
        yield server


def _pid(proxy: ProxyServer) -> int:
    assert proxy.proc is not None
    return proxy.proc.pid


def _digest(size: int) -> str:
    h = hashlib.sha256()
    for offset in range(0, size, 8 * MiB):
        h.update(gen_bytes(offset, min(8 * MiB, size - offset)))
    return h.hexdigest()


def _clean_get(proxy: ProxyServer, path: str) -> tuple[int, str, str]:
    """A whole GET, hashed as it streams: (status, Cache-Status, sha256 of the body)."""
    with httpx.Client(timeout=300.0) as client, client.stream("GET", proxy.url + path) as r:
        h = hashlib.sha256()
        for chunk in r.iter_bytes():
            h.update(chunk)
        return r.status_code, r.headers["cache-status"], h.hexdigest()


def _warm(proxy: ProxyServer, path: str, tier: str) -> None:
    _clean_get(proxy, path)  # the miss; lower-tier writes follow in the background

    def served_from_tier() -> bool:
        return f"detail={tier}" in httpx.head(proxy.url + path).headers.get("cache-status", "")

    assert wait_until(served_from_tier, timeout=120.0), f"{path} never reached {tier}"


def _attack(proxy: ProxyServer, path: str, clients: int) -> tuple[int, int]:
    """(RSS growth while `clients` stall on `path`, RSS at start); every client got a
    complete 200 head."""
    pid = _pid(proxy)
    time.sleep(2 * TRIM_INTERVAL)  # not a timing assertion: lets the warm-up be trimmed
    start = settle(lambda: rss(pid))
    with stalled_readers(proxy.port, path, clients, timeout=300.0) as heads:
        assert all(h.startswith(b"HTTP/1.1 200 ") for h in heads), heads[0][:200]
        peak = settle(lambda: rss(pid), timeout=120.0)
    return peak - start, start


def _comes_back(proxy: ProxyServer, start: int) -> int:
    """RSS once it is within 10 % of `start` (or at the hang guard's deadline). The
    server trims its heaps every few seconds and collects cycles every 30 s at most."""
    pid = _pid(proxy)
    wait_until(lambda: rss(pid) <= start * 1.10, timeout=120.0)
    return rss(pid)


def _no_traceback(proxy: ProxyServer) -> None:
    log = proxy.log()
    assert "Traceback" not in log, log[-3000:]


def test_300_stalled_readers_of_a_64_mib_disk_object(proxy: ProxyServer) -> None:
    _warm(proxy, "/disk.bin", "disk")
    growth, start = _attack(proxy, "/disk.bin", 300)
    assert growth < 256 * MiB, f"RSS grew by {growth / MiB:.0f} MiB"
    after = _comes_back(proxy, start)
    assert after <= start * 1.10, f"RSS {after / MiB:.0f} MiB after, {start / MiB:.0f} before"
    status, cache_status, digest = _clean_get(proxy, "/disk.bin")
    assert (status, digest) == (200, _digest(DISK_OBJECT)) and "detail=disk" in cache_status
    _no_traceback(proxy)


def test_stalled_readers_of_a_pass_through_stream(proxy: ProxyServer) -> None:
    growth, start = _attack(proxy, "/pass.bin", 50)
    # The fetch window (256 KiB) plus the origin connection's read-ahead (256 KiB, see
    # routing/origins/read_ahead.py) and what the server holds: under 1 MiB a stream.
    # Without the read-ahead bound each held about 4 MiB.
    assert growth < 50 * 2 * MiB, f"RSS grew by {growth / MiB:.0f} MiB"
    after = _comes_back(proxy, start)
    assert after <= start * 1.10, f"RSS {after / MiB:.0f} MiB after, {start / MiB:.0f} before"
    status, _, digest = _clean_get(proxy, "/pass.bin")
    assert (status, digest) == (200, _digest(PASS_OBJECT))
    _no_traceback(proxy)


def test_stalled_readers_of_a_large_memory_hit(proxy: ProxyServer) -> None:
    _warm(proxy, "/memory.bin", "memory")
    growth, _ = _attack(proxy, "/memory.bin", 100)
    # Views of the one cached body: no copy per client.
    assert growth < 64 * MiB, f"RSS grew by {growth / MiB:.0f} MiB"
    status, _, digest = _clean_get(proxy, "/memory.bin")
    assert (status, digest) == (200, _digest(MEMORY_OBJECT))
    _no_traceback(proxy)


def test_a_range_and_a_precondition_on_a_streamed_disk_hit(proxy: ProxyServer) -> None:
    _warm(proxy, "/disk.bin", "disk")
    url = proxy.url + "/disk.bin"
    lo, hi = 40 * MiB - 10, 40 * MiB + 300_000
    part = httpx.get(url, headers={"range": f"bytes={lo}-{hi},-5"}, timeout=60.0)
    assert part.status_code == 206 and "detail=disk" in part.headers["cache-status"]
    assert gen_bytes(lo, hi - lo + 1) in part.content
    assert gen_bytes(DISK_OBJECT - 5, 5) in part.content
    assert int(part.headers["content-length"]) == len(part.content)
    head = httpx.head(url)
    assert head.headers["content-length"] == str(DISK_OBJECT) and not head.content
    assert head.headers["etag"] == ETAG
    assert httpx.get(url, headers={"if-none-match": ETAG}).status_code == 304
    assert httpx.get(url, headers={"if-match": '"other"'}).status_code == 412
    _no_traceback(proxy)
