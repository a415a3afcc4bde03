"""Request collapsing with hundreds of concurrent clients, and origin death mid-flight."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest

from tests.support.origin_server import OriginServer, gen_bytes
from tests.support.proxy_server import ProxyServer


async def _fetch_all(url: str, n: int, **kw: object) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        return await asyncio.gather(*(client.get(url, **kw) for _ in range(n)))  # type: ignore[arg-type]


def test_250_concurrent_clients_cause_one_origin_request(
    origin: OriginServer, proxy: ProxyServer
) -> None:
    path = f"/collapse/{uuid.uuid4().hex}"
    size = 3_000_000
    origin.script(path, size=size, delay=0.5, headers={"cache-control": "max-age=60"})
    responses = asyncio.run(_fetch_all(proxy.url + path, 250))
    assert all(r.status_code == 200 for r in responses)
    expected = gen_bytes(0, size)
    assert all(r.content == expected for r in responses)
    assert origin.requests(path) == 1
    collapsed = [r for r in responses if "collapsed" in r.headers["cache-status"]]
    assert len(collapsed) >= 200  # the rest arrived after the fetch was stored: hits


def test_collapsed_waiters_receive_bytes_before_the_body_completes(
    origin: OriginServer, proxy: ProxyServer
) -> None:
    """Streaming, not store-and-forward: the first bytes reach a waiter while the origin
    is still trickling the rest."""
    path = f"/stream/{uuid.uuid4().hex}"
    origin.script(
        path,
        size=40,
        mode="trickle",
        trickle_interval=0.05,
        headers={"cache-control": "max-age=60"},
    )

    async def first_byte_delay() -> float:
        async with httpx.AsyncClient(timeout=30) as client:
            start = time.monotonic()
            first = None
            async with client.stream("GET", proxy.url + path) as r:
                async for _ in r.aiter_raw():
                    if first is None:
                        first = time.monotonic() - start
            assert first is not None
            return first

    async def run() -> list[float]:
        return await asyncio.gather(*(first_byte_delay() for _ in range(20)))

    delays = asyncio.run(run())
    # The whole body takes ~2 s to trickle; every waiter saw bytes well before that.
    assert max(delays) < 1.0
    assert origin.requests(path) == 1


def test_failed_fetch_reaches_every_waiter_promptly(
    origin: OriginServer, proxy: ProxyServer
) -> None:
    path = f"/fail/{uuid.uuid4().hex}"
    origin.script(path, body="x", mode="reset", delay=0.3)
    start = time.monotonic()
    responses = asyncio.run(_fetch_all(proxy.url + path, 100))
    assert time.monotonic() - start < 5
    assert all(r.status_code == 502 for r in responses)
    assert origin.requests(path) == 1


def test_stale_if_error_when_the_origin_process_is_stopped(
    origin: OriginServer, proxy: ProxyServer
) -> None:
    path = f"/sie/{uuid.uuid4().hex}"
    origin.script(
        path, body="cached copy", headers={"cache-control": "max-age=1, stale-if-error=300"}
    )
    with httpx.Client(base_url=proxy.url, timeout=10) as client:
        assert client.get(path).text == "cached copy"
        origin.kill()
        try:
            time.sleep(1.2)
            r = client.get(path)
            assert r.status_code == 200 and r.text == "cached copy"
            assert "fwd=stale" in r.headers["cache-status"]
            other = client.get(f"/sie/{uuid.uuid4().hex}")
            assert other.status_code == 502
        finally:
            origin.restart()


@pytest.mark.slow
def test_one_gib_streams_through_with_bounded_rss(origin: OriginServer, proxy: ProxyServer) -> None:
    import psutil

    assert proxy.proc is not None
    server = psutil.Process(proxy.proc.pid)
    size = 1 << 30
    path = f"/huge/{uuid.uuid4().hex}"
    origin.script(
        path, size=size, headers={"cache-control": "max-age=60", "content-type": "video/mp4"}
    )
    before = server.memory_info().rss
    peak = before
    received = 0
    with httpx.Client(timeout=60) as client, client.stream("GET", proxy.url + path) as r:
        assert r.status_code == 200
        assert int(r.headers["content-length"]) == size
        for i, chunk in enumerate(r.iter_raw(1 << 20)):
            received += len(chunk)
            if i % 32 == 0:
                peak = max(peak, server.memory_info().rss)
    assert received == size
    assert peak - before < 64 * 1024 * 1024, f"RSS grew by {(peak - before) >> 20} MiB"
