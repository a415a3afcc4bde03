"""The demo's adaptive stream as `make run` serves it (the embedded default config), played
by real clients through a real `edgeshield serve`:

* hls.js in headless Chromium, from the demo page's signed URL: the video's
  `currentTime` advances and a screenshot of it shows a picture, not a blank box;
* ffmpeg's DASH demuxer, from the same signed token, decoding every segment of every
  representation.

The stream's route needs a token, and the page carries one for the master playlist only:
both players get through because the proxy gives every URI in a signed playlist a token.
Chromium is required (CI installs the Debian package); the test fails when it is missing.
"""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import imageio_ffmpeg
import pytest
import pyvips

from proxy.demo import stream
from tests.support.cdp import chromium
from tests.support.proxy_server import REPO_ROOT, ProxyServer, running_proxy

WIDTH, HEIGHT = 1280, 1400
FRAMES = stream.STREAM_SECONDS * stream.FPS


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ProxyServer, str]]:
    """The proxy on the embedded config, and the page's signed master playlist URL."""
    cwd: Path = tmp_path_factory.mktemp("first-run")
    if not stream.VENDORED_HLSJS.is_file():
        pytest.fail("hls.js is not vendored: run `make vendor` (it needs npm)")
    # Generated first, so the proxy's start-up wait does not include the encode.
    made = subprocess.run(
        [sys.executable, "-m", "proxy.serve.cli", "demo", "--out", str(cwd / "var/demo")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert made.returncode == 0, made.stderr[-2000:]
    with running_proxy(None, cwd=cwd) as proxy:
        page = httpx.get(proxy.url + "/", timeout=30).text
        found = re.search(r'href="(video/stream/master\.m3u8\?token=[^"]+)"', page)
        assert found is not None, "no signed master playlist on the demo page"
        yield proxy, html.unescape(found.group(1))


def test_the_stream_needs_the_token(demo: tuple[ProxyServer, str]) -> None:
    proxy, master = demo
    with httpx.Client(base_url=proxy.url, timeout=30) as client:
        assert client.get("/" + master.partition("?")[0]).status_code == 403
        assert client.get(f"/{stream.STREAM_DIR}/seg-0-1.m4s").status_code == 403
        signed = client.get("/" + master)
        assert signed.status_code == 200, signed.text[:200]
        uris = [ln for ln in signed.text.splitlines() if ln and not ln.startswith("#")]
        assert len(uris) == len(stream.RENDITIONS)
        assert all("token=" in uri for uri in uris), signed.text


def test_cors_answers_what_hls_js_and_dash_js_need(demo: tuple[ProxyServer, str]) -> None:
    """A page on another origin: the preflight of a Range request is allowed, and the
    answer lets the player read the length, range and age fields."""
    proxy, master = demo
    page_origin = "http://player.example"
    segment = re.sub(r"master\.m3u8", "seg-0-1.m4s", master)
    with httpx.Client(base_url=proxy.url, timeout=30) as client:
        pre = client.options(
            "/" + segment,
            headers={
                "origin": page_origin,
                "access-control-request-method": "GET",
                "access-control-request-headers": "range",
            },
        )
        assert pre.status_code == 204
        assert "range" in pre.headers["access-control-allow-headers"].split(", ")
        got = client.get("/" + segment, headers={"origin": page_origin, "range": "bytes=0-99"})
        assert got.status_code == 206
        assert got.headers["access-control-allow-origin"] == "*"
        exposed = set(got.headers["access-control-expose-headers"].split(", "))
        assert {"content-length", "content-range", "age", "date"} <= exposed


def test_hls_js_plays_the_signed_stream_in_chromium(
    demo: tuple[ProxyServer, str], tmp_path: Path
) -> None:
    proxy, _ = demo
    started_at = time.time()
    with chromium(tmp_path / "profile") as browser:
        browser.open_page(WIDTH, HEIGHT)
        browser.navigate(proxy.url + "/")
        video = "document.getElementById('stream')"
        state = "document.getElementById('stream-state').textContent"
        assert browser.wait_for("typeof Hls === 'function' && Hls.isSupported()", 30, "hls.js")
        try:
            started = browser.wait_for(f"{video}.currentTime > 0.5 && {video}.currentTime", 60,
                                       "playback start")  # fmt: skip
            browser.wait_for(f"{video}.currentTime > {started} + 0.5", 60, "playback advancing")
        except RuntimeError as exc:
            raise AssertionError(f"{exc}; page says {browser.evaluate(state)!r}") from None
        assert browser.evaluate(state).startswith("playing "), browser.evaluate(state)
        assert browser.evaluate(f"{video}.error") is None
        box = browser.evaluate(
            f"(() => {{ const r = {video}.getBoundingClientRect(); "
            "return {x: r.x + scrollX, y: r.y + scrollY, width: r.width, height: r.height}; })()"
        )
        png = browser.screenshot(box)
    frame = pyvips.Image.new_from_buffer(png, "")
    assert (frame.width, frame.height) == (round(box["width"]), round(box["height"]))
    # testsrc2 is a colourful moving pattern: a blank or black box has almost no spread.
    assert frame.deviate() > 20, f"the video looks blank (deviation {frame.deviate():.1f})"
    # Every request the player made carried a token (the child tokens of the signed
    # playlists): segments of the stream were served, and nothing was refused.
    requests = [r for r in _access_log(proxy) if r["ts"] >= started_at]
    statuses = Counter(r["status"] for r in requests if r["path"].startswith("/video/stream/"))
    assert statuses[200] >= 2 * len(stream.RENDITIONS), statuses
    assert set(statuses) == {200}, statuses
    (tmp_path / "frame.png").write_bytes(png)


def _access_log(proxy: ProxyServer) -> list[dict[str, Any]]:
    """The proxy's access-log lines so far (it writes them at least once a second)."""
    deadline = time.monotonic() + 10
    lines: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        lines = [json.loads(ln) for ln in proxy.log().splitlines() if ln.startswith('{"ts"')]
        if lines and time.time() - lines[-1]["ts"] > 1.5:
            break
        time.sleep(0.5)
    return lines


def test_ffmpeg_dash_demuxer_decodes_every_segment(demo: tuple[ProxyServer, str]) -> None:
    """Each representation decoded on its own, as a player reads one at a time (ffmpeg
    reading all of them into one output loses a frame at a segment joint)."""
    proxy, master = demo
    token = master.partition("?")[2]
    mpd = f"{proxy.url}/{stream.MPD_PATH}?{token}"
    frames = []
    for index in range(len(stream.RENDITIONS) + 1):  # the renditions, then the audio
        # framemd5 decodes every frame it is given: one line per frame.
        done = subprocess.run(
            [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "fatal",
             "-i", mpd, "-map", f"0:{index}", "-f", "framemd5", "-"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        frames.append(sum(1 for ln in done.stdout.splitlines() if ln and ln[0] != "#"))
    *video, audio = frames
    assert video == [FRAMES] * len(stream.RENDITIONS)
    # AAC frames of 1024 samples at 44.1 kHz: short of the clip by less than a segment
    # (the encoder's priming), so every segment was there.
    assert audio >= (stream.STREAM_SECONDS - stream.SEGMENT_SECONDS / 2) * 44100 / 1024
