"""The purge API through a real edgeshield process: who may purge, what bad input gets,
and that URL, prefix (ban), tag and soft purges leave no stale copy behind."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.origin_server import OriginServer
from tests.support.proxy_server import ProxyServer, running_proxy

# Caching semantics hold on every server engine (tests/conftest.py).
ON_EVERY_ENGINE = True

TOKEN = "purge-token-0123456789abcdef"
AUTH = {"authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def purge_proxy(origin_server: OriginServer, engine: str | None) -> Iterator[ProxyServer]:
    config = f"""
[server]
access_log = "off"
[admin]
token = "{TOKEN}"
[origins.main]
kind = "http"
url = "{origin_server.url}"
[[routes]]
origin = "main"
"""
    with running_proxy(config, engine=engine) as proxy:
        yield proxy


def _cached(origin: OriginServer, path: str, **headers: str) -> None:
    origin.script(path, body=f"body of {path}", headers={"cache-control": "max-age=300", **headers})


def _status(client: httpx.Client, path: str) -> str:
    return client.get(path).headers["cache-status"]


def test_purge_needs_the_token_and_purges_nothing_without_it(
    origin: OriginServer, purge_proxy: ProxyServer
) -> None:
    _cached(origin, "/t/a.jpg")
    with httpx.Client(base_url=purge_proxy.url) as client:
        client.get("/t/a.jpg")
        body = {"urls": [f"{purge_proxy.url}/t/a.jpg"]}
        missing = client.post("/_purge", json=body)
        wrong = client.post("/_purge", json=body, headers={"authorization": "Bearer nope"})
        method = client.request("PURGE", "/t/a.jpg")
        assert "hit" in _status(client, "/t/a.jpg")
    assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Bearer")
    assert wrong.status_code == 403
    assert method.status_code == 401
    assert origin.requests("/t/a.jpg") == 1


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (b"{not json", 400, "json"),
        (b'{"urls": [], "prefix": ["/a/"]}', 400, "prefix"),
        (b'{"urls": "/a"}', 400, "urls"),
        (b'{"prefixes": ["/"]}', 400, "all"),
        (b'{"all": 1}', 400, "all"),
    ],
)
def test_bad_purge_bodies_are_400_naming_the_problem(
    purge_proxy: ProxyServer, body: bytes, status: int, words: str
) -> None:
    r = httpx.post(
        purge_proxy.url + "/_purge",
        content=body,
        headers={**AUTH, "content-type": "application/json"},
    )
    assert r.status_code == status
    assert words in r.json()["error"].lower()


def test_url_purge_and_purge_method(origin: OriginServer, purge_proxy: ProxyServer) -> None:
    _cached(origin, "/u/a.jpg")
    _cached(origin, "/u/b.jpg")
    with httpx.Client(base_url=purge_proxy.url) as client:
        client.get("/u/a.jpg"), client.get("/u/b.jpg")
        r = client.post("/_purge", json={"urls": ["http://127.0.0.1/u/a.jpg"]}, headers=AUTH)
        assert r.status_code == 200 and r.json()["purged"]["memory"] == 1
        assert "fwd=miss" in _status(client, "/u/a.jpg")
        assert "hit" in _status(client, "/u/b.jpg")
        p = client.request("PURGE", "/u/b.jpg", headers=AUTH)
        assert p.status_code == 200 and p.json()["purged"]["memory"] == 1
        assert "fwd=miss" in _status(client, "/u/b.jpg")


def test_prefix_purge_bans_whole_segments(origin: OriginServer, purge_proxy: ProxyServer) -> None:
    for path in ("/g/1.jpg", "/g/sub/2.jpg", "/gx/3.jpg"):
        _cached(origin, path)
    with httpx.Client(base_url=purge_proxy.url) as client:
        for path in ("/g/1.jpg", "/g/sub/2.jpg", "/gx/3.jpg"):
            client.get(path)
        r = client.post("/_purge", json={"prefixes": ["/g/"], "host": "127.0.0.1"}, headers=AUTH)
        assert r.status_code == 200 and r.json()["bans"] == 1
        assert "fwd=miss" in _status(client, "/g/1.jpg")
        assert "fwd=miss" in _status(client, "/g/sub/2.jpg")
        assert "hit" in _status(client, "/gx/3.jpg")
        assert "hit" in _status(client, "/g/1.jpg")  # stored after the ban: not banned


def test_tag_purge_and_surrogate_keys_stay_private(
    origin: OriginServer, purge_proxy: ProxyServer
) -> None:
    _cached(origin, "/k/1.jpg", **{"surrogate-key": "album-1 photo-1"})
    _cached(origin, "/k/2.jpg", **{"cache-tag": "album-1,photo-2"})
    _cached(origin, "/k/3.jpg", **{"xkey": "album-2"})
    with httpx.Client(base_url=purge_proxy.url) as client:
        first = client.get("/k/1.jpg")
        client.get("/k/2.jpg"), client.get("/k/3.jpg")
        assert "surrogate-key" not in first.headers and "cache-tag" not in first.headers
        r = client.post("/_purge", json={"tags": ["album-1"]}, headers=AUTH)
        assert r.status_code == 200 and r.json()["purged"]["memory"] == 2
        assert "fwd=miss" in _status(client, "/k/1.jpg")
        assert "fwd=miss" in _status(client, "/k/2.jpg")
        assert "hit" in _status(client, "/k/3.jpg")


def test_soft_purge_serves_stale_and_revalidates(
    origin: OriginServer, purge_proxy: ProxyServer
) -> None:
    origin.script(
        "/s/v.jpg",
        body="v1",
        headers={"cache-control": "max-age=300, stale-while-revalidate=60", "etag": '"v1"'},
    )
    with httpx.Client(base_url=purge_proxy.url) as client:
        client.get("/s/v.jpg")
        r = client.post(
            "/_purge", json={"urls": ["http://127.0.0.1/s/v.jpg"], "soft": True}, headers=AUTH
        )
        assert r.status_code == 200 and r.json()["soft"] is True
        stale = client.get("/s/v.jpg")
        assert stale.text == "v1" and "ttl=-1" in stale.headers["cache-status"]
        origin.wait_for(lambda s: s["requests"].get("GET /s/v.jpg", 0) >= 2)
        assert "hit" in _status(client, "/s/v.jpg")


def test_ten_thousand_urls_in_one_purge_do_not_block_requests(
    origin: OriginServer, purge_proxy: ProxyServer
) -> None:
    _cached(origin, "/big/keep.jpg")
    urls = [f"http://127.0.0.1/big/{i}.jpg" for i in range(10_000)]

    async def run() -> tuple[int, list[int]]:
        async with httpx.AsyncClient(base_url=purge_proxy.url, timeout=30) as client:
            await client.get("/big/keep.jpg")
            purge = asyncio.create_task(client.post("/_purge", json={"urls": urls}, headers=AUTH))
            codes = []
            while not purge.done():
                codes.append((await client.get("/big/keep.jpg")).status_code)
            return (await purge).status_code, codes

    status, codes = asyncio.run(run())
    assert status == 200
    assert codes and set(codes) == {200}


def test_recent_purges_are_listed(purge_proxy: ProxyServer) -> None:
    httpx.post(purge_proxy.url + "/_purge", json={"tags": ["listed"]}, headers=AUTH)
    r = httpx.get(purge_proxy.url + "/metrics", headers=AUTH)
    assert 'edgeshield_purges_total{source="api"}' in r.text
    assert "edgeshield_purge_duration_seconds_count" in r.text


def test_purges_are_forwarded_to_configured_cdns(origin_server: OriginServer) -> None:
    from tests.support.recording_server import RecordingServer

    with RecordingServer() as fastly:
        config = f"""
[server]
access_log = "off"
[admin]
token = "{TOKEN}"
[[purge.cdn]]
kind = "fastly"
name = "fastly-main"
service_id = "svc123"
api_token = "fastly-api-token-for-tests"
base_url = "{fastly.url}"
hosts = ["media.example.com"]
[origins.main]
kind = "http"
url = "{origin_server.url}"
[[routes]]
origin = "main"
"""
        with running_proxy(config) as proxy:
            r = httpx.post(
                proxy.url + "/_purge",
                json={"urls": ["https://media.example.com/a.jpg"], "tags": ["album-1"]},
                headers=AUTH,
            )
            assert r.status_code == 200
            assert r.json()["cdn"] == [{"name": "fastly-main", "state": "queued"}]
            deadline = time.monotonic() + 5
            while len(fastly.requests) < 2 and time.monotonic() < deadline:
                time.sleep(0.02)
            seen = {(req.method, req.path) for req in fastly.requests}
            assert ("POST", "/purge/media.example.com/a.jpg") in seen
            assert ("POST", "/service/svc123/purge") in seen
            assert all(
                req.header("fastly-key") == "fastly-api-token-for-tests" for req in fastly.requests
            )
            assert "fastly-api-token-for-tests" not in proxy.log()
