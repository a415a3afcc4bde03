"""Per-route cache policy: TTL overrides and defaults, read-only routes, bypass."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support.origin_server import OriginServer
from tests.support.proxy_server import ProxyServer, running_proxy


@pytest.fixture(scope="module")
def policy_proxy(origin_server: OriginServer) -> Iterator[ProxyServer]:
    config = f"""
[server]
access_log = "off"
[origins.main]
kind = "http"
url = "{origin_server.url}"
[[routes]]
path_prefix = "/override"
origin = "main"
[routes.cache]
override_ttl = 60
downstream_cache_control = "public, max-age=5"
[[routes]]
path_prefix = "/default"
origin = "main"
read_only = true
[routes.cache]
default_ttl = 60
[[routes]]
path_prefix = "/bypass"
origin = "main"
[routes.cache]
enabled = false
"""
    with running_proxy(config) as proxy:
        yield proxy


def test_override_ttl_replaces_origin_freshness(
    origin: OriginServer, policy_proxy: ProxyServer
) -> None:
    origin.script("/override/a", body="a", headers={"cache-control": "max-age=0"})
    with httpx.Client(base_url=policy_proxy.url) as client:
        client.get("/override/a")
        hit = client.get("/override/a")
    assert hit.headers["cache-status"].startswith("edgeshield; hit")
    assert hit.headers["cache-control"] == "public, max-age=5"
    assert origin.requests("/override/a") == 1


def test_default_ttl_applies_only_without_origin_freshness(
    origin: OriginServer, policy_proxy: ProxyServer
) -> None:
    origin.script("/default/none", body="n")
    origin.script("/default/nostore", body="n", headers={"cache-control": "no-store"})
    with httpx.Client(base_url=policy_proxy.url) as client:
        for _ in range(2):
            client.get("/default/none")
            client.get("/default/nostore")
    assert origin.requests("/default/none") == 1
    assert origin.requests("/default/nostore") == 2


def test_read_only_route_answers_405(origin: OriginServer, policy_proxy: ProxyServer) -> None:
    r = httpx.post(policy_proxy.url + "/default/x", content=b"data")
    assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD"
    assert origin.requests("/default/x", "POST") == 0


def test_bypass_route_relays_ranges_and_never_stores(
    origin: OriginServer, policy_proxy: ProxyServer
) -> None:
    origin.script("/bypass/v", size=100, honor_range=True, headers={"cache-control": "max-age=60"})
    with httpx.Client(base_url=policy_proxy.url) as client:
        r = client.get("/bypass/v", headers={"range": "bytes=0-9"})
        assert r.status_code == 206 and len(r.content) == 10
        assert "fwd=bypass" in r.headers["cache-status"]
        client.get("/bypass/v")
    assert origin.requests("/bypass/v") == 2
    assert origin.stats()["last_headers"]["/bypass/v"].get("range") is None
