"""A real live stream end to end: ffmpeg (imageio-ffmpeg) encodes a test source in real
time into a live HLS folder (1 s segments, a 5-segment window), a loopback origin that
counts requests serves the folder, and three ffmpeg players read the stream through a
real `edgeshield serve` at once, decoding every frame they take. The origin sees each
segment once (the players' misses collapse onto one fetch or find the prefetched copy)
and the playlist at most once per half target duration."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.live_origin import running_live_origin
from tests.support.proxy_server import proxy_config, running_proxy

imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")

PLAYERS = 3
SECONDS = 4  # each player decodes this much of the stream
HANG_GUARD = 45.0


def _ffmpeg() -> str:
    return str(imageio_ffmpeg.get_ffmpeg_exe())


@pytest.fixture
def encoder(tmp_path: Path) -> Iterator[Path]:
    """ffmpeg writing a live HLS stream in real time into tmp_path/live/."""
    folder = tmp_path / "live"
    folder.mkdir()
    cmd = [
        _ffmpeg(),
        *("-v", "error", "-re", "-f", "lavfi", "-i", "testsrc=size=160x90:rate=10"),
        *("-t", "30", "-c:v", "libx264", "-preset", "ultrafast", "-g", "10"),
        *("-f", "hls", "-hls_time", "1", "-hls_list_size", "5"),
        *("-hls_flags", "temp_file", str(folder / "index.m3u8")),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + HANG_GUARD
        playlist = folder / "index.m3u8"
        while not (playlist.exists() and playlist.read_text().count("#EXTINF") >= 3):
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "ffmpeg wrote no live playlist"
            time.sleep(0.1)
        yield tmp_path
    finally:
        proc.kill()
        proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


def test_ffmpeg_players_read_a_live_stream_through_the_shield(encoder: Path) -> None:
    with (
        running_live_origin("--dir", str(encoder)) as origin,
        running_proxy(proxy_config(origin.url)) as proxy,
    ):
        started = time.monotonic()
        players = [
            subprocess.Popen(
                [
                    _ffmpeg(),
                    *("-v", "error", "-i", f"{proxy.url}/live/index.m3u8"),
                    *("-t", str(SECONDS), "-f", "framecrc", "-"),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for _ in range(PLAYERS)
        ]
        for player in players:
            out, err = player.communicate(timeout=HANG_GUARD)
            frames = [line for line in out.splitlines() if line and not line.startswith(b"#")]
            assert player.returncode == 0, err
            assert len(frames) >= SECONDS * 10 * 0.8, err  # 10 fps, every frame decoded
        elapsed = time.monotonic() - started
        metrics = httpx.get(f"{proxy.url}/metrics", timeout=10).text
        stats = origin.stats()
    counts = stats["requests"]
    assert isinstance(counts, dict)
    segments = {path: n for path, n in counts.items() if path.endswith(".ts")}
    assert segments and all(n == 1 for n in segments.values()), segments
    playlist_fetches = counts["/live/index.m3u8"]
    assert playlist_fetches <= elapsed / 0.5 + 2  # one per half target duration at most
    prefetched = re.search(r"^edgeshield_prefetched_segments_total (\S+)$", metrics, re.M)
    assert prefetched and float(prefetched.group(1)) >= 1
