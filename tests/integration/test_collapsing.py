"""Request collapsing with hundreds of concurrent clients, and origin death mid-flight."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.support.origin_server import OriginServer, gen_bytes
from tests.support.proxy_server import ProxyServer, proxy_config, running_proxy

# Caching semantics hold on every server engine (tests/conftest.py).
ON_EVERY_ENGINE = True

# Only a guard against a hang: no assertion below depends on how fast anything runs.
HANG_GUARD = 60.0


@pytest.fixture(scope="module")
def proxy(origin_server: OriginServer, engine: str | None) -> Iterator[ProxyServer]:
    """A patient origin read timeout: a held body waits for the test, not for a clock."""
    origin = {"first_byte_timeout": 2.0, "read_timeout": HANG_GUARD}
    with running_proxy(proxy_config(origin_server.url, origin=origin), engine=engine) as server:
        yield server


async def _fetch_all(url: str, n: int) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(limits=limits, timeout=HANG_GUARD) as client:
        return await asyncio.gather(*(client.get(url) for _ in range(n)))


async def _read_while_held(
    origin: OriginServer, proxy: ProxyServer, path: str, n: int
) -> list[tuple[httpx.Response, bytes]]:
    """n clients each read their first bytes while the origin holds the rest of the body
    ("hold_after"); it is released only once all n have bytes. So every one of them was
    answered from the fetch in flight, streamed, whatever the machine's speed."""
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(limits=limits, timeout=HANG_GUARD) as client:

        async def read(got_bytes: asyncio.Event) -> tuple[httpx.Response, bytes]:
            chunks = []
            async with client.stream("GET", proxy.url + path) as r:
                async for chunk in r.aiter_raw():
                    chunks.append(chunk)
                    got_bytes.set()
            return r, b"".join(chunks)

        events = [asyncio.Event() for _ in range(n)]
        readers = [asyncio.create_task(read(e)) for e in events]
        try:
            everyone = asyncio.gather(*(e.wait() for e in events))
            await asyncio.wait_for(everyone, HANG_GUARD)
        finally:
            await asyncio.to_thread(origin.release, path)
        return await asyncio.gather(*readers)


def test_250_concurrent_clients_cause_one_origin_request(
    origin: OriginServer, proxy: ProxyServer
) -> None:
    path = f"/collapse/{uuid.uuid4().hex}"
    size = 3_000_000
    origin.script(path, size=size, hold_after=65_536, headers={"cache-control": "max-age=60"})
    answers = asyncio.run(_read_while_held(origin, proxy, path, 250))
    expected = gen_bytes(0, size)
    assert all(r.status_code == 200 and body == expected for r, body in answers)
    assert origin.requests(path) == 1
    # All arrived while the fetch was in flight: one started it, the others joined it.
    collapsed = [r for r, _ in answers if "collapsed" in r.headers["cache-status"]]
    assert len(collapsed) == 249


def test_collapsed_waiters_receive_bytes_before_the_body_completes(
    origin: OriginServer, proxy: ProxyServer
) -> None:
    """Streaming, not store-and-forward: each of 20 waiters reads bytes while the origin
    holds the rest of the body back (an ordering, not a delay: it cannot flake)."""
    path = f"/stream/{uuid.uuid4().hex}"
    size = 40_000
    origin.script(path, size=size, hold_after=1_000, headers={"cache-control": "max-age=60"})
    answers = asyncio.run(_read_while_held(origin, proxy, path, 20))
    assert all(body == gen_bytes(0, size) for _, body in answers)
    assert origin.requests(path) == 1


def test_failed_fetch_reaches_every_waiter(origin: OriginServer, proxy: ProxyServer) -> None:
    """A waiter the failure did not reach would hang into the client's timeout (a hang
    guard) and fail; one that fetched for itself would show as a second origin request."""
    path = f"/fail/{uuid.uuid4().hex}"
    origin.script(path, body="x", mode="reset", delay=0.3)
    responses = asyncio.run(_fetch_all(proxy.url + path, 100))
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
