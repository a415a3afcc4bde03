"""The streaming cache policy through a real edgeshield started with `serve --origin` and
no configuration: ffmpeg's HLS/DASH output behind the scriptable origin, and the lifetime
each kind gets (Cache-Status ttl on the hit), the origin's own word winning downward."""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import streams
from tests.support.origin_server import OriginServer
from tests.support.proxy_server import ProxyServer, proxy_config, running_proxy

HLS = "application/vnd.apple.mpegurl"


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("streams")


@pytest.fixture(scope="module")
def proxy(origin_server: OriginServer) -> Iterator[ProxyServer]:
    with running_proxy(None, args=["--origin", origin_server.url]) as server:
        yield server


@pytest.fixture
def client(proxy: ProxyServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=proxy.url, timeout=30) as c:
        yield c


def _ttl(client: httpx.Client, path: str) -> int:
    """The hit's remaining lifetime, after the miss that stored it."""
    first = client.get(path)
    assert first.status_code == 200 and "stored" in first.headers["cache-status"]
    hit = client.get(path)
    status = hit.headers["cache-status"]
    m = re.search(r"; hit; ttl=(-?\d+)", status)
    assert m, status
    return int(m[1])


def _put(origin: OriginServer, name: str, body: bytes, ctype: str, **headers: str) -> str:
    path = f"/{uuid.uuid4().hex}/{name}"
    origin.script(path, body=body.decode(), headers={"content-type": ctype, **headers})
    return path


def test_live_playlist_at_most_half_the_target_duration(
    origin: OriginServer, client: httpx.Client, made: Path
) -> None:
    body = streams.hls_live(made).read_bytes()  # TARGETDURATION:2
    path = _put(origin, "index.m3u8", body, HLS, **{"cache-control": "max-age=600"})
    assert _ttl(client, path) <= 1
    assert client.get(path).content == body


def test_vod_playlist_long_master_moderate(
    origin: OriginServer, client: httpx.Client, made: Path
) -> None:
    vod = _put(origin, "index.m3u8", streams.hls_vod(made).read_bytes(), HLS)
    assert 86000 < _ttl(client, vod) <= 86400
    master = _put(origin, "master.m3u8", streams.hls_master(made).read_bytes(), HLS)
    assert 50 < _ttl(client, master) <= 60


def test_the_origin_wins_downward(origin: OriginServer, client: httpx.Client, made: Path) -> None:
    body = streams.hls_vod(made).read_bytes()
    path = _put(origin, "index.m3u8", body, HLS, **{"cache-control": "max-age=30"})
    assert _ttl(client, path) <= 30
    uncached = _put(origin, "index.m3u8", body, HLS, **{"cache-control": "no-store"})
    for _ in range(2):
        r = client.get(uncached)
        assert r.status_code == 200 and "stored" not in r.headers["cache-status"]
    assert origin.requests(uncached) == 2


def test_segments_long(origin: OriginServer, client: httpx.Client, made: Path) -> None:
    vod = streams.hls_vod(made)
    segment = (vod.parent / "index0.ts").read_bytes()
    path = f"/{uuid.uuid4().hex}/index0.ts"
    origin.script(path, size=len(segment), headers={"content-type": "video/mp2t"})
    assert _ttl(client, path) > 365 * 86400 - 100


def test_dash_static_and_dynamic(origin: OriginServer, client: httpx.Client, made: Path) -> None:
    static = _put(origin, "m.mpd", streams.dash_static(made).read_bytes(), "application/dash+xml")
    assert _ttl(client, static) > 86000
    dynamic = streams.dash_dynamic(made).read_bytes()  # minimumUpdatePeriod PT4S
    path = _put(origin, "live.mpd", dynamic, "application/dash+xml")
    assert _ttl(client, path) <= 2


@pytest.mark.parametrize(
    "body",
    [
        b"#EXTM3U\n#EXT-X-TARGETDURATION:zz\n#EXTINF:2,\na.ts\n",
        b"\x00\xff garbage \xfe" * 100,
        b"#EXTM3U\n" + b"#EXTINF:2.0,\nseg.ts\n" * 20_000,  # no target duration, 400 KB
    ],
    ids=["bad-target", "binary", "no-target"],
)
def test_malformed_playlists_are_relayed_untouched(
    origin: OriginServer, client: httpx.Client, body: bytes
) -> None:
    path = f"/{uuid.uuid4().hex}/index.m3u8"
    origin.script(path, body_base64=base64.b64encode(body).decode(), headers={"content-type": HLS})
    for _ in range(2):
        r = client.get(path)
        assert r.status_code == 200 and r.content == body


def test_a_route_turns_it_off(origin_server: OriginServer, made: Path) -> None:
    """streaming = false: RFC 9111 alone (no freshness, no Last-Modified: not stored)."""
    config = proxy_config(origin_server.url, cache={"streaming": False})
    with (
        running_proxy(config) as proxy,
        httpx.Client(base_url=proxy.url, timeout=30) as client,
    ):
        origin_server.reset()
        path = _put(origin_server, "index.m3u8", streams.hls_vod(made).read_bytes(), HLS)
        for _ in range(2):
            assert "stored" not in client.get(path).headers["cache-status"]
        assert origin_server.requests(path) == 2
