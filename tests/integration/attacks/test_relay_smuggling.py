"""A client's own hop fields sent through a relaying worker ([cluster] socket_dir, two
workers): a forged `edgeshield-peer-auth` (in two spellings, and named in Connection)
and the owner's answer marker `edgeshield-peer`. Were any of them relayed, the owner
would refuse the hop ("two signatures") and the relay would mark the owner down, sending
every worker's misses to the origin for a while: one header per request would undo the
cluster. None reaches the owner: every miss is relayed, no hop refused, no worker
skipped, each object fetched from the origin once."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from proxy.cluster import hop
from tests.integration.test_cluster import SECRET, wait_for_workers
from tests.support.origin_server import OriginServer
from tests.support.proxy_server import proxy_config, running_proxy

OBJECTS = 24
SIZE = 1500


async def _smuggle(base: str, paths: list[str]) -> list[httpx.Response]:
    forged = f"{int(time.time())}.1.{'0' * 64}"

    async def one(path: str) -> httpx.Response:
        headers = [
            (hop.HEADER, forged),
            (hop.HEADER.title(), forged),
            (hop.ANSWERED, "unix:1"),
            ("connection", f"keep-alive, {hop.HEADER}"),
        ]
        async with httpx.AsyncClient(timeout=60) as client:
            return await client.get(base + path, headers=headers)

    return await asyncio.gather(*(one(p) for p in paths))


def test_a_clients_hop_fields_never_reach_the_owner(
    origin_server: OriginServer, tmp_path: Path
) -> None:
    paths = [f"/gen/{SIZE + i}" for i in range(1700, 1700 + OBJECTS)]
    config = proxy_config(origin_server.url) + (
        f'[cluster]\nsocket_dir = "{tmp_path}"\nsecret = "{SECRET}"\n'
    )
    before = origin_server.stats()["requests"]
    with running_proxy(config, workers=2) as proxy:
        wait_for_workers(proxy, 2)
        answers = asyncio.run(_smuggle(proxy.url, paths))
        log = proxy.log()
    assert [r.status_code for r in answers] == [200] * OBJECTS
    assert [len(r.content) for r in answers] == [int(p.rsplit("/", 1)[1]) for p in paths]
    assert not any(hop.ANSWERED in r.headers for r in answers)  # the marker stays inside
    assert any("," in r.headers["cache-status"] for r in answers)  # some were relayed
    assert "cluster hop refused" not in log and "skipped for" not in log, log
    after = origin_server.stats()["requests"]
    assert [after[f"GET {p}"] - before.get(f"GET {p}", 0) for p in paths] == [1] * OBJECTS
