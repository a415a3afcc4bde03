"""A signed playlist whose URL has no playlist extension (known only by its media type)
through a real `edgeshield serve`: its Range and Accept-Encoding reach the lookup, and
its answer still gets child tokens whether it comes compressed (decoded, rewritten,
encoded again in the client's coding) or as a 206 of the whole body (ffmpeg's
`bytes=0-`, answered 200). Only a 206 of part of it is relayed as is."""

from __future__ import annotations

import gzip
from collections.abc import Iterator

import httpx
import pytest

from proxy.auth.keys import KeyRing
from proxy.auth.native import sign_url
from tests.support.origin_server import OriginServer
from tests.support.proxy_server import ProxyServer, native_token_config, running_proxy

SECRET = "extensionless playlist secret"
PATH = "/v/720p/playlist"
SEGMENTS = 60  # over compression's 1 KiB minimum
MEDIA = "\n".join(
    ["#EXTM3U", "#EXT-X-TARGETDURATION:4"]
    + [f"#EXTINF:4.0,\nsegment-{n:04d}.ts" for n in range(SEGMENTS)]
    + ["#EXT-X-ENDLIST", ""]
)


@pytest.fixture(scope="module")
def proxy(origin_server: OriginServer) -> Iterator[ProxyServer]:
    origin_server.script(
        PATH,
        body=MEDIA,
        headers={"content-type": "application/vnd.apple.mpegurl", "cache-control": "max-age=60"},
    )
    config = native_token_config({"kind": "http", "url": origin_server.url}, SECRET, {"ttl": 600})
    with running_proxy(config) as server:
        yield server


def _signed() -> str:
    return sign_url(PATH, KeyRing({"k1": SECRET.encode()}), ttl=600, prefix=PATH)


def _get(proxy: ProxyServer, **headers: str) -> httpx.Response:
    return httpx.get(proxy.url + _signed(), headers=headers, timeout=30)


def _tokenized(text: str) -> bool:
    uris = [line for line in text.splitlines() if line.startswith("segment-")]
    return len(uris) == SEGMENTS and all("token=" in uri for uri in uris)


@pytest.mark.parametrize("coding", ["gzip", "br", "zstd"])
def test_a_compressed_answer_is_rewritten(proxy: ProxyServer, coding: str) -> None:
    for _ in range(2):  # a miss, then a hit
        r = _get(proxy, **{"accept-encoding": coding})
        assert r.status_code == 200
        assert r.headers.get("content-encoding") == coding
        assert r.headers["cache-control"].startswith("private")
        assert _tokenized(r.text), r.text[:300]


def test_gzip_bytes_are_the_rewritten_playlist(proxy: ProxyServer) -> None:
    with httpx.stream("GET", proxy.url + _signed(), headers={"accept-encoding": "gzip"}) as r:
        raw = b"".join(r.iter_raw())
    assert int(r.headers["content-length"]) == len(raw)
    assert _tokenized(gzip.decompress(raw).decode())


def test_a_range_of_the_whole_body_is_rewritten_as_a_200(proxy: ProxyServer) -> None:
    r = _get(proxy, range="bytes=0-")
    assert r.status_code == 200
    assert "content-range" not in r.headers
    assert _tokenized(r.text)
    assert int(r.headers["content-length"]) == len(r.content)


def test_a_partial_range_is_relayed_as_is(proxy: ProxyServer) -> None:
    r = _get(proxy, range="bytes=0-99")
    assert r.status_code == 206
    assert r.content == MEDIA.encode()[:100]
