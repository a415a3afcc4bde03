"""ffmpeg (from imageio-ffmpeg) as the player: an AES-128 encrypted VOD HLS stream, made
with ffmpeg's own hls muxer, served from an fs origin by a real `edgeshield serve` on a
route that requires native tokens. The player is given only a signed master playlist
URL; every child (media playlist, key, segments) is reachable only through the child
tokens the proxy writes into the playlists, and every frame decodes. Without the
playlist rewrite the same player is refused."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from proxy.auth.keys import KeyRing
from proxy.auth.native import sign_url
from tests.support.proxy_server import ProxyServer, native_token_config, running_proxy

imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")

SECRET = "ffmpeg player secret"
FRAMES = 40  # 4 s at 10 fps


def _ffmpeg() -> str:
    return str(imageio_ffmpeg.get_ffmpeg_exe())


@pytest.fixture(scope="module")
def vod(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("vod")
    rendition = root / "v" / "720p"
    rendition.mkdir(parents=True)
    (root / "v" / "keys").mkdir()
    key = root / "v" / "keys" / "enc.key"
    key.write_bytes(bytes(range(16)))
    info = root / "keyinfo"
    info.write_text(f"../keys/enc.key\n{key}\n")
    subprocess.run(
        [
            _ffmpeg(),
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=160x90:rate=10",
            "-t",
            "4",
            "-c:v",
            "libx264",
            "-g",
            "10",
            "-f",
            "hls",
            "-hls_time",
            "1",
            "-hls_playlist_type",
            "vod",
            "-hls_key_info_file",
            str(info),
            "-hls_segment_filename",
            str(rendition / "seg-%d.ts"),
            str(rendition / "index.m3u8"),
        ],
        check=True,
        timeout=120,
    )
    (root / "v" / "master.m3u8").write_text(
        "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=200000,RESOLUTION=160x90\n720p/index.m3u8\n"
    )
    return root


def _config(root: Path, playlists: bool) -> str:
    return native_token_config(
        {"kind": "fs", "root": str(root)}, SECRET, {"ttl": 600} if playlists else None
    )


@pytest.fixture(scope="module")
def proxy(vod: Path) -> Iterator[ProxyServer]:
    with running_proxy(_config(vod, playlists=True)) as server:
        yield server


def _play(url: str) -> subprocess.CompletedProcess[str]:
    """Decode every frame of every segment; one framemd5 line per frame."""
    return subprocess.run(
        [_ffmpeg(), "-v", "error", "-i", url, "-map", "0:v", "-f", "framemd5", "-"],
        capture_output=True,
        text=True,
        timeout=180,
    )


def _signed_master(proxy: ProxyServer) -> str:
    keys = KeyRing({"k1": SECRET.encode()})
    return proxy.url + sign_url("/v/master.m3u8", keys, ttl=600, prefix="/v/master.m3u8")


def _frames(result: subprocess.CompletedProcess[str]) -> int:
    return sum(1 for line in result.stdout.splitlines() if line and not line.startswith("#"))


def test_ffmpeg_plays_a_tokenized_vod_through_the_proxy(proxy: ProxyServer) -> None:
    # The token covers the master playlist only: everything else needs a child token.
    result = _play(_signed_master(proxy))
    assert result.returncode == 0, result.stderr
    assert _frames(result) == FRAMES
    assert "403" not in result.stderr


def test_without_the_rewrite_the_player_is_refused(vod: Path) -> None:
    with running_proxy(_config(vod, playlists=False)) as plain:
        result = _play(_signed_master(plain))
    assert result.returncode != 0 or _frames(result) == 0
    assert "403" in result.stderr
