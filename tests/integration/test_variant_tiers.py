"""Image variants are found in every tier, like any object (issue 16: the variant step
asked the memory tier only, so a variant another instance had stored in Redis, or that
sat on this instance's disk after a restart, was transformed again from a refetched
source). Two instances sharing a real redis-server, and one instance restarted on its
disk tier: each serves `?w=400` without touching the origin."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pyvips

from tests.support.origin_server import OriginServer
from tests.support.proxy_server import running_proxy, toml_value
from tests.support.redis_server import running_redis

CHROME = "image/avif,image/webp,image/apng,image/*,*/*;q=0.8"


def _jpeg() -> bytes:
    image = pyvips.Image.xyz(640, 480)[0].cast("uchar").copy(interpretation="b-w")
    return bytes(image.jpegsave_buffer(Q=85))


def _config(origin: OriginServer, extra: str) -> str:
    return f"""
[server]
access_log = "off"
[origins.main]
kind = "http"
url = {toml_value(origin.url)}
[images]
threads = 1
{extra}
[[routes]]
origin = "main"
images = true
"""


def _serve_source(origin: OriginServer, path: str) -> None:
    headers = {"content-type": "image/jpeg", "cache-control": "max-age=300", "etag": '"s1"'}
    origin.script(path, body_base64=base64.b64encode(_jpeg()).decode(), headers=headers)


def _eventually(
    get: Callable[[], httpx.Response], want: str, timeout: float = 20.0
) -> httpx.Response:
    """Lower tiers are written in the background, after the first answer."""
    deadline = time.monotonic() + timeout
    while True:
        r = get()
        if want in r.headers["cache-status"] or time.monotonic() > deadline:
            return r
        time.sleep(0.1)


def _width(body: bytes) -> int:
    return int(pyvips.Image.new_from_buffer(body, "").width)


def test_a_variant_stored_in_redis_serves_the_other_instance(origin: OriginServer) -> None:
    _serve_source(origin, "/tiers/r.jpg")
    with running_redis() as redis:
        config = _config(origin, f'[redis]\nurl = "{redis.url}"\n')
        with running_proxy(config) as a, running_proxy(config) as b:
            first = httpx.get(a.url + "/tiers/r.jpg?w=400", headers={"accept": CHROME})
            assert first.status_code == 200 and _width(first.content) == 400
            assert "fwd=miss" in first.headers["cache-status"]
            second = _eventually(
                lambda: httpx.get(b.url + "/tiers/r.jpg?w=400", headers={"accept": CHROME}),
                "detail=redis",
            )
            status = second.headers["cache-status"]
            assert "hit" in status and "detail=redis" in status, status
            assert second.content == first.content
            again = httpx.get(b.url + "/tiers/r.jpg?w=400", headers={"accept": CHROME})
            assert "detail=memory" in again.headers["cache-status"]  # promoted
    assert origin.requests("/tiers/r.jpg") == 1


def test_a_variant_on_disk_survives_a_restart(origin: OriginServer, tmp_path: Path) -> None:
    _serve_source(origin, "/tiers/d.jpg")
    disk = f'[cache.disk]\npath = "{tmp_path / "disk"}"\nmin_object_bytes = 0\n'
    config = _config(origin, "").replace("[images]", disk + "[images]")
    with running_proxy(config) as proxy:
        first = httpx.get(proxy.url + "/tiers/d.jpg?w=400", headers={"accept": CHROME})
        assert first.status_code == 200 and _width(first.content) == 400
        # the variant and its source are on disk once their background writes are done
        _eventually(lambda: httpx.get(proxy.url + "/tiers/d.jpg"), "hit")
        time.sleep(0.5)
    with running_proxy(config) as proxy:  # a new process: memory is empty
        again = httpx.get(proxy.url + "/tiers/d.jpg?w=400", headers={"accept": CHROME})
        status = again.headers["cache-status"]
        assert again.status_code == 200 and "detail=disk" in status, status
        assert again.content == first.content
    assert origin.requests("/tiers/d.jpg") == 1
