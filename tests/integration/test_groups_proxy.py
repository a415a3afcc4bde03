"""Origin groups through the whole proxy: failover, all-down answers, rewrites, steering,
and the /_admin/origins view (issue 3, with real origin processes)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.support.origin_server import OriginServer, running_origin
from tests.support.proxy_server import ProxyServer, running_proxy


@pytest.fixture(scope="module")
def secondary() -> Iterator[OriginServer]:
    with running_origin() as server:
        yield server


def _config(primary: OriginServer, secondary: OriginServer) -> str:
    health = (
        'path = "/health"\ninterval = 0.1\ntimeout = 0.5\nwindow = 3\nthreshold = 2\ninitial = 2\n'
    )
    return f"""
[server]
access_log = "off"
[origins.a]
kind = "http"
url = "{primary.url}"
connect_timeout = 0.5
[origins.a.health]
{health}
[origins.b]
kind = "http"
url = "{secondary.url}"
connect_timeout = 0.5
[origins.b.health]
{health}
[groups.media]
policy = "failover"
members = ["a", "b"]
[[routes]]
path_prefix = "/steer"
origin = "media"
mode = "steer"
[routes.steer]
region_header = "cf-ipcountry"
cache_control = "public, max-age=30"
cdns = [
  {{base_url = "https://cdn-one.example", weight = 1, regions = ["FR"]}},
  {{base_url = "https://cdn-two.example", weight = 1}},
]
[[routes]]
path_prefix = "/media"
strip_prefix = "/media"
add_prefix = "/v1"
origin = "media"
[routes.cache]
stale_if_error = 300
"""


@pytest.fixture
def group_proxy(origin: OriginServer, secondary: OriginServer) -> Iterator[ProxyServer]:
    if not secondary.running:
        secondary.restart()
    secondary.reset()
    for server in (origin, secondary):
        server.script("/health", body="ok", headers={"cache-control": "no-store"})
    with running_proxy(_config(origin, secondary)) as proxy:
        yield proxy


def _state(client: httpx.Client, origin: str) -> str:
    return str(client.get("/_admin/origins").json()["origins"][origin]["state"])


def _wait(predicate, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.05)


def test_failover_rewrite_and_all_down(
    origin: OriginServer, secondary: OriginServer, group_proxy: ProxyServer
) -> None:
    name = uuid.uuid4().hex
    cached, uncached = f"/v1/c-{name}", f"/v1/u-{name}"
    for server, body in ((origin, "A"), (secondary, "B")):
        server.script(cached, body=body, headers={"cache-control": "max-age=1"})
        server.script(uncached, body=body, headers={"cache-control": "no-store"})
    with httpx.Client(base_url=group_proxy.url, timeout=10) as client:
        _wait(lambda: _state(client, "a") == "up")
        assert client.get(f"/media/u-{name}").text == "A"  # strip /media, add /v1
        assert client.get(f"/media/c-{name}").text == "A"
        assert origin.stats()["last_target"][uncached] == uncached
        origin.kill()
        try:
            assert client.get(f"/media/u-{name}").text == "B"  # failover: no client error
            _wait(lambda: _state(client, "a") != "up")
            secondary.kill()
            _wait(lambda: _state(client, "b") != "up")
            down = client.get(f"/media/u-{name}")
            assert down.status_code == 503 and int(down.headers["retry-after"]) >= 1
            time.sleep(1.1)  # the cached copy is now stale: stale-if-error serves it
            stale = client.get(f"/media/c-{name}")
            assert stale.status_code == 200 and stale.text == "A"
            assert "fwd=stale" in stale.headers["cache-status"]
        finally:
            origin.restart()
            secondary.restart()


def test_steering_redirects_to_a_cdn(group_proxy: ProxyServer) -> None:
    with httpx.Client(base_url=group_proxy.url) as client:
        french = client.get("/steer/a.mp4?x=1", headers={"cf-ipcountry": "FR"})
        assert french.status_code == 302
        assert french.headers["location"] == "https://cdn-one.example/steer/a.mp4?x=1"
        assert french.headers["cache-control"] == "public, max-age=30"
        # Without a region, the choice is stable per path (rendezvous hashing).
        first = {
            client.get(f"/steer/{i}.mp4").headers["location"].split("/steer")[0] for i in range(40)
        }
        assert first == {"https://cdn-one.example", "https://cdn-two.example"}
        again = client.get("/steer/7.mp4").headers["location"]
        assert again == client.get("/steer/7.mp4").headers["location"]
