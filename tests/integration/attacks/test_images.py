"""Issue 11, item 6: images cost what their limits say, and variants keep the source's
Vary. Each test drives a real `edgeshield serve` in front of the scriptable origin.

- Animated GIFs (small on the wire, inside every byte/pixel/frame limit) asked for in
  many sizes at once: the server's RSS stays under `images.memory_budget_bytes` plus a
  base, and every request gets a clean answer: the animation, its first frame when the
  animation would cost more than the budget, or 413 naming the budget. Never a 5xx, a
  dropped connection or a poisoned variant.
- An image whose origin varies on Accept-Language: each language gets its own variant,
  also when both are asked for at once and neither is cached yet.
"""

from __future__ import annotations

import asyncio
import base64
import threading
import uuid
from collections.abc import Iterator

import httpx
import psutil
import pytest
import pyvips

from tests.support.origin_server import OriginServer
from tests.support.proxy_server import ProxyServer, running_proxy, toml_value
from tests.unit.images.conftest import flat_animation, jpeg, photo

MiB = 1024 * 1024
BUDGET = 80 * MiB
# What the process may add beyond the transforms' reservations: request and response
# buffers, cached sources and variants, Python objects (measured: under 10 MiB).
SLACK = 32 * MiB


def config(origin_url: str) -> str:
    return f"""
[server]
access_log = "off"

[origins.main]
kind = "http"
url = {toml_value(origin_url)}

[images]
threads = 2
queue_depth = 16
memory_budget_bytes = {BUDGET}

[[routes]]
path_prefix = "/"
origin = "main"
images = true
"""


@pytest.fixture(scope="module")
def image_proxy(origin_server: OriginServer) -> Iterator[ProxyServer]:
    with running_proxy(config(origin_server.url)) as server:
        yield server


@pytest.fixture
def client(image_proxy: ProxyServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=image_proxy.url, timeout=60) as c:
        yield c


def serve(origin: OriginServer, path: str, body: bytes, content_type: str, **extra: object) -> None:
    headers = {"content-type": content_type, "cache-control": "max-age=300"}
    origin.script(path, body_base64=base64.b64encode(body).decode(), headers=headers, **extra)


def decode(data: bytes) -> pyvips.Image:
    return pyvips.Image.new_from_buffer(data, "")


def frames(image: pyvips.Image) -> int:
    """Frames in the file (the header says, whatever was loaded)."""
    return int(image.get("n-pages")) if image.get_typeof("n-pages") else 1


def rss(pid: int) -> int:
    process = psutil.Process(pid)
    return process.memory_info().rss + sum(
        child.memory_info().rss for child in process.children(recursive=True)
    )


