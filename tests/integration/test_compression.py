"""Response compression through a real edgeshield and a real origin: each coding decodes
to the identity bytes, a form is made once and purged with its URL, Range and small or
non-text bodies stay identity, an origin's own coding is passed through and never
reaches a client that does not take it, ETags and Vary per coding, HEAD like GET."""

from __future__ import annotations

import base64
import gzip
import http.client
import json
import re
import uuid
from collections.abc import Iterator

import brotli
import httpx
import pytest
import zstandard

from tests.support.origin_server import OriginServer
from tests.support.proxy_server import ProxyServer, running_proxy

TOKEN = "compress-token-0123456789abcdef"
AUTH = {"authorization": f"Bearer {TOKEN}"}
CACHED = {"cache-control": "max-age=300"}
DECODE = {
    "gzip": gzip.decompress,
    "br": brotli.decompress,
    "zstd": lambda data: zstandard.ZstdDecompressor().decompressobj().decompress(data),
}


def playlist(n: int = 400) -> str:
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:6"]
    for i in range(n):
        lines += ["#EXTINF:6.000,", f"segment-{i:05d}.ts"]
    return "\n".join(lines) + "\n#EXT-X-ENDLIST\n"


def document() -> str:
    items = [{"id": i, "title": f"Episode {i}", "tags": ["news", "daily"]} for i in range(300)]
    return json.dumps({"items": items})


@pytest.fixture(scope="module")
def cproxy(origin_server: OriginServer) -> Iterator[ProxyServer]:
    config = f"""
[server]
access_log = "off"
[admin]
token = "{TOKEN}"
[origins.main]
kind = "http"
url = "{origin_server.url}"
[[routes]]
path_prefix = "/off"
origin = "main"
[routes.cache]
compress = false
[[routes]]
origin = "main"
"""
    with running_proxy(config) as proxy:
        yield proxy


@pytest.fixture
def client(cproxy: ProxyServer) -> Iterator[httpx.Client]:
    # No Accept-Encoding of its own: each test says what it accepts, and reads raw bytes.
    with httpx.Client(base_url=cproxy.url, timeout=30, headers={"accept-encoding": ""}) as c:
        yield c


def unique(suffix: str = ".json") -> str:
    return f"/c/{uuid.uuid4().hex}{suffix}"


def fetch(client: httpx.Client, path: str, **headers: str) -> tuple[httpx.Response, bytes]:
    """The response and its body as sent (not decoded)."""
    with client.stream("GET", path, headers=headers) as resp:
        return resp, b"".join(resp.iter_raw())


def compressions(client: httpx.Client, coding: str) -> float:
    text = client.get("/metrics", headers=AUTH).text
    m = re.search(rf'^edgeshield_compressions_total{{encoding="{coding}"}} (\S+)$', text, re.M)
    return float(m.group(1)) if m else 0.0


@pytest.mark.parametrize("coding", ["gzip", "br", "zstd"])
def test_each_coding_decodes_to_the_identity_bytes(
    origin: OriginServer, client: httpx.Client, coding: str
) -> None:
    path = unique(".m3u8")
    text = playlist()
    headers = {**CACHED, "content-type": "application/vnd.apple.mpegurl", "etag": '"pl1"'}
    origin.script(path, body=text, headers=headers)
    plain, raw = fetch(client, path)
    assert raw == text.encode() and "content-encoding" not in plain.headers
    assert plain.headers["vary"].lower() == "accept-encoding"
    assert plain.headers["etag"] == '"pl1"'
    resp, raw = fetch(client, path, **{"accept-encoding": coding})
    assert resp.headers["content-encoding"] == coding
    assert DECODE[coding](raw) == text.encode()
    assert len(raw) < len(text) // 3 and resp.headers["content-length"] == str(len(raw))
    assert resp.headers["etag"] == f'"pl1-{coding}"'
    assert resp.headers["vary"].lower() == "accept-encoding"
    assert resp.headers["cache-status"].startswith("edgeshield; hit")
    assert origin.requests(path) == 1


