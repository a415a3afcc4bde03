"""Purge fan-out between two real edgeshield processes sharing a real redis-server: a
purge accepted by one instance reaches the other's memory and disk copies and the shared
copy once; an instance cut off from Redis during a purge applies it on reconnect before
serving the purged object again."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.origin_server import OriginServer
from tests.support.proxy_server import ProxyServer, running_proxy
from tests.support.redis_server import RedisServer, running_redis
from tests.support.tcp_relay import TcpRelay

TOKEN = "fanout-token-0123456789abcdef"
AUTH = {"authorization": f"Bearer {TOKEN}"}


def _config(origin: OriginServer, redis_port: int, disk: Path) -> str:
    return f"""
[server]
access_log = "off"
[admin]
token = "{TOKEN}"
[redis]
url = "redis://127.0.0.1:{redis_port}/0"
[cache.disk]
path = "{disk}"
min_object_bytes = 0
[origins.main]
kind = "http"
url = "{origin.url}"
[[routes]]
origin = "main"
"""


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with running_redis() as server:
        yield server


def _until(predicate: object, timeout: float = 30.0) -> float:  # a hang guard
    started = time.monotonic()
    while not predicate():  # type: ignore[operator]
        if time.monotonic() - started > timeout:
            raise TimeoutError
        time.sleep(0.005)
    return time.monotonic() - started


def _is_hit(proxy: ProxyServer, path: str) -> bool:
    return "hit" in httpx.get(proxy.url + path).headers["cache-status"]


def test_purge_on_one_instance_reaches_the_other(
    origin: OriginServer, origin_server: OriginServer, redis: RedisServer, tmp_path: Path
) -> None:
    # an image: one memory entry each (a text body would gain a compressed form beside it)
    headers = {"cache-control": "max-age=300", "content-type": "image/jpeg"}
    origin.script("/f/a.jpg", body="a" * 3000, headers=headers)
    with (
        running_proxy(_config(origin_server, redis.port, tmp_path / "a")) as a,
        running_proxy(_config(origin_server, redis.port, tmp_path / "b")) as b,
    ):
        httpx.get(a.url + "/f/a.jpg"), httpx.get(b.url + "/f/a.jpg")
        assert _is_hit(a, "/f/a.jpg") and _is_hit(b, "/f/a.jpg")
        r = httpx.post(a.url + "/_purge", json={"urls": ["http://127.0.0.1/f/a.jpg"]}, headers=AUTH)
        assert r.status_code == 200
        assert r.json()["purged"]["memory"] == 1 and "errors" not in r.json()
        _until(lambda: not _is_hit(b, "/f/a.jpg"))
        # the shared copy went too: a fresh copy, not the purged one, fills both again
        before = origin.requests("/f/a.jpg")
        httpx.get(a.url + "/f/a.jpg")
        assert origin.requests("/f/a.jpg") >= before
        metrics = httpx.get(b.url + "/metrics").text
        for series in (
            'edgeshield_cache_bytes{tier="disk"}',
            'edgeshield_cache_entries{tier="memory"}',
            'edgeshield_cache_tier_hits_total{tier="redis"}',
            'edgeshield_cache_tier_errors_total{kind="timeout",tier="redis"}',
            'edgeshield_purges_total{source="bus"} 1.0',
            "edgeshield_redis_circuit_state 0.0",
        ):
            assert series in metrics, series


def test_an_instance_cut_off_during_a_purge_applies_it_on_reconnect(
    origin: OriginServer, origin_server: OriginServer, redis: RedisServer, tmp_path: Path
) -> None:
    origin.script("/c/a.jpg", body="a" * 3000, headers={"cache-control": "max-age=300"})
    with (
        TcpRelay(redis.port) as relay,
        running_proxy(_config(origin_server, redis.port, tmp_path / "a")) as a,
        running_proxy(_config(origin_server, relay.port, tmp_path / "b")) as b,
    ):
        httpx.get(b.url + "/c/a.jpg")
        assert _is_hit(b, "/c/a.jpg")
        relay.cut()  # b loses Redis (and the purge bus); a does not
        time.sleep(0.3)
        r = httpx.post(a.url + "/_purge", json={"prefixes": ["/c/"]}, headers=AUTH)
        assert r.status_code == 200
        assert _is_hit(b, "/c/a.jpg")  # b cannot know yet: it still holds its copy
        relay.restore()
        _until(lambda: not _is_hit(b, "/c/a.jpg"))