class PeakRss:
    """Samples the server's RSS on a thread while the block runs."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak = pid, rss(pid)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample)

    def _sample(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, rss(self.pid))
            self._done.wait(0.005)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()


def test_animated_gifs_in_flight_stay_within_the_memory_budget(
    origin: OriginServer, image_proxy: ProxyServer, client: httpx.Client
) -> None:
    tag = uuid.uuid4().hex
    short, long_ = f"/a/{tag}-60.gif", f"/a/{tag}-190.gif"
    photo_path = f"/a/{tag}.jpg"
    serve(origin, short, flat_animation(300, 300, 60), "image/gif")  # 60 x 300 px
    serve(origin, long_, flat_animation(200, 200, 190), "image/gif")  # issue 11's shape
    serve(origin, photo_path, jpeg(photo(2400, 1600)), "image/jpeg")
    # Warm up: the codecs' one-time allocations, the sources in the cache.
    for path in (short, long_, photo_path):
        assert client.get(f"{path}?w=16&frame=1").status_code == 200
    assert image_proxy.proc is not None
    pid = image_proxy.proc.pid
    base = rss(pid)
    # (url, accept) -> what a clean answer is: (status, frames, width) or (413, reason)
    expected: dict[str, tuple[int, int, int] | tuple[int, str]] = {
        **{f"{short}?w={w}": (200, 60, w) for w in (200, 220, 240, 260, 280)},
        # Animated at 1000 px would hold 60 x 1 MP frames twice over: the first frame.
        f"{short}?w=1000": (200, 1, 1000),
        # Even one 4000 px frame is beyond the budget for a GIF encoder: refused.
        f"{short}?w=4000": (413, "slow encoders"),  # a 16 MP GIF still: refused first
        f"{long_}?w=190": (200, 190, 190),
        f"{long_}?w=150&auto=format": (200, 190, 150),
        # A still whose WebP encoder alone needs more than the budget.
        f"{photo_path}?fm=webp": (413, "memory budget"),
    }

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=image_proxy.url, timeout=120) as c:
            headers = {"accept": "image/webp,*/*"}
            return await asyncio.gather(*(c.get(url, headers=headers) for url in expected))

    with PeakRss(pid) as sampled:
        answers = asyncio.run(burst())
    growth = sampled.peak - base
    for (url, want), resp in zip(expected.items(), answers, strict=True):
        assert resp.status_code == want[0], (url, resp.status_code, resp.text[:200])
        if want[0] == 200:
            image = decode(resp.content)
            assert (frames(image), image.width) == want[1:], url
        else:
            assert want[1] in resp.text and resp.headers["cache-control"] == "no-store", url
    assert growth < BUDGET + SLACK, f"RSS grew {growth / MiB:.0f} MiB"
    # Nothing poisoned: a clean client gets the same animation again, from the cache,
    # and a refused variant is refused again rather than served from somewhere.
    again = client.get(f"{short}?w=200", headers={"accept": "image/webp,*/*"})
    assert again.content == answers[0].content and "hit" in again.headers["cache-status"]
    assert client.get(f"{photo_path}?fm=webp").status_code == 413
    assert client.get("/healthz").status_code == 200


def coloured_png(rgb: list[int]) -> bytes:
    image = pyvips.Image.black(64, 48).new_from_image(rgb).cast("uchar")
    return bytes(image.copy(interpretation="srgb").pngsave_buffer())


def colour(data: bytes) -> str:
    """Which of the two sources this image was made from (lossy formats shift values)."""
    image = decode(data)
    red, blue = image.extract_band(0).avg(), image.extract_band(2).avg()
    return "red" if red > blue + 100 else "blue" if blue > red + 100 else "mixed"


RED, BLUE = [220, 20, 20], [20, 20, 220]


def test_variants_of_a_source_that_varies_on_accept_language_are_per_language(
    origin: OriginServer, image_proxy: ProxyServer, client: httpx.Client
) -> None:
    path = f"/lang/{uuid.uuid4().hex}.png"
    bodies = {"en": coloured_png(RED), "fr": coloured_png(BLUE)}
    origin.script(
        path,
        body_base64=base64.b64encode(bodies["en"]).decode(),
        headers={
            "content-type": "image/png",
            "cache-control": "max-age=300",
            "vary": "Accept-Language",
        },
        vary_bodies={
            "header": "accept-language",
            "bodies": {k: base64.b64encode(v).decode() for k, v in bodies.items()},
        },
    )
    want = {"en": "red", "fr": "blue"}

    async def burst(url: str) -> list[tuple[str, httpx.Response]]:
        async with httpx.AsyncClient(base_url=image_proxy.url, timeout=60) as c:
            langs = ["en", "fr"] * 6
            answers = await asyncio.gather(
                *(c.get(url, headers={"accept-language": lang}) for lang in langs)
            )
            return list(zip(langs, answers, strict=True))

    # Both languages at once, nothing cached yet: collapsing must not cross languages.
    for lang, resp in asyncio.run(burst(f"{path}?w=32")):
        assert resp.status_code == 200 and resp.headers["content-type"] == "image/png"
        assert colour(resp.content) == want[lang], lang
        assert "accept-language" in resp.headers["vary"].lower()
    # Then from the cache, one after the other, and in a new size.
    for url in (f"{path}?w=32", f"{path}?w=24"):
        for lang in ("fr", "en", "fr"):
            resp = client.get(url, headers={"accept-language": lang})
            assert resp.status_code == 200 and colour(resp.content) == want[lang], (url, lang)
    hit = client.get(f"{path}?w=32", headers={"accept-language": "en"})
    assert "hit" in hit.headers["cache-status"] and colour(hit.content) == "red"
    # Format negotiation still keys by the accept class, on top of the language.
    for lang in ("en", "fr"):
        headers = {"accept-language": lang, "accept": "image/webp"}
        resp = client.get(f"{path}?w=32&auto=format", headers=headers)
        assert resp.headers["content-type"] == "image/webp"
        assert colour(resp.content) == want[lang]
        assert set(resp.headers["vary"].replace(" ", "").lower().split(",")) == {
            "accept",
            "accept-language",
        }
