"""Two edgeshield processes sharing a real redis-server: the shared tier answers the
second instance (Cache-Status detail=redis), rate limits hold across instances, and a
Redis that dies under traffic costs no client request."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.origin_server import OriginServer
from tests.support.proxy_server import ProxyServer, running_proxy
from tests.support.redis_server import RedisServer, running_redis


def _config(origin: OriginServer, redis: RedisServer) -> str:
    return f"""
[server]
access_log = "off"
[redis]
url = "{redis.url}"
op_timeout = 0.05
[origins.main]
kind = "http"
url = "{origin.url}"
[[routes]]
path_prefix = "/limited"
origin = "main"
[routes.access.ratelimit]
rate = 0.2
burst = 4
[[routes]]
origin = "main"
"""


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with running_redis() as server:
        yield server


@pytest.fixture(scope="module")
def pair(
    origin_server: OriginServer, redis: RedisServer
) -> Iterator[tuple[ProxyServer, ProxyServer]]:
    config = _config(origin_server, redis)
    with running_proxy(config) as a, running_proxy(config) as b:
        yield a, b


def test_second_instance_is_served_by_the_shared_tier(
    origin: OriginServer, pair: tuple[ProxyServer, ProxyServer]
) -> None:
    a, b = pair
    origin.script("/shared/x.jpg", body="x" * 5000, headers={"cache-control": "max-age=60"})
    first = httpx.get(a.url + "/shared/x.jpg")
    assert "fwd=miss" in first.headers["cache-status"]
    deadline = time.monotonic() + 30  # a hang guard
    while True:  # the Redis write happens in the background, after the response
        second = httpx.get(b.url + "/shared/x.jpg")
        if "detail=redis" in second.headers["cache-status"] or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert second.status_code == 200 and second.content == b"x" * 5000
    assert (
        "hit" in second.headers["cache-status"] and "detail=redis" in second.headers["cache-status"]
    )
    third = httpx.get(b.url + "/shared/x.jpg")  # promoted into b's memory
    assert "detail=memory" in third.headers["cache-status"]
    # b found it in Redis at most after a few misses of its own; a stays at one fetch
    assert origin.requests("/shared/x.jpg") <= 2


def test_rate_limit_is_shared_across_instances(
    origin: OriginServer, pair: tuple[ProxyServer, ProxyServer]
) -> None:
    a, b = pair
    origin.script("/limited/r", body="r", headers={"cache-control": "max-age=60"})
    codes = []
    for i in range(8):
        codes.append(httpx.get((a if i % 2 else b).url + "/limited/r").status_code)
    # one bucket of 4 for the client, whichever instance it reaches
    assert codes.count(200) == 4, codes
    assert codes.count(429) == 4, codes


def test_redis_dying_under_traffic_fails_no_request(
    origin: OriginServer, origin_server: OriginServer
) -> None:
    with running_redis() as redis:
        config = _config(origin_server, redis)
        with running_proxy(config) as proxy, httpx.Client(base_url=proxy.url, timeout=5) as client:
            for i in range(20):
                origin.script(f"/r/{i}", body=f"b{i}", headers={"cache-control": "max-age=60"})
            failures = 0
            slow = []
            for round_ in range(3):
                if round_ == 1:
                    redis.stop()
                for i in range(20):
                    started = time.perf_counter()
                    r = client.get(f"/r/{i}?round={round_}")
                    slow.append(time.perf_counter() - started)
                    failures += r.status_code != 200 or r.text != f"b{i}"
    assert failures == 0
    # No request hung on the dead Redis: each stayed well under the client's own 5 s
    # timeout (the tier's is 50 ms; the bound is loose so that a busy machine's
    # scheduling delays are not mistaken for waiting on Redis).
    assert max(slow) < 3.0
