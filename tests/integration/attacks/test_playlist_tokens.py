"""Hostile playlists behind a tokenizing route, replayed against a real `edgeshield
serve`: no child token ever goes to another host (however the URI spells it), a huge or
endless playlist is relayed untouched within its bound, and the proxy keeps answering.
Each answer is a clean 200 with the origin's bytes or a rewritten body, never a 5xx."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from proxy.auth.keys import KeyRing
from proxy.auth.native import sign_url
from tests.support.origin_server import OriginServer
from tests.support.proxy_server import ProxyServer, native_token_config, running_proxy

SECRET = "playlist attacks secret"
HLS = {"content-type": "application/vnd.apple.mpegurl", "cache-control": "max-age=60"}


@pytest.fixture(scope="module")
def proxy(origin_server: OriginServer) -> Iterator[ProxyServer]:
    config = native_token_config(
        {"kind": "http", "url": origin_server.url}, SECRET, {"max_uris": 1000}
    )
    with running_proxy(config) as server:
        yield server


def _signed(path: str) -> str:
    return sign_url(path, KeyRing({"k1": SECRET.encode()}), ttl=600, prefix="/p/")


FOREIGN = [
    "//evil.example/a.ts",
    "http://evil.example/a.ts",
    "HTTPS://EVIL.EXAMPLE/a.ts",
    "http://127.0.0.1@evil.example/a.ts",
    "http://evil.example@127.0.0.1/a.ts",
    "http://127.0.0.1:1/a.ts",
    "javascript:alert(1)",
    "data:text/plain,x",
    "/\\evil.example/a.ts",
    "\\\\evil.example\\a.ts",
    "ftp://127.0.0.1/a.ts",
]


def test_no_token_reaches_another_host(origin: OriginServer, proxy: ProxyServer) -> None:
    body = "#EXTM3U\n" + "".join(f"#EXTINF:4,\n{uri}\n" for uri in FOREIGN) + "#EXTINF:4,\nok.ts\n"
    body += "".join(f'#EXT-X-KEY:METHOD=AES-128,URI="{uri}"\n' for uri in FOREIGN[:3])
    origin.script("/p/foreign.m3u8", body=body, headers=HLS)
    with httpx.Client(base_url=proxy.url) as client:
        answer = client.get(_signed("/p/foreign.m3u8"))
    assert answer.status_code == 200
    lines = answer.text.splitlines()
    assert next(line for line in lines if line.startswith("ok.ts")).startswith("ok.ts?token=")
    for line in lines:
        if not line.startswith("ok.ts"):
            assert "token=" not in line, line


def test_more_uris_than_the_bound_are_relayed_untouched(
    origin: OriginServer, proxy: ProxyServer
) -> None:
    body = "#EXTM3U\n" + "s.ts\n" * 1001
    origin.script("/p/many.m3u8", body=body, headers=HLS)
    with httpx.Client(base_url=proxy.url) as client:
        answer = client.get(_signed("/p/many.m3u8"), headers={"accept-encoding": "identity"})
    assert answer.status_code == 200 and answer.text == body


def test_a_million_lines_are_bounded(origin: OriginServer, proxy: ProxyServer) -> None:
    million = "#EXTM3U\n" + "s\n" * 1_000_000  # 2 MB: under max_bytes, over max_uris
    huge = "#EXTM3U\n" + "x" * (5 * 1024 * 1024)  # one line over max_bytes
    origin.script("/p/million.m3u8", body=million, headers=HLS)
    origin.script("/p/huge.m3u8", body=huge, headers=HLS, mode="chunked")
    with httpx.Client(base_url=proxy.url, timeout=120) as client:
        first = client.get(_signed("/p/million.m3u8"), headers={"accept-encoding": "identity"})
        second = client.get(_signed("/p/huge.m3u8"), headers={"accept-encoding": "identity"})
        after = client.get("/healthz")
    assert first.status_code == 200 and first.text == million
    assert second.status_code == 200 and len(second.content) == len(huge)
    assert after.status_code == 200


def test_nested_master_playlists_are_one_rewrite_each(
    origin: OriginServer, proxy: ProxyServer
) -> None:
    # A master naming itself and another master: each answer is rewritten once, with
    # tokens; nothing is followed by the proxy.
    origin.script(
        "/p/m1.m3u8", body="#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nm1.m3u8\n", headers=HLS
    )
    with httpx.Client(base_url=proxy.url) as client:
        answer = client.get(_signed("/p/m1.m3u8"))
        again = client.get("/p/" + answer.text.splitlines()[-1])
    assert answer.status_code == 200 and again.status_code == 200
    assert again.text.count("token=") == 1
    assert origin.requests("/p/m1.m3u8") == 1
