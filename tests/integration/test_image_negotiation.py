"""Plain image URLs on a route with `auto_format` (imgproxy's AUTO_WEBP/AUTO_AVIF), over
a real `edgeshield serve`: AVIF or WebP for browsers that name them, the origin's own
bytes for everyone else, Vary: Accept on both, each form cached once and purged with its
source."""

from __future__ import annotations

import base64
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


def photo(width: int = 480, height: int = 320) -> pyvips.Image:
    xyz = pyvips.Image.xyz(width, height)
    base = (xyz[0] * (255 / width)).bandjoin([xyz[1] * (255 / height), xyz[0] * 0 + 128])
    noise = pyvips.Image.gaussnoise(width, height, sigma=12, mean=0, seed=7)
    return (base + noise).cast("uchar").copy(interpretation="srgb")


def config(origin_url: str) -> str:
    return f"""
[server]
access_log = "off"

[origins.main]
kind = "http"
url = {toml_value(origin_url)}

[images]
threads = 2

[[routes]]
path_prefix = "/auto"
origin = "main"
images = true
auto_format = true

[[routes]]
path_prefix = "/"
origin = "main"
images = true
"""


@pytest.fixture(scope="module")
def proxy(origin_server: OriginServer) -> Iterator[ProxyServer]:
    with running_proxy(config(origin_server.url)) as server:
        yield server


@pytest.fixture
def client(proxy: ProxyServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=proxy.url, timeout=30) as c:
        yield c


@pytest.fixture(scope="module")
def jpeg() -> bytes:
    return bytes(photo().jpegsave_buffer(Q=85))


def serve(origin: OriginServer, path: str, body: bytes, content_type: str = "image/jpeg") -> None:
    headers = {"content-type": content_type, "cache-control": "max-age=300", "etag": '"v1"'}
    origin.script(path, body_base64=base64.b64encode(body).decode(), headers=headers)


def unique(prefix: str = "/auto", ext: str = ".jpg") -> str:
    return f"{prefix}/{uuid.uuid4().hex}{ext}"


def get(client: httpx.Client, path: str, accept: str) -> httpx.Response:
    response = client.get(path, headers={"accept": accept})
    assert response.status_code == 200, response.text
    return response


def varies_on_accept(response: httpx.Response) -> bool:
    tokens = {t.strip().lower() for t in response.headers.get("vary", "").split(",")}
    return "accept" in tokens


def test_each_client_gets_its_format_once_from_one_origin_fetch(
    origin: OriginServer, client: httpx.Client, jpeg: bytes
) -> None:
    path = unique()
    serve(origin, path, jpeg)
    answers = {}
    for name, accept in (("chrome", CHROME), ("safari", SAFARI_14), ("curl", CURL)):
        first, second = get(client, path, accept), get(client, path, accept)
        assert varies_on_accept(first) and varies_on_accept(second)
        assert second.headers["cache-status"].startswith("edgeshield; hit")
        assert second.content == first.content
        answers[name] = first
    assert answers["chrome"].headers["content-type"] == "image/avif"
    assert answers["safari"].headers["content-type"] == "image/webp"
    for name in ("chrome", "safari"):
        image = pyvips.Image.new_from_buffer(answers[name].content, "")
        assert (image.width, image.height) == (480, 320)  # the same picture, converted
        assert len(answers[name].content) < len(jpeg)
    # curl: the origin's bytes, untouched.
    assert answers["curl"].headers["content-type"] == "image/jpeg"
    assert answers["curl"].content == jpeg
    assert origin.requests(path) == 1


def test_head_and_conditional_requests_of_the_converted_form(
    origin: OriginServer, client: httpx.Client, jpeg: bytes
) -> None:
    path = unique()
    serve(origin, path, jpeg)
    full = get(client, path, CHROME)
    head = client.head(path, headers={"accept": CHROME})
    assert head.status_code == 200 and head.headers["content-type"] == "image/avif"
    assert head.headers["etag"] == full.headers["etag"] and varies_on_accept(head)
    again = client.get(path, headers={"accept": CHROME, "if-none-match": full.headers["etag"]})
    assert again.status_code == 304 and varies_on_accept(again)


def test_purging_the_source_drops_its_converted_forms(
    origin: OriginServer, client: httpx.Client, jpeg: bytes
) -> None:
    path = unique()
    serve(origin, path, jpeg)
    for accept in (CHROME, SAFARI_14, CURL):
        get(client, path, accept)
        assert get(client, path, accept).headers["cache-status"].startswith("edgeshield; hit")
    purged = client.request("PURGE", path)
    assert purged.status_code == 200, purged.text
    # Each converted form is made again (from the source fetched again once).
    for accept in (CHROME, SAFARI_14):
        after = get(client, path, accept)
        assert "fwd=miss" in after.headers["cache-status"], (accept, after.headers)
    assert origin.requests(path) == 2
    assert get(client, path, CURL).content == jpeg


@pytest.mark.parametrize(
    ("ext", "body", "content_type"),
    [
        (".jpg", b"<html>not an image</html>", "text/html"),
        (".png", "webp", "image/png"),  # a WebP behind a .png name: kept as it is
        (".jpg", "big", "image/jpeg"),  # beyond the largest output: not resized
    ],
)
def test_sources_that_are_not_converted_answer_their_own_bytes(
    origin: OriginServer, client: httpx.Client, ext: str, body: object, content_type: str
) -> None:
    if body == "webp":
        body = bytes(photo(60, 40).webpsave_buffer())
    elif body == "big":
        body = bytes(photo(4200, 64).jpegsave_buffer(Q=50))
    assert isinstance(body, bytes)
    path = unique(ext=ext)
    serve(origin, path, body, content_type)
    for _ in range(2):
        answer = get(client, path, CHROME)
        assert answer.content == body and answer.headers["content-type"] == content_type
        assert varies_on_accept(answer)
    assert origin.requests(path) == 1


def test_only_image_names_on_routes_that_ask_for_it(
    origin: OriginServer, client: httpx.Client, jpeg: bytes
) -> None:
    css = unique(ext=".css")
    serve(origin, css, b"a{}", "text/css")
    answer = get(client, css, CHROME)
    assert answer.content == b"a{}" and not varies_on_accept(answer)
    other_route = unique(prefix="/img")
    serve(origin, other_route, jpeg)
    answer = get(client, other_route, CHROME)
    assert answer.content == jpeg and not varies_on_accept(answer)


def test_image_options_on_such_a_route_work_as_before(
    origin: OriginServer, client: httpx.Client, jpeg: bytes
) -> None:
    path = unique()
    serve(origin, path, jpeg)
    sized = get(client, f"{path}?w=100&fm=png", CHROME)
    assert sized.headers["content-type"] == "image/png"
    assert pyvips.Image.new_from_buffer(sized.content, "").width == 100
    for option, value in (
        ("bri", "500"),
        ("con", "nan"),
        ("sat", "1e999"),
        ("ar", "1:0"),
        ("ar", "99999999:1"),
        ("fill-color", "%00"),
        ("fill", "blur"),
    ):
        bad = client.get(f"{path}?fit=crop&{option}={value}", headers={"accept": CHROME})
        assert bad.status_code == 400 and f"'{option}'" in bad.text, (option, bad.text)
    assert get(client, path, CURL).content == jpeg
    assert origin.requests(path) == 1
