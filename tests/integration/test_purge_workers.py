"""A purge reaches every worker of an instance without Redis (proxy/purge/siblings.py):
with `--workers 2`, the worker that accepts a purge tells the other one before it
answers, so no fresh connection finds the object afterwards; a hostile frame on a
worker's purge socket purges nothing and the worker keeps serving; a dead worker's
socket left in the folder is passed over."""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from pathlib import Path

import httpx

from tests.support.origin_server import OriginServer
from tests.support.proxy_server import ProxyServer, proxy_config, running_proxy

ON_EVERY_ENGINE = True
FRESH = 24  # connections per round: the kernel spreads them over both workers


async def _fresh_answers(url: str) -> list[httpx.Response]:
    async def one() -> httpx.Response:
        async with httpx.AsyncClient(timeout=30) as client:
            resp = await client.get(url)
            assert resp.status_code == 200
            return resp

    return await asyncio.gather(*(one() for _ in range(FRESH)))


def _fresh(url: str) -> list[str]:
    return [r.headers.get("cache-status", "") for r in asyncio.run(_fresh_answers(url))]


def _held_by_every_worker(proxy: ProxyServer, path: str) -> None:
    """Until a round of fresh connections is all hits (every worker keeps a copy); a
    hang guard only."""
    deadline = time.monotonic() + 60
    while not all("; hit" in s for s in _fresh(proxy.url + path)):
        assert time.monotonic() < deadline, proxy.log()


def _config(origin: OriginServer, metrics: Path) -> str:
    return proxy_config(origin.url, server={"metrics_dir": str(metrics)})


def test_a_purge_on_one_worker_reaches_the_other(
    origin_server: OriginServer, tmp_path: Path, engine: str | None
) -> None:
    metrics = tmp_path / "m"
    metrics.mkdir(mode=0o700)
    (metrics / "purge-4000000.sock").touch()  # a dead worker's leftover: passed over
    path = f"/purged-{engine}"
    origin_server.script(path, body="old", headers={"cache-control": "max-age=3600"})
    with running_proxy(_config(origin_server, metrics), workers=2, engine=engine) as proxy:
        for held in (path, "/gen/1501"):
            _held_by_every_worker(proxy, held)
        origin_server.script(path, body="new", headers={"cache-control": "max-age=3600"})
        resp = httpx.request("PURGE", proxy.url + path, timeout=30)
        assert resp.status_code == 200, resp.text
        assert not resp.json().get("errors"), resp.text
        after = asyncio.run(_fresh_answers(proxy.url + path))
        assert [r.text for r in after] == ["new"] * FRESH  # no worker kept the old one
        # The other object was not touched on either worker.
        assert all("; hit" in s for s in _fresh(proxy.url + "/gen/1501"))
        assert len(list(metrics.glob("purge-*.sock"))) == 3
    assert [p.name for p in metrics.glob("purge-*.sock")] == ["purge-4000000.sock"]


def test_garbage_on_a_workers_purge_socket_purges_nothing(
    origin_server: OriginServer, tmp_path: Path, engine: str | None
) -> None:
    metrics = tmp_path / "m"
    metrics.mkdir(mode=0o700)
    with running_proxy(_config(origin_server, metrics), workers=2, engine=engine) as proxy:
        _held_by_every_worker(proxy, "/gen/1502")
        frames = [
            b"",  # connect and leave
            b"\x00\x00",  # half a length
            struct.pack(">I", 10) + b"short",  # cut off
            struct.pack(">I", 0xFFFFFFFF),  # 4 GiB announced
            struct.pack(">I", 9) + b"not json!",
            struct.pack(">I", 2) + b"{}",  # JSON, not a purge
        ]
        for sock_path in metrics.glob("purge-*.sock"):
            for frame in frames:
                with socket.socket(socket.AF_UNIX) as sock:
                    sock.settimeout(30)
                    sock.connect(str(sock_path))
                    sock.sendall(frame)
                    sock.shutdown(socket.SHUT_WR)
                    assert sock.recv(1) == b""  # closed, unanswered
        assert all("; hit" in s for s in _fresh(proxy.url + "/gen/1502"))
        assert "unreadable purge from a worker" in proxy.log()