def test_hits_without_accept_encoding_say_vary_too(
    origin: OriginServer, client: httpx.Client, cproxy: ProxyServer
) -> None:
    """No Accept-Encoding field at all: the fast path answers from the stored headers,
    which carry Vary so that a cache downstream keys the identity form correctly."""
    path = unique()
    origin.script(path, body=document(), headers={**CACHED, "content-type": "application/json"})
    host, port = cproxy.url.removeprefix("http://").split(":")
    for _ in range(3):
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        conn.putrequest("GET", path, skip_accept_encoding=True)
        conn.endheaders()
        resp = conn.getresponse()
        body = resp.read()
        conn.close()
        assert resp.status == 200 and resp.getheader("content-encoding") is None
        assert body == document().encode()
        assert resp.getheader("vary").lower() == "accept-encoding"
    assert resp.getheader("cache-status").startswith("edgeshield; hit")


def test_a_form_is_made_once_and_the_miss_is_compressed(
    origin: OriginServer, client: httpx.Client
) -> None:
    path = unique()
    body = document()
    origin.script(path, body=body, headers={**CACHED, "content-type": "application/json"})
    before = compressions(client, "gzip")
    first, raw = fetch(client, path, **{"accept-encoding": "gzip, deflate"})
    assert first.headers["content-encoding"] == "gzip"
    assert first.headers["cache-status"].startswith("edgeshield; fwd=miss")
    assert gzip.decompress(raw) == body.encode()
    for _ in range(5):
        again, raw = fetch(client, path, **{"accept-encoding": "gzip"})
        assert again.headers["content-encoding"] == "gzip"
        assert gzip.decompress(raw) == body.encode()
    assert compressions(client, "gzip") == before + 1
    assert origin.requests(path) == 1


def test_negotiation_by_q_values_and_preference(origin: OriginServer, client: httpx.Client) -> None:
    path = unique()
    origin.script(path, body=document(), headers={**CACHED, "content-type": "application/json"})
    cases = {
        "gzip, deflate, br, zstd": "br",
        "gzip;q=1, br;q=0.5": "gzip",
        "zstd, gzip": "zstd",
        "*": "br",
        "br;q=0, *;q=0.3": "zstd",
        "identity": None,
        "gzip;q=0.4, identity;q=0.9": None,
        "identity;q=0, compress": None,  # nothing acceptable: identity anyway
        "deflate": None,
    }
    for accept, expected in cases.items():
        resp, _ = fetch(client, path, **{"accept-encoding": accept})
        assert resp.status_code == 200
        assert resp.headers.get("content-encoding") == expected, accept


def test_if_none_match_on_the_encoded_etag_is_304(
    origin: OriginServer, client: httpx.Client
) -> None:
    path = unique()
    headers = {**CACHED, "content-type": "application/json", "etag": '"doc7"'}
    origin.script(path, body=document(), headers=headers)
    fetch(client, path)
    gz = {"accept-encoding": "gzip"}
    not_modified, _ = fetch(client, path, **gz, **{"if-none-match": '"doc7-gzip"'})
    assert not_modified.status_code == 304 and not_modified.headers["etag"] == '"doc7-gzip"'
    assert not_modified.headers["vary"].lower() == "accept-encoding"
    # The identity form's validator does not match the gzip form: a full 200.
    full, _ = fetch(client, path, **gz, **{"if-none-match": '"doc7"'})
    assert full.status_code == 200 and full.headers["content-encoding"] == "gzip"
    plain, _ = fetch(client, path, **{"if-none-match": '"doc7"'})
    assert plain.status_code == 304


def test_range_is_answered_on_the_identity_form(origin: OriginServer, client: httpx.Client) -> None:
    path = unique()
    body = document().encode()
    origin.script(path, body=body.decode(), headers={**CACHED, "content-type": "application/json"})
    for _ in range(2):  # miss, then hit
        resp, raw = fetch(client, path, **{"accept-encoding": "gzip, br", "range": "bytes=10-99"})
        assert resp.status_code == 206 and "content-encoding" not in resp.headers
        assert raw == body[10:100]
        assert resp.headers["content-range"] == f"bytes 10-99/{len(body)}"


