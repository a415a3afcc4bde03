"""An image variant outlives a 304 of its source: when the source's freshness runs out
and the origin answers the revalidation with 304 (same validators), the stored variant
is served again, fresh with its source, not transformed again. Counted with the
transform metric, never timed: the source is scripted with max-age=0, so every request
finds variant and source expired and revalidates."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator

import httpx
import pytest
import pyvips

from tests.support.origin_server import OriginServer
from tests.support.proxy_server import proxy_config, running_proxy

WEBP = "image/webp,*/*;q=0.8"


def _jpeg(shade: int) -> str:
    image = pyvips.Image.black(64, 48).new_from_image([shade, 90, 160]).cast("uchar")
    return base64.b64encode(image.copy(interpretation="srgb").jpegsave_buffer()).decode()


def _serve(origin: OriginServer, body: str, etag: str | None, last_modified: str) -> None:
    headers = {"content-type": "image/jpeg", "cache-control": "max-age=0"}
    headers["last-modified"] = last_modified
    if etag is not None:
        headers["etag"] = etag
    origin.script("/photo.jpg", body_base64=body, headers=headers)


def _transforms(client: httpx.Client) -> int:
    text = client.get("/metrics").text
    found = re.findall(r'^edgeshield_image_transforms_total\{result="(\w+)"\} (\S+)$', text, re.M)
    return int(sum(float(n) for result, n in found if result not in ("rejected", "overloaded")))


@pytest.fixture
def client(origin: OriginServer) -> Iterator[httpx.Client]:
    config = proxy_config(origin.url, route={"images": True})
    with running_proxy(config) as proxy, httpx.Client(base_url=proxy.url, timeout=30) as c:
        yield c


@pytest.mark.parametrize("etag", ['"v1"', None], ids=["etag", "last-modified"])
def test_a_304_keeps_the_variant(
    origin: OriginServer, client: httpx.Client, etag: str | None
) -> None:
    _serve(origin, _jpeg(40), etag, "Mon, 01 Jan 2024 00:00:00 GMT")
    first = client.get("/photo.jpg?w=32&fm=webp", headers={"accept": WEBP})
    assert first.status_code == 200 and first.headers["content-type"] == "image/webp"
    assert _transforms(client) == 1
    for _ in range(3):
        again = client.get("/photo.jpg?w=32&fm=webp", headers={"accept": WEBP})
        assert again.status_code == 200
        assert again.content == first.content
        assert again.headers["etag"] == first.headers["etag"]
    assert origin.stats()["not_modified"].get("/photo.jpg", 0) == 3  # each one revalidated
    assert _transforms(client) == 1


def test_a_changed_source_makes_a_new_variant(origin: OriginServer, client: httpx.Client) -> None:
    _serve(origin, _jpeg(40), '"v1"', "Mon, 01 Jan 2024 00:00:00 GMT")
    first = client.get("/photo.jpg?w=32&fm=webp", headers={"accept": WEBP})
    _serve(origin, _jpeg(220), '"v2"', "Tue, 02 Jan 2024 00:00:00 GMT")
    second = client.get("/photo.jpg?w=32&fm=webp", headers={"accept": WEBP})
    assert second.status_code == 200
    assert second.content != first.content
    assert _transforms(client) == 2
