"""VOD segment prefetch through a real `edgeshield serve` (prefetch 2): a player reads
the playlist, then segments 1..10 in order. Every request after the first segment is a
hit, fast-path hits of prefetched segments included (the fast path leaves a segment hit
to the pipeline while segments after it are missing, so prefetch keeps k ahead), and the
counting origin sees each segment once. The same for a static DASH manifest made by
ffmpeg (a SegmentTemplate with $Number%05d$ and a SegmentTimeline).

No timing assumption: before each next segment the player waits (hang guard only) for
the prefetches its last request started to be stored, as a real player's segment
duration gives them time to be."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.live_origin import LiveOrigin, running_live_origin
from tests.support.proxy_server import ProxyServer, proxy_config, running_proxy
from tests.support.streams import dash_static

SEGMENTS = 10
PREFETCH = 2
HANG_GUARD = 30.0


@pytest.fixture
def vod(tmp_path: Path) -> Iterator[tuple[LiveOrigin, ProxyServer]]:
    folder = tmp_path / "vod"
    folder.mkdir()
    lines = ["#EXTM3U", "#EXT-X-TARGETDURATION:2", "#EXT-X-PLAYLIST-TYPE:VOD"]
    for n in range(1, SEGMENTS + 1):
        (folder / f"seg{n}.ts").write_bytes(os.urandom(20_000))
        lines += ["#EXTINF:2.0,", f"seg{n}.ts"]
    (folder / "index.m3u8").write_text("\n".join([*lines, "#EXT-X-ENDLIST", ""]))
    with (
        running_live_origin("--dir", str(tmp_path)) as origin,
        running_proxy(proxy_config(origin.url, cache={"prefetch_segments": PREFETCH})) as proxy,
    ):
        yield origin, proxy


def _prefetched(client: httpx.Client) -> float:
    text = client.get("/metrics").text
    found = re.search(r"^edgeshield_prefetched_segments_total (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def _wait_prefetched(client: httpx.Client, count: int) -> None:
    deadline = time.monotonic() + HANG_GUARD
    while _prefetched(client) < count:
        assert time.monotonic() < deadline, f"fewer than {count} segments prefetched"
        time.sleep(0.05)


def _play_in_order(proxy: ProxyServer, first: str, segments: list[str]) -> list[str]:
    """GET `first` (the playlist, init segments), then each segment in order: the
    Cache-Status of each segment."""
    statuses = []
    with httpx.Client(base_url=proxy.url, timeout=30) as client:
        for path in first.split():
            assert client.get(path).status_code == 200
        for n, path in enumerate(segments, 1):
            r = client.get(path)
            assert r.status_code == 200
            statuses.append(r.headers["cache-status"])
            # what this request started: the segments up to n + PREFETCH, less the first
            _wait_prefetched(client, min(n + PREFETCH, len(segments)) - 1)
    return statuses


def _check(statuses: list[str], origin: LiveOrigin, segments: list[str]) -> None:
    assert "fwd=miss" in statuses[0]
    misses = [(n, s) for n, s in enumerate(statuses[1:], 2) if "hit" not in s.split(";")[1]]
    assert not misses, misses
    counts = origin.stats()["requests"]
    assert isinstance(counts, dict)
    assert {p: counts.get(p) for p in segments} == {p: 1 for p in segments}


def test_every_segment_after_the_first_is_a_hit(vod: tuple[LiveOrigin, ProxyServer]) -> None:
    origin, proxy = vod
    segments = [f"/vod/seg{n}.ts" for n in range(1, SEGMENTS + 1)]
    _check(_play_in_order(proxy, "/vod/index.m3u8", segments), origin, segments)


def test_a_static_dash_manifest_is_prefetched_too(tmp_path: Path) -> None:
    manifest = dash_static(tmp_path, seconds=10)  # 5 segments of 2 s
    folder = f"/{manifest.parent.name}"
    segments = [f"{folder}/chunk-stream0-{n:05d}.m4s" for n in range(1, 6)]
    assert all((tmp_path / p.lstrip("/")).is_file() for p in segments)
    with (
        running_live_origin("--dir", str(tmp_path)) as origin,
        running_proxy(proxy_config(origin.url, cache={"prefetch_segments": PREFETCH})) as proxy,
    ):
        first = f"{folder}/manifest.mpd {folder}/init-stream0.m4s"
        _check(_play_in_order(proxy, first, segments), origin, segments)
