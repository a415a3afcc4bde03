"""Image transforms through the real proxy (issue 6): both syntaxes, negotiation, caching,
collapsing of variants and of their source fetch, errors, limits, purge of variants."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
import pyvips

from tests.support.origin_server import OriginServer
from tests.support.proxy_server import ProxyServer, running_proxy, toml_value

CHROME = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"
SAFARI_14 = "image/webp,image/png,image/svg+xml,image/*;q=0.8,video/*;q=0.8,*/*;q=0.5"
CURL = "*/*"
MAX_OBJECT = 2_000_000


def photo_jpeg(width: int = 640, height: int = 480) -> bytes:
    xyz = pyvips.Image.xyz(width, height)
    base = (xyz[0] * (255 / width)).bandjoin([xyz[1] * (255 / height), xyz[0] * 0 + 128])
    noise = pyvips.Image.gaussnoise(width, height, sigma=12, seed=5)
    image = (base + noise).cast("uchar").copy(interpretation="srgb")
    return bytes(image.jpegsave_buffer(Q=85))


def bomb_png(width: int = 3000, height: int = 2000) -> bytes:
    """Small on the wire, 6 megapixels once decoded: above the proxy's 4 MP limit."""
    return bytes(pyvips.Image.black(width, height).pngsave_buffer(compression=9))


def decode(data: bytes) -> pyvips.Image:
    return pyvips.Image.new_from_buffer(data, "")