def test_head_carries_the_headers_of_get(origin: OriginServer, client: httpx.Client) -> None:
    path = unique()
    origin.script(path, body=document(), headers={**CACHED, "content-type": "application/json"})
    fetch(client, path)
    br = {"accept-encoding": "br"}
    get, raw = fetch(client, path, **br)
    head = client.head(path, headers=br)
    assert head.status_code == 200 and head.content == b""
    for name in ("content-encoding", "content-length", "etag", "vary", "content-type"):
        assert head.headers.get(name) == get.headers.get(name), name
    assert get.headers["content-length"] == str(len(raw))


@pytest.mark.parametrize(
    "case",
    ["image", "small", "no-transform", "event-stream", "route-off", "status"],
)
def test_never_compressed(origin: OriginServer, client: httpx.Client, case: str) -> None:
    path = unique("") if case != "route-off" else f"/off/{uuid.uuid4().hex}"
    headers = {**CACHED, "content-type": "application/json"}
    body = document()
    status = 200
    if case == "image":
        headers["content-type"] = "image/png"
    elif case == "small":
        body = '{"a": 1}'
    elif case == "no-transform":
        headers["cache-control"] = "max-age=300, no-transform"
    elif case == "event-stream":
        headers["content-type"] = "text/event-stream"
    elif case == "status":
        status = 404
    origin.script(path, body=body, headers=headers, status=status)
    for _ in range(2):
        resp, raw = fetch(client, path, **{"accept-encoding": "gzip, br, zstd"})
        assert resp.status_code == status
        assert "content-encoding" not in resp.headers and raw == body.encode()
    if case in ("image", "route-off"):
        assert "vary" not in resp.headers


def test_purges_remove_the_encoded_forms(origin: OriginServer, client: httpx.Client) -> None:
    path = unique()
    gz = {"accept-encoding": "gzip"}
    for n, purge in enumerate(["url", "prefix", "tag"]):
        body = document().replace("Episode", f"Episode{n}")
        headers = {**CACHED, "content-type": "application/json", "surrogate-key": "feed"}
        origin.script(path, body=body, headers=headers)
        if n == 0:
            fetch(client, path)
        _, raw = fetch(client, path, **gz)
        assert gzip.decompress(raw) == body.encode(), purge
        if purge == "url":
            job = {"urls": [f"http://127.0.0.1{path}"]}
        elif purge == "prefix":
            job = {"prefixes": ["/c/"], "host": "127.0.0.1"}
        else:
            job = {"tags": ["feed"]}
        assert client.post("/_purge", json=job, headers=AUTH).status_code in (200, 202)
    _, raw = fetch(client, path, **gz)
    assert gzip.decompress(raw) == body.encode()


def _gzip_origin(origin: OriginServer, path: str, text: str, **extra: str) -> bytes:
    packed = gzip.compress(text.encode(), mtime=0)
    headers = {**CACHED, "content-type": "application/json", "content-encoding": "gzip", **extra}
    origin.script(path, body_base64=base64.b64encode(packed).decode(), headers=headers)
    return packed


@pytest.mark.parametrize("vary", [False, True], ids=["no-vary", "vary"])
def test_origin_gzip_passes_through_and_never_reaches_a_client_without_gzip(
    origin: OriginServer, client: httpx.Client, vary: bool
) -> None:
    """An origin that ignores Accept-Encoding (an S3 object stored gzipped), with and
    without Vary: its bytes go as they are to clients taking gzip, decoded to others."""
    path = unique()
    text = document()
    packed = _gzip_origin(origin, path, text, **({"vary": "Accept-Encoding"} if vary else {}))
    gz, br = {"accept-encoding": "gzip"}, {"accept-encoding": "br"}
    for headers in [gz, {}, br, gz] * 2:
        resp, raw = fetch(client, path, **headers)
        assert resp.status_code == 200
        if headers.get("accept-encoding") == "gzip":
            assert resp.headers["content-encoding"] == "gzip" and raw == packed
        else:
            assert "content-encoding" not in resp.headers and raw == text.encode()
        assert "accept-encoding" in resp.headers["vary"].lower()


def test_origin_gzip_first_asked_without_gzip(origin: OriginServer, client: httpx.Client) -> None:
    path = unique()
    text = document()
    _gzip_origin(origin, path, text)
    resp, raw = fetch(client, path)  # the miss itself
    assert "content-encoding" not in resp.headers and raw == text.encode()
    resp, raw = fetch(client, path)
    assert "content-encoding" not in resp.headers and raw == text.encode()
