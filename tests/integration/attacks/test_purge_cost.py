"""Issue 11, item 7: purge cost stays flat.

A purge flood is the attack here (from an admin, a script gone wrong, or a CDN fan-out
loop): 10,000 prefix bans, then one purge of 100,000 URLs, against a real `edgeshield
serve` whose ban lurker runs every 0.2 s. While the lurker works through the cache and
while the big purge is applied, clients keep asking for cached objects: every answer
must be a 200 with the right bytes (no error, no dropped connection, no hang), what the
bans and the purge cover must come back fresh from the origin (never an old copy), and
what they do not cover must stay cached. No latency is asserted (the CI machine is
busy); loadtests/bench/lurker_bench.py measures it."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.origin_server import OriginServer
from tests.support.proxy_server import ProxyServer, running_proxy

TOKEN = "purge-cost-token-0123456789abcdef"
AUTH = {"authorization": f"Bearer {TOKEN}"}
HOST = "127.0.0.1"
BANS = 10_000
URLS = 100_000
PREFIXES_PER_REQUEST = 1_000  # proxy/purge/request.py MAX_PREFIXES
KEEP = [f"/keep/{i}.bin" for i in range(30)]  # covered by no ban or purge
HANG_GUARD = 60.0


@pytest.fixture(scope="module")
def edge(origin_server: OriginServer) -> Iterator[ProxyServer]:
    config = f"""
[server]
access_log = "off"
[admin]
token = "{TOKEN}"
[purge]
lurk_interval = 0.2
[origins.main]
kind = "http"
url = "{origin_server.url}"
[[routes]]
origin = "main"
"""
    with running_proxy(config) as server:
        yield server


def body_of(path: str, version: str) -> str:
    return f"{version} of {path}\n" * 20


def script(origin: OriginServer, paths: list[str], version: str) -> None:
    origin.scripts(
        [
            {"path": p, "body": body_of(p, version), "headers": {"cache-control": "max-age=600"}}
            for p in paths
        ]
    )


async def warm(client: httpx.AsyncClient, paths: list[str]) -> None:
    for path in paths:
        assert (await client.get(path)).status_code == 200
        assert "hit" in (await client.get(path)).headers["cache-status"], path


async def hits_until(client: httpx.AsyncClient, done: asyncio.Event) -> tuple[int, list[str]]:
    """Cached objects requested back to back until `done`: (answers, what was wrong)."""
    answers, wrong = 0, []
    while not done.is_set():
        for path in KEEP:
            try:
                r = await client.get(path)
            except httpx.HTTPError as exc:  # a dropped connection or a hang
                wrong.append(f"{path}: {exc!r}")
                continue
            answers += 1
            if r.status_code != 200 or r.text != body_of(path, "v1"):
                wrong.append(f"{path}: {r.status_code} {r.text[:40]!r}")
            elif "hit" not in r.headers.get("cache-status", ""):
                wrong.append(f"{path}: not a hit ({r.headers.get('cache-status')})")
        health = await client.get("/healthz")
        if health.status_code != 200:
            wrong.append(f"/healthz: {health.status_code}")
    return answers, wrong


async def memory_entries(client: httpx.AsyncClient) -> int:
    text = (await client.get("/metrics", headers=AUTH)).text
    m = re.search(r'^edgeshield_cache_entries\{tier="memory"\} (\S+)$', text, re.M)
    assert m is not None, text[:500]
    return int(float(m.group(1)))


async def test_ten_thousand_bans_and_the_lurker_leave_hits_correct(
    origin: OriginServer, edge: ProxyServer
) -> None:
    doomed = [f"/doomed/{i}.bin" for i in range(30)]
    script(origin, KEEP + doomed, "v1")
    limits = httpx.Limits(max_connections=4)
    async with httpx.AsyncClient(base_url=edge.url, timeout=HANG_GUARD, limits=limits) as client:
        await warm(client, KEEP + doomed)
        script(origin, doomed, "v2")  # what a clean client must get once they are banned
        before = await memory_entries(client)
        done = asyncio.Event()
        load = asyncio.create_task(hits_until(client, done))
        # 10,000 bans, none covering KEEP; one of them, in the middle, covers `doomed`
        for start in range(0, BANS, PREFIXES_PER_REQUEST):
            prefixes = [f"/nothing/{i}/" for i in range(start, start + PREFIXES_PER_REQUEST)]
            if start == BANS // 2:
                prefixes[0] = "/doomed/"
            r = await client.post("/_purge", json={"prefixes": prefixes}, headers=AUTH)
            assert r.status_code == 200, r.text
            assert r.json()["bans"] == PREFIXES_PER_REQUEST
        # The lurker, not a request, drops the banned entries: wait for it (a hang guard,
        # not a time limit), with the clients still going.
        deadline = time.monotonic() + HANG_GUARD
        while await memory_entries(client) > before - len(doomed):
            assert time.monotonic() < deadline, "the lurker never dropped the banned entries"
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)  # a few more lurker cycles under load
        done.set()
        answers, wrong = await load
        assert wrong == [] and answers > 0
        for path in doomed:  # refetched, never the old copy
            r = await client.get(path)
            assert r.status_code == 200 and r.text == body_of(path, "v2")
        metrics = (await client.get("/metrics", headers=AUTH)).text
        assert re.search(rf"^edgeshield_bans {BANS}(\.0)?$", metrics, re.M), "bans went missing"
    assert origin.requests(KEEP[0]) == 1  # never dropped or refetched


async def test_a_100k_url_purge_leaves_hits_correct(
    origin: OriginServer, edge: ProxyServer
) -> None:
    listed = [f"/listed/{i}.bin" for i in range(30)]
    script(origin, KEEP + listed, "v1")
    limits = httpx.Limits(max_connections=4)
    async with httpx.AsyncClient(base_url=edge.url, timeout=HANG_GUARD, limits=limits) as client:
        await warm(client, KEEP + listed)
        script(origin, listed, "v2")
        urls = [f"/listed/{i}.bin" for i in range(URLS)]  # 30 of them are cached
        done = asyncio.Event()
        load = asyncio.create_task(hits_until(client, done))
        await asyncio.sleep(0.2)
        r = await client.post("/_purge", json={"host": HOST, "urls": urls}, headers=AUTH)
        done.set()
        answers, wrong = await load
        assert r.status_code == 200, r.text
        assert r.json()["purged"]["memory"] == len(listed)
        assert wrong == [] and answers > 0
        for path in listed:
            r = await client.get(path)
            assert r.status_code == 200 and r.text == body_of(path, "v2")
            assert "hit" not in r.headers["cache-status"]
        for path in KEEP:
            assert "hit" in (await client.get(path)).headers["cache-status"]