def config(origin_url: str, *, avif_mode: str = "inline") -> str:
    return f"""
[server]
access_log = "off"

[cache]
memory_max_object_bytes = {MAX_OBJECT}

[origins.main]
kind = "http"
url = {toml_value(origin_url)}

[images]
threads = 2
queue_depth = 256

[images.limits]
max_input_pixels = 4000000

[images.avif]
mode = "{avif_mode}"

[[routes]]
path_prefix = "/plain"
origin = "main"

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
    with httpx.Client(base_url=image_proxy.url, timeout=20) as c:
        yield c


@pytest.fixture(scope="module")
def jpeg() -> bytes:
    return photo_jpeg()


def unique(prefix: str = "/img", ext: str = ".jpg") -> str:
    return f"{prefix}/{uuid.uuid4().hex}{ext}"


def serve(origin: OriginServer, path: str, body: bytes, *, delay: float = 0.0, **kw: str) -> None:
    headers = {
        "content-type": kw.get("content_type", "image/jpeg"),
        "cache-control": "max-age=300",
        "etag": '"src-1"',
        "last-modified": "Mon, 01 Jan 2024 00:00:00 GMT",
    }
    origin.script(path, body_base64=base64.b64encode(body).decode(), headers=headers, delay=delay)


def transforms(client: httpx.Client) -> int:
    text = client.get("/metrics").text
    found = re.findall(r'^edgeshield_image_transforms_total\{result="(\w+)"\} (\S+)$', text, re.M)
    return int(sum(float(n) for result, n in found if result not in ("rejected", "overloaded")))


def test_query_and_cloudflare_syntax_give_identical_bytes_and_share_the_source(
    origin: OriginServer, client: httpx.Client, jpeg: bytes
) -> None:
    path = unique()
    serve(origin, path, jpeg)
    by_query = client.get(f"{path}?w=200&fm=webp&q=80&fit=max")
    assert by_query.status_code == 200, by_query.text
    assert by_query.headers["content-type"] == "image/webp"
    assert by_query.headers["cache-status"].startswith("edgeshield; fwd=miss; fwd-status=200")
    assert "stored" in by_query.headers["cache-status"]
    assert "transform;dur=" in by_query.headers["server-timing"]
    image = decode(by_query.content)
    assert (image.width, image.height) == (200, 150)
    assert str(image.get("vips-loader")) == "webpload_buffer"
    by_path = client.get(f"/cdn-cgi/image/width=200,format=webp,quality=80{path}")
    assert by_path.status_code == 200
    assert by_path.content == by_query.content
    assert by_path.headers["cache-status"].startswith("edgeshield; hit")  # same variant
    # Another size is a new variant of the same, already cached, source.
    other = client.get(f"{path}?w=100")
    assert other.status_code == 200 and decode(other.content).width == 100
    assert other.headers["content-type"] == "image/jpeg"
    assert "detail=source-hit" in other.headers["cache-status"]
    # The source URL itself is a hit on the entry the transforms filled.
    source = client.get(path)
    assert source.content == jpeg and source.headers["cache-status"].startswith("edgeshield; hit")
    assert origin.requests(path) == 1


def test_format_negotiation_by_accept(
    origin: OriginServer, client: httpx.Client, jpeg: bytes
) -> None:
    path = unique()
    serve(origin, path, jpeg)
    expected = {CHROME: "image/avif", SAFARI_14: "image/webp", CURL: "image/jpeg"}
    for accept, content_type in expected.items():
        response = client.get(f"{path}?w=120&auto=format", headers={"accept": accept})
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == content_type
        assert response.headers["vary"] == "accept"
        assert decode(response.content).width == 120
        assert response.headers["cache-status"].startswith("edgeshield; fwd=miss")
    again = client.get(f"{path}?w=120&auto=format", headers={"accept": CHROME})
    assert again.headers["cache-status"].startswith("edgeshield; hit; ttl=")
    assert again.headers["cache-status"].endswith("detail=memory")
    assert again.headers["content-type"] == "image/avif" and again.headers["vary"] == "accept"
    # An explicit format does not vary.
    fixed = client.get(f"{path}?w=120&fm=png", headers={"accept": CHROME})
    assert fixed.headers["content-type"] == "image/png" and "vary" not in fixed.headers
    assert origin.requests(path) == 1


def test_variant_is_an_ordinary_object_for_http_semantics(
    origin: OriginServer, client: httpx.Client, jpeg: bytes
) -> None:
    path = unique()
    serve(origin, path, jpeg)
    url = f"{path}?w=160&fm=jpg"
    first = client.get(url)
    etag = first.headers["etag"]
    assert re.fullmatch(r'"[0-9a-f]{32}"', etag) and etag != '"src-1"'
    assert first.headers["last-modified"] == "Mon, 01 Jan 2024 00:00:00 GMT"
    assert first.headers["cache-control"] == "max-age=300"
    second = client.get(url)
    assert second.headers["etag"] == etag and int(second.headers["age"]) >= 0
    assert client.get(url, headers={"if-none-match": etag}).status_code == 304
    part = client.get(url, headers={"range": "bytes=0-9"})
    assert part.status_code == 206 and part.content == first.content[:10]
    head = client.head(url)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(first.content))
    info = client.get(f"{path}?fm=json")
    assert info.headers["content-type"] == "application/json"
    assert json.loads(info.content)["width"] == 640


def test_one_hundred_requests_for_one_new_variant_make_one_transform_and_one_fetch(
    origin: OriginServer, client: httpx.Client, image_proxy: ProxyServer, jpeg: bytes
) -> None:
    path = unique()
    serve(origin, path, jpeg, delay=0.3)
    before = transforms(client)

    async def burst() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=100)
        async with httpx.AsyncClient(base_url=image_proxy.url, timeout=30, limits=limits) as c:
            return await asyncio.gather(*(c.get(f"{path}?w=300&fm=webp") for _ in range(100)))

    responses = asyncio.run(burst())
    assert {r.status_code for r in responses} == {200}
    assert len({r.content for r in responses}) == 1
    assert sum("collapsed" in r.headers["cache-status"] for r in responses) >= 50
    assert origin.requests(path) == 1
    assert transforms(client) - before == 1


def test_twenty_widths_of_one_uncached_source_cause_one_origin_fetch(
    origin: OriginServer, client: httpx.Client, image_proxy: ProxyServer, jpeg: bytes
) -> None:
    path = unique()
    serve(origin, path, jpeg, delay=0.3)
    before = transforms(client)
    widths = list(range(101, 121))

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=image_proxy.url, timeout=30) as c:
            return await asyncio.gather(*(c.get(f"{path}?w={w}") for w in widths))

    responses = asyncio.run(burst())
    assert [r.status_code for r in responses] == [200] * 20
    assert [decode(r.content).width for r in responses] == widths
    assert origin.requests(path) == 1
    assert transforms(client) - before == 20


def test_invalid_options_answer_400_naming_the_option(
    origin: OriginServer, client: httpx.Client
) -> None:
    path = unique()
    bad = client.get(f"{path}?w=100&fit=banana")
    assert bad.status_code == 400
    assert "'fit'" in bad.text and "clip" in bad.text
    unknown = client.get(f"{path}?usm=10")
    assert unknown.status_code == 400 and "'usm'" in unknown.text
    cloudflare = client.get(f"/cdn-cgi/image/width=abc{path}")
    assert cloudflare.status_code == 400 and "'width'" in cloudflare.text
    assert origin.requests(path) == 0


def test_decompression_bomb_is_refused_and_the_proxy_keeps_serving(
    origin: OriginServer, client: httpx.Client, jpeg: bytes
) -> None:
    bomb = unique(ext=".png")
    serve(origin, bomb, bomb_png(), content_type="image/png")
    refused = client.get(f"{bomb}?w=100")
    assert refused.status_code == 413
    assert "pixels" in refused.text
    assert client.get(f"{bomb}?w=50&fm=webp").status_code == 413
    assert client.get("/healthz").status_code == 200
    path = unique()
    serve(origin, path, jpeg)
    assert client.get(f"{path}?w=64").status_code == 200


def test_non_image_source_answers_422(origin: OriginServer, client: httpx.Client) -> None:
    path = unique(ext=".txt")
    origin.script(
        path,
        body="just some text, not an image",
        headers={"content-type": "text/plain", "cache-control": "max-age=60"},
    )
    response = client.get(f"{path}?w=100")
    assert response.status_code == 422
    assert "not a recognised image" in response.text
    assert client.get(path).text == "just some text, not an image"


def test_source_errors_and_sizes(origin: OriginServer, client: httpx.Client) -> None:
    missing = unique()
    assert client.get(f"{missing}?w=100").status_code == 404
    too_big = f"/gen/{MAX_OBJECT + 1000}"
    response = client.get(f"{too_big}?w=100")
    assert response.status_code == 413 and "memory_max_object_bytes" in response.text
    private = unique()
    origin.script(
        private,
        body_base64=base64.b64encode(photo_jpeg(64, 48)).decode(),
        headers={"content-type": "image/jpeg", "cache-control": "private, max-age=60"},
    )
    assert client.get(f"{private}?w=10").status_code == 422


def test_route_without_images_passes_the_query_to_the_origin(
    origin: OriginServer, client: httpx.Client, jpeg: bytes
) -> None:
    path = unique("/plain")
    serve(origin, path, jpeg)
    response = client.get(f"{path}?w=100&fm=webp")
    assert response.status_code == 200
    assert response.content == jpeg and response.headers["content-type"] == "image/jpeg"
    assert origin.stats()["last_target"][path] == f"{path}?w=100&fm=webp"


def test_source_query_keeps_other_parameters(
    origin: OriginServer, client: httpx.Client, jpeg: bytes
) -> None:
    path = unique()
    serve(origin, path, jpeg)
    assert client.get(f"{path}?v=3&w=90&auto=format").status_code == 200
    assert origin.stats()["last_target"][path] == f"{path}?v=3"


def test_unsafe_request_to_the_source_invalidates_its_variants(
    origin: OriginServer, client: httpx.Client, jpeg: bytes
) -> None:
    path = unique()
    serve(origin, path, jpeg)
    url = f"{path}?w=80&fm=png"
    assert client.get(url).status_code == 200
    assert client.get(url).headers["cache-status"].startswith("edgeshield; hit")
    assert client.post(path, content=b"new").status_code == 200
    after = client.get(url)
    assert after.status_code == 200
    assert after.headers["cache-status"].startswith("edgeshield; fwd=miss; fwd-status=200")
    assert origin.requests(path) == 2


def test_background_avif_mode_answers_webp_then_upgrades_the_stored_variant(
    origin: OriginServer, jpeg: bytes
) -> None:
    path = unique()
    serve(origin, path, jpeg)
    url = f"{path}?w=150&auto=format"
    with (
        running_proxy(config(origin.url, avif_mode="background")) as server,
        httpx.Client(base_url=server.url, timeout=20) as c,
    ):
        first = c.get(url, headers={"accept": CHROME})
        assert first.status_code == 200 and first.headers["content-type"] == "image/webp"
        assert first.headers["vary"] == "accept"
        upgraded = first
        deadline = time.monotonic() + 60  # a hang guard: the AVIF encode runs in the background
        while upgraded.headers["content-type"] != "image/avif" and time.monotonic() < deadline:
            time.sleep(0.05)
            upgraded = c.get(url, headers={"accept": CHROME})
        assert upgraded.headers["content-type"] == "image/avif"
        assert upgraded.headers["cache-status"].startswith("edgeshield; hit")
        assert upgraded.headers["etag"] != first.headers["etag"]
        assert decode(upgraded.content).width == 150
        # Clients without AVIF keep their own variant.
        webp = c.get(url, headers={"accept": SAFARI_14})
        assert webp.headers["content-type"] == "image/webp"
    assert origin.requests(path) == 1


def test_stale_variant_is_served_when_the_origin_fails(
    origin: OriginServer, client: httpx.Client, jpeg: bytes
) -> None:
    path = unique()
    origin.script(
        path,
        body_base64=base64.b64encode(jpeg).decode(),
        headers={"content-type": "image/jpeg", "cache-control": "max-age=1, stale-if-error=60"},
    )
    url = f"{path}?w=70&fm=webp"
    first = client.get(url)
    assert first.status_code == 200
    before = transforms(client)
    time.sleep(1.2)
    origin.script(path, status=503, body="down", headers={"content-type": "text/plain"})
    stale = client.get(url)
    assert stale.status_code == 200 and stale.content == first.content
    assert "fwd=stale" in stale.headers["cache-status"]
    assert "detail=stale-if-error" in stale.headers["cache-status"]
    assert transforms(client) == before
    assert origin.requests(path) == 2
