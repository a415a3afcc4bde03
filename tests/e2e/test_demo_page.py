"""The demo page as `make run` serves it (the embedded default config): every image on it
is a transformed variant, in both URL syntaxes, small enough for its tile, and every URL it
lists answers."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from proxy.demo.media import PHOTOS
from tests.support.proxy_server import ProxyServer, running_proxy

BROWSER_ACCEPT = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"
TILE_BUDGET = 200_000  # bytes: a 480 px tile, whatever the source weighs


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ProxyServer, str]]:
    cwd: Path = tmp_path_factory.mktemp("first-run")
    with running_proxy(None, cwd=cwd) as proxy:
        page = httpx.get(proxy.url + "/", timeout=30).text
        yield proxy, page


def _attrs(page: str, name: str) -> list[str]:
    return [html.unescape(v) for v in re.findall(rf'\b{name}="([^"]*)"', page)]


def test_tiles_are_variants_in_both_syntaxes(demo: tuple[ProxyServer, str]) -> None:
    _, page = demo
    srcs = _attrs(page, "src")
    assert srcs, "no images on the demo page"
    for spec in PHOTOS:
        assert f"{spec.path}?w=480&auto=format,compress" in srcs
        assert any(s.startswith("cdn-cgi/image/") and s.endswith("/" + spec.path) for s in srcs)
        assert spec.path not in srcs, "a full-size original shown as a tile"


def test_every_image_answers_small_and_negotiated(demo: tuple[ProxyServer, str]) -> None:
    proxy, page = demo
    with httpx.Client(base_url=proxy.url, timeout=60) as client:
        for src in _attrs(page, "src"):
            if not src.startswith(("images/", "cdn-cgi/")):
                continue  # the video
            answer = client.get("/" + src, headers={"accept": BROWSER_ACCEPT})
            assert answer.status_code == 200, (src, answer.text[:200])
            ctype = answer.headers["content-type"]
            assert ctype in ("image/avif", "image/webp"), (src, ctype)
            assert len(answer.content) < TILE_BUDGET, (src, len(answer.content))
            assert "accept" in answer.headers.get("vary", "").lower()


def test_every_listed_url_answers(demo: tuple[ProxyServer, str]) -> None:
    """Each URL the script probes, and the originals it links, answer HEAD with a type
    and a length (what the page shows beside each URL)."""
    proxy, page = demo
    probes = _attrs(page, "data-probe")
    assert len(probes) == 3 * (len(PHOTOS) + 1)
    with httpx.Client(base_url=proxy.url, timeout=60) as client:
        for url in probes:
            head = client.head("/" + url, headers={"accept": BROWSER_ACCEPT})
            assert head.status_code == 200, url
            assert head.headers["content-type"].startswith("image/"), url
            assert int(head.headers["content-length"]) > 0, url


def test_page_links_to_the_admin_page(demo: tuple[ProxyServer, str]) -> None:
    proxy, page = demo
    assert "_admin" in _attrs(page, "href")
    admin = httpx.get(proxy.url + "/_admin", timeout=30)  # loopback, no token configured
    assert admin.status_code == 200 and "text/html" in admin.headers["content-type"]
