"""A tokenized live stream end to end: ffmpeg encodes a live HLS folder in real time
(tests/support/streams.py), the counting loopback origin serves it
(tests/support/live_origin.py), and ffmpeg players given only a signed master playlist
URL read the stream through a real `edgeshield serve` on a route that requires native
tokens, decoding every frame they take. The media playlist (reloaded every second with
the child token the master gave it) and every segment are reachable only through child
tokens the proxy writes into each refresh; the origin still sees each segment once."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import imageio_ffmpeg
import pytest

from proxy.auth.keys import KeyRing
from proxy.auth.native import sign_url
from tests.support.live_origin import LiveOrigin, running_live_origin
from tests.support.proxy_server import ProxyServer, native_token_config, running_proxy
from tests.support.streams import live_hls_encoder

SECRET = "live player secret"
PLAYERS = 2
SECONDS = 4  # each player decodes this much of the stream
HANG_GUARD = 45.0


def _config(origin_url: str) -> str:
    return native_token_config({"kind": "http", "url": origin_url}, SECRET, {"ttl": 600})


@pytest.fixture
def stream(tmp_path: Path) -> Iterator[tuple[LiveOrigin, ProxyServer]]:
    folder = tmp_path / "live"
    with live_hls_encoder(folder):
        (folder / "master.m3u8").write_text(
            "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=200000,RESOLUTION=160x90\nindex.m3u8\n"
        )
        with (
            running_live_origin("--dir", str(tmp_path)) as origin,
            running_proxy(_config(origin.url)) as proxy,
        ):
            yield origin, proxy


def _signed_master(proxy: ProxyServer) -> str:
    keys = KeyRing({"k1": SECRET.encode()})
    path = "/live/master.m3u8"
    return proxy.url + sign_url(path, keys, ttl=600, prefix=path)  # the master alone


def test_ffmpeg_players_read_a_tokenized_live_stream(
    stream: tuple[LiveOrigin, ProxyServer],
) -> None:
    origin, proxy = stream
    assert httpx.get(f"{proxy.url}/live/index.m3u8", timeout=10).status_code == 403
    url = _signed_master(proxy)
    players = [
        subprocess.Popen(
            [
                str(imageio_ffmpeg.get_ffmpeg_exe()),
                *("-v", "error", "-i", url, "-map", "0:v"),
                *("-t", str(SECONDS), "-f", "framecrc", "-"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(PLAYERS)
    ]
    started = time.monotonic()
    for player in players:
        out, err = player.communicate(timeout=HANG_GUARD)
        frames = [line for line in out.splitlines() if line and not line.startswith(b"#")]
        assert player.returncode == 0, err
        assert b"403" not in err
        assert len(frames) >= SECONDS * 10 * 0.8, err  # 10 fps, every frame decoded
    elapsed = time.monotonic() - started
    counts = origin.stats()["requests"]
    assert isinstance(counts, dict)
    segments = {path: n for path, n in counts.items() if path.endswith(".ts")}
    assert len(segments) >= SECONDS - 1
    assert all(n == 1 for n in segments.values()), segments
    # Reloads carried their child token and were collapsed like unsigned ones.
    assert counts["/live/index.m3u8"] <= elapsed / 0.5 + 2
