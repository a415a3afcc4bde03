"""Live streams through a real `edgeshield serve`: many viewers polling one live playlist,
LL-HLS blocking reloads, and segment prefetch, against a live origin that counts what it
is asked (tests/support/live_origin.py). Assertions are on origin counts and orderings;
times only bound how long a test may wait."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.live_origin import LiveOrigin, running_live_origin
from tests.support.proxy_server import ProxyServer, proxy_config, running_proxy

TARGET = 1.0  # seconds per segment: a live playlist is fresh for half of it
HANG_GUARD = 30.0


@pytest.fixture(scope="module")
def live() -> Iterator[tuple[LiveOrigin, ProxyServer]]:
    with (
        running_live_origin("--target", str(TARGET), "--size", "4096") as origin,
        running_proxy(proxy_config(origin.url)) as proxy,
    ):
        yield origin, proxy


def _sequence(text: str) -> int:
    match = re.search(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", text)
    assert match, text
    return int(match.group(1))


def _segments(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def _wait_for(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + HANG_GUARD
    while not check():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.05)


def _metric(proxy: ProxyServer, name: str) -> float:
    text = httpx.get(f"{proxy.url}/metrics", timeout=10).text
    match = re.search(rf"^{name} (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


async def test_many_viewers_polling_cost_at_most_one_fetch_per_ttl_window(
    live: tuple[LiveOrigin, ProxyServer],
) -> None:
    origin, proxy = live
    before = origin.requests("/live/index.m3u8")
    ages: list[int] = []

    async def viewer(client: httpx.AsyncClient, until: float) -> None:
        while time.monotonic() < until:
            resp = await client.get("/live/index.m3u8")
            assert resp.status_code == 200 and "#EXTINF" in resp.text
            ages.append(int(resp.headers.get("age", "0")))
            await asyncio.sleep(0.05)

    limits = httpx.Limits(max_connections=50)
    async with httpx.AsyncClient(base_url=proxy.url, timeout=HANG_GUARD, limits=limits) as client:
        started = time.monotonic()
        await asyncio.gather(*(viewer(client, started + 4.0) for _ in range(50)))
        elapsed = time.monotonic() - started
    fetches = origin.requests("/live/index.m3u8") - before
    windows = elapsed / (TARGET / 2)
    assert len(ages) > fetches  # the viewers were answered from the cache
    assert 1 <= fetches <= windows + 2
    assert max(ages) <= 1  # never older than half a target duration (Age is whole seconds)


async def test_blocking_reloads_collapse_per_msn_and_wait_for_the_origin(
    live: tuple[LiveOrigin, ProxyServer],
) -> None:
    origin, proxy = live
    async with httpx.AsyncClient(base_url=proxy.url, timeout=HANG_GUARD) as client:
        plain = await client.get("/live/index.m3u8")  # a cached playlist, older than asked
        last = _sequence(plain.text) + len(_segments(plain.text)) - 1
        wanted = last + 2
        blocking_before = int(origin.stats()["blocking"])  # type: ignore[call-overload]
        answers = await asyncio.gather(
            *(client.get(f"/live/index.m3u8?_HLS_msn={wanted}") for _ in range(20))
        )
    assert int(origin.stats()["blocking"]) - blocking_before == 1  # type: ignore[call-overload]
    for resp in answers:
        assert resp.status_code == 200
        assert f"seg{wanted}.ts" in _segments(resp.text)  # held until the origin had it


def test_newly_listed_live_segments_are_prefetched(live: tuple[LiveOrigin, ProxyServer]) -> None:
    origin, proxy = live
    with httpx.Client(base_url=proxy.url, timeout=HANG_GUARD) as client:
        first = _segments(client.get("/live/index.m3u8").text)
        newest: list[str] = []

        def refreshed() -> bool:
            newest[:] = [
                s for s in _segments(client.get("/live/index.m3u8").text) if s not in first
            ]
            return bool(newest)

        _wait_for(refreshed, "a new segment listed")
        path = f"/live/{newest[-1]}"
        _wait_for(lambda: origin.requests(path) == 1, f"{path} prefetched")
        resp = client.get(path)
        assert resp.status_code == 200
    assert origin.requests(path) == 1  # the viewer's request was the prefetched copy
    assert _metric(proxy, "edgeshield_prefetched_segments_total") >= 1


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[tuple[Path, LiveOrigin]]:
    with running_live_origin("--dir", str(tmp_path)) as origin:
        yield tmp_path, origin


def _vod(root: Path, names: list[str]) -> None:
    lines = ["#EXTM3U", "#EXT-X-TARGETDURATION:1", "#EXT-X-PLAYLIST-TYPE:VOD"]
    for name in names:
        lines += ["#EXTINF:1.0,", name]
        if not name.startswith("http"):
            (root / name).write_bytes(name.encode() * 500)
    (root / "index.m3u8").write_text("\n".join([*lines, "#EXT-X-ENDLIST", ""]))


def test_the_segments_after_a_requested_one_are_prefetched_never_another_host(
    folder: tuple[Path, LiveOrigin],
) -> None:
    root, origin = folder
    other = origin.url.replace("127.0.0.1", "localhost") + "/other.ts"
    _vod(root, ["s0.ts", other, "s1.ts", "s2.ts", "s3.ts", "s4.ts"])
    (root / "other.ts").write_bytes(b"x")
    with (
        running_proxy(proxy_config(origin.url)) as proxy,
        httpx.Client(base_url=proxy.url, timeout=HANG_GUARD) as client,
    ):
        assert client.get("/index.m3u8").status_code == 200
        assert client.get("/s0.ts").status_code == 200
        _wait_for(
            lambda: origin.requests("/s1.ts") == 1 and origin.requests("/s2.ts") == 1,
            "s1 and s2 prefetched",
        )
        assert origin.requests("/s3.ts") == 0  # two ahead, the route's default
        hit = client.get("/s1.ts")
        assert hit.content == b"s1.ts" * 500 and "hit" in hit.headers["cache-status"]
        assert client.get("/s3.ts").status_code == 200  # a miss: settles what was used
        _wait_for(lambda: origin.requests("/s4.ts") == 1, "s4 prefetched after s3")
        _wait_for(
            lambda: _metric(proxy, "edgeshield_prefetch_used_total") >= 1, "s1 counted as used"
        )
        assert _metric(proxy, "edgeshield_prefetched_segments_total") >= 3
    assert origin.requests("/other.ts") == 0  # a URI on another host is never followed
    assert origin.requests("/s1.ts") == 1


def test_prefetch_off_for_a_route(folder: tuple[Path, LiveOrigin]) -> None:
    root, origin = folder
    _vod(root, ["s0.ts", "s1.ts"])
    config = proxy_config(origin.url, cache={"prefetch_segments": 0})
    with (
        running_proxy(config) as proxy,
        httpx.Client(base_url=proxy.url, timeout=HANG_GUARD) as client,
    ):
        client.get("/index.m3u8")
        client.get("/s0.ts")
        resp = client.get("/s1.ts")
        assert "fwd=miss" in resp.headers["cache-status"]
        assert "collapsed" not in resp.headers["cache-status"]
        assert _metric(proxy, "edgeshield_prefetched_segments_total") == 0
    assert origin.requests("/s1.ts") == 1


def test_byterange_segments_are_answered_from_one_cached_file(
    folder: tuple[Path, LiveOrigin],
) -> None:
    root, origin = folder
    data = bytes(range(256)) * 64  # three 4 KiB+ "segments" in one file
    (root / "all.ts").write_bytes(data)
    lines = ["#EXTM3U", "#EXT-X-TARGETDURATION:1", "#EXT-X-VERSION:4"]
    spans = [(0, 5000), (5000, 6000), (11000, len(data) - 11000)]
    for start, length in spans:
        lines += ["#EXTINF:1.0,", f"#EXT-X-BYTERANGE:{length}@{start}", "all.ts"]
    (root / "index.m3u8").write_text("\n".join([*lines, "#EXT-X-ENDLIST", ""]))
    with (
        running_proxy(proxy_config(origin.url)) as proxy,
        httpx.Client(base_url=proxy.url, timeout=HANG_GUARD) as client,
    ):
        assert client.get("/index.m3u8").status_code == 200
        for start, length in spans:
            resp = client.get("/all.ts", headers={"range": f"bytes={start}-{start + length - 1}"})
            assert resp.status_code == 206
            assert resp.content == data[start : start + length]
    assert origin.requests("/all.ts") == 1


def test_a_hinted_part_asked_for_early_is_one_held_fetch() -> None:
    with (
        running_live_origin("--target", "2", "--parts", "4") as origin,
        running_proxy(proxy_config(origin.url)) as proxy,
    ):
        with httpx.Client(base_url=proxy.url, timeout=HANG_GUARD) as client:
            text = client.get("/live/index.m3u8").text
        hint = re.search(r'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="([^"]+)"', text)
        assert hint, text
        path = f"/live/{hint.group(1)}"

        async def early() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=proxy.url, timeout=HANG_GUARD) as client:
                return await asyncio.gather(*(client.get(path) for _ in range(10)))

        answers = asyncio.run(early())
        assert {r.status_code for r in answers} == {200}
        assert len({r.content for r in answers}) == 1
        assert origin.requests(path) == 1  # held once at the origin, every viewer joined it
