"""Relays' hot copies ([cluster] hot_copy_requests = 1, the most eager setting) attacked
on a real instance with two workers sharing misses over their sockets: answers that no
shared cache may keep (Set-Cookie, private, no-store, an answer to a request with
Authorization) asked for again and again over fresh connections, so that both workers
see them as hot; none is kept by any worker, nor handed to a client without credentials.
And a purge reaches every worker's hot copy."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from tests.integration.test_cluster import SECRET, wait_for_workers
from tests.support.origin_server import OriginServer
from tests.support.proxy_server import ProxyServer, proxy_config, running_proxy

ROUNDS, FRESH = 4, 8
PRIVATE = {
    "/hc/set-cookie": {"cache-control": "max-age=300", "set-cookie": "session=alice"},
    "/hc/private": {"cache-control": "private, max-age=300"},
    "/hc/no-store": {"cache-control": "no-store"},
}


def _config(origin: OriginServer, tmp_path: Path) -> str:
    metrics = tmp_path / "m"
    metrics.mkdir(mode=0o700, exist_ok=True)
    return proxy_config(origin.url, server={"metrics_dir": str(metrics)}) + (
        f'[cluster]\nsocket_dir = "{tmp_path / "s"}"\nsecret = "{SECRET}"\nhot_copy_requests = 1\n'
    )


async def _fresh(url: str, n: int, headers: dict[str, str] | None = None) -> list[httpx.Response]:
    async def one() -> httpx.Response:
        async with httpx.AsyncClient(timeout=30) as client:
            return await client.get(url, headers=headers)

    return await asyncio.gather(*(one() for _ in range(n)))


def _hit_here(resp: httpx.Response) -> bool:
    """Answered from the memory of the worker the client reached (not relayed)."""
    return resp.headers["cache-status"].split(",")[-1].strip().startswith("edgeshield; hit")


def test_private_answers_are_never_hot_copies(origin_server: OriginServer, tmp_path: Path) -> None:
    for path, headers in PRIVATE.items():
        origin_server.script(path, body="for alice", headers=headers)
    origin_server.script("/hc/auth", body="for alice", headers={"cache-control": "max-age=300"})
    before = origin_server.stats()["requests"]
    with running_proxy(_config(origin_server, tmp_path), workers=2) as proxy:
        wait_for_workers(proxy, 2)
        answers = []
        for _ in range(ROUNDS):
            for path in PRIVATE:
                answers += asyncio.run(_fresh(proxy.url + path, FRESH))
            answers += asyncio.run(
                _fresh(proxy.url + "/hc/auth", FRESH, {"authorization": "Bearer alice"})
            )
        anonymous = httpx.get(proxy.url + "/hc/auth", timeout=30)
    assert all(r.status_code == 200 for r in answers)
    assert not any("hit" in r.headers["cache-status"] for r in answers), [
        r.headers["cache-status"] for r in answers if "hit" in r.headers["cache-status"]
    ]
    assert "hit" not in anonymous.headers["cache-status"]  # never the answer for alice
    after = origin_server.stats()["requests"]
    asked = {path: ROUNDS * FRESH for path in [*PRIVATE, "/hc/auth"]}
    asked["/hc/auth"] += 1
    assert {p: after[f"GET {p}"] - before.get(f"GET {p}", 0) for p in asked} == asked


def _hot_everywhere(proxy: ProxyServer, path: str) -> None:
    """Until a round of fresh connections is all hits of the worker reached (both keep a
    copy); a hang guard only."""
    deadline = time.monotonic() + 60
    while not all(_hit_here(r) for r in asyncio.run(_fresh(proxy.url + path, 3 * FRESH))):
        assert time.monotonic() < deadline, proxy.log()


def test_a_purge_reaches_every_workers_hot_copy(
    origin_server: OriginServer, tmp_path: Path
) -> None:
    path = "/hc/purged"
    origin_server.script(path, body="old", headers={"cache-control": "max-age=3600"})
    with running_proxy(_config(origin_server, tmp_path), workers=2) as proxy:
        wait_for_workers(proxy, 2)
        _hot_everywhere(proxy, path)
        origin_server.script(path, body="new", headers={"cache-control": "max-age=3600"})
        resp = httpx.request("PURGE", proxy.url + path, timeout=30)
        assert resp.status_code == 200 and not resp.json().get("errors"), resp.text
        after = asyncio.run(_fresh(proxy.url + path, 3 * FRESH))
    assert [r.text for r in after] == ["new"] * 3 * FRESH
