"""RFC 9111 behaviour of the whole proxy, against a real origin process on loopback."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from tests.support.origin_server import OriginServer, gen_bytes
from tests.support.proxy_server import ProxyServer

# Caching semantics hold on every server engine (tests/conftest.py).
ON_EVERY_ENGINE = True


def unique(prefix: str = "/t") -> str:
    return f"{prefix}/{uuid.uuid4().hex}"


@pytest.fixture
def client(proxy: ProxyServer):
    with httpx.Client(base_url=proxy.url, timeout=10) as c:
        yield c


def test_miss_then_hit_with_age_and_cache_status(
    origin: OriginServer, client: httpx.Client
) -> None:
    path = unique()
    origin.script(path, body="hello", headers={"cache-control": "max-age=60", "etag": '"v1"'})
    first = client.get(path)
    assert first.status_code == 200 and first.text == "hello"
    assert first.headers["cache-status"].startswith("edgeshield; fwd=miss; fwd-status=200; stored")
    assert "origin;dur=" in first.headers["server-timing"]
    second = client.get(path)
    assert second.text == "hello"
    assert second.headers["cache-status"].startswith("edgeshield; hit; ttl=")
    assert second.headers["cache-status"].endswith("detail=memory")
    assert int(second.headers["age"]) >= 0
    assert second.headers["etag"] == '"v1"'
    assert second.headers["accept-ranges"] == "bytes"
    assert origin.requests(path) == 1


def test_head_miss_fills_the_cache_with_a_get(origin: OriginServer, client: httpx.Client) -> None:
    path = unique()
    origin.script(path, body="abcdef", headers={"cache-control": "max-age=60"})
    head = client.head(path)
    assert head.status_code == 200 and head.content == b"" and head.headers["content-length"] == "6"
    assert client.get(path).text == "abcdef"
    assert origin.requests(path) == 1 and origin.requests(path, "HEAD") == 0


@pytest.mark.parametrize("warm", [False, True], ids=["miss", "hit"])
def test_ranges_answered_locally(origin: OriginServer, client: httpx.Client, warm: bool) -> None:
    path = unique()
    origin.script(
        path, size=1000, headers={"cache-control": "max-age=60", "content-type": "video/mp4"}
    )
    data = gen_bytes(0, 1000)
    if warm:
        client.get(path)
    single = client.get(path, headers={"range": "bytes=10-19"})
    assert single.status_code == 206
    assert single.headers["content-range"] == "bytes 10-19/1000"
    assert single.content == data[10:20]
    suffix = client.get(path, headers={"range": "bytes=-5"})
    assert suffix.status_code == 206 and suffix.content == data[-5:]
    multi = client.get(path, headers={"range": "bytes=0-1,100-102"})
    assert multi.status_code == 206
    assert multi.headers["content-type"].startswith("multipart/byteranges; boundary=")
    assert data[0:2] in multi.content and data[100:103] in multi.content
    assert b"Content-Range: bytes 100-102/1000" in multi.content
    assert int(multi.headers["content-length"]) == len(multi.content)
    bad = client.get(path, headers={"range": "bytes=5000-6000"})
    assert bad.status_code == 416 and bad.headers["content-range"] == "bytes */1000"
    garbage = client.get(path, headers={"range": "bytes=abc"})
    assert garbage.status_code == 200 and garbage.content == data
    assert origin.requests(path) == 1
    assert "range" not in origin.stats()["last_headers"][path]


def test_if_range_mismatch_serves_full(origin: OriginServer, client: httpx.Client) -> None:
    path = unique()
    origin.script(path, size=100, headers={"cache-control": "max-age=60", "etag": '"a"'})
    client.get(path)
    assert client.get(path, headers={"range": "bytes=0-9", "if-range": '"a"'}).status_code == 206
    assert client.get(path, headers={"range": "bytes=0-9", "if-range": '"b"'}).status_code == 200


@pytest.mark.parametrize("warm", [False, True], ids=["miss", "hit"])
def test_conditionals_answered_locally(
    origin: OriginServer, client: httpx.Client, warm: bool
) -> None:
    path = unique()
    lm = "Tue, 01 Sep 2026 10:00:00 GMT"
    origin.script(
        path,
        body="x" * 50,
        headers={"cache-control": "max-age=60", "etag": '"e1"', "last-modified": lm},
    )
    if warm:
        client.get(path)
    inm = client.get(path, headers={"if-none-match": 'W/"e1", "zz"'})
    assert inm.status_code == 304 and inm.content == b"" and inm.headers["etag"] == '"e1"'
    assert client.get(path, headers={"if-none-match": '"other"'}).status_code == 200
    assert client.get(path, headers={"if-modified-since": lm}).status_code == 304
    assert (
        client.get(path, headers={"if-modified-since": "Mon, 01 Jan 2024 00:00:00 GMT"}).status_code
        == 200
    )
    assert client.get(path, headers={"if-match": '"nope"'}).status_code == 412
    assert origin.requests(path) == 1
    assert origin.stats()["conditional"].get(path, 0) == 0


def test_stale_entry_is_revalidated_and_a_304_refreshes_it(
    origin: OriginServer, client: httpx.Client
) -> None:
    path = unique()
    origin.script(path, body="payload", headers={"cache-control": "max-age=1", "etag": '"r1"'})
    assert client.get(path).text == "payload"
    time.sleep(1.2)
    again = client.get(path)
    assert again.text == "payload"
    assert again.headers["cache-status"].startswith("edgeshield; fwd=stale; fwd-status=304")
    assert origin.stats()["not_modified"].get(path) == 1
    third = client.get(path)
    assert third.headers["cache-status"].startswith("edgeshield; hit")
    assert origin.requests(path) == 2


def test_stale_while_revalidate_serves_stale_and_refreshes_once(
    origin: OriginServer, client: httpx.Client
) -> None:
    path = unique()
    origin.script(
        path, body="v1", headers={"cache-control": "max-age=1, stale-while-revalidate=30"}
    )
    client.get(path)
    time.sleep(1.2)
    origin.script(path, body="v2", headers={"cache-control": "max-age=60"}, delay=0.3)
    stale = [client.get(path) for _ in range(5)]
    assert all(r.text == "v1" for r in stale)
    assert all("hit; ttl=-" in r.headers["cache-status"] for r in stale)
    origin.wait_for(lambda s: s["requests"].get(f"GET {path}") == 2)
    time.sleep(0.5)
    assert client.get(path).text == "v2"
    assert origin.requests(path) == 2


def test_negative_caching_of_404(origin: OriginServer, client: httpx.Client) -> None:
    path = unique("/missing")
    for _ in range(3):
        assert client.get(path).status_code == 404
    assert origin.requests(path) == 1


@pytest.mark.parametrize(
    ("headers", "request_headers"),
    [
        ({"cache-control": "no-store"}, {}),
        ({"cache-control": "private, max-age=60"}, {}),
        ({"cache-control": "max-age=60", "set-cookie": "a=b"}, {}),
        ({"cache-control": "max-age=60"}, {"authorization": "Bearer x"}),
        ({"cache-control": "max-age=60", "vary": "*"}, {}),
    ],
    ids=["no-store", "private", "set-cookie", "authorization", "vary-star"],
)
def test_not_stored(
    origin: OriginServer,
    client: httpx.Client,
    headers: dict[str, str],
    request_headers: dict[str, str],
) -> None:
    path = unique()
    origin.script(path, body="secret", headers=headers)
    for _ in range(3):
        r = client.get(path, headers=request_headers)
        assert r.status_code == 200 and r.text == "secret"
        assert "; hit" not in r.headers["cache-status"]
    assert origin.requests(path) == 3


def test_authorization_with_public_response_is_stored(
    origin: OriginServer, client: httpx.Client
) -> None:
    path = unique()
    origin.script(path, body="pub", headers={"cache-control": "public, max-age=60"})
    client.get(path, headers={"authorization": "Bearer x"})
    assert client.get(path).headers["cache-status"].startswith("edgeshield; hit")
    assert origin.requests(path) == 1


def test_vary_keeps_variants_apart(origin: OriginServer, client: httpx.Client) -> None:
    path = unique()
    origin.script(
        path, body="same", headers={"cache-control": "max-age=60", "vary": "Accept-Language"}
    )
    client.get(path, headers={"accept-language": "en"})
    client.get(path, headers={"accept-language": "fr"})
    assert (
        client.get(path, headers={"accept-language": "en"})
        .headers["cache-status"]
        .startswith("edgeshield; hit")
    )
    assert (
        client.get(path, headers={"accept-language": "fr"})
        .headers["cache-status"]
        .startswith("edgeshield; hit")
    )
    assert origin.requests(path) == 2


def test_cdn_cache_control_takes_precedence_and_surrogate_control_is_stripped(
    origin: OriginServer, client: httpx.Client
) -> None:
    path = unique()
    origin.script(
        path,
        body="x",
        headers={
            "cache-control": "no-store",
            "cdn-cache-control": "max-age=60",
            "surrogate-control": "max-age=5",
        },
    )
    first = client.get(path)
    assert "surrogate-control" not in first.headers
    assert first.headers["cache-control"] == "no-store"  # what browsers should do is unchanged
    assert client.get(path).headers["cache-status"].startswith("edgeshield; hit")
    assert origin.requests(path) == 1


def test_unsafe_request_invalidates(origin: OriginServer, client: httpx.Client) -> None:
    path = unique()
    origin.script(path, body="doc", headers={"cache-control": "max-age=60"})
    client.get(path)
    assert client.post(path, content=b"update").status_code == 200
    assert origin.requests(path, "POST") == 1
    assert client.get(path).headers["cache-status"].startswith("edgeshield; fwd=miss")
    assert origin.requests(path) == 2


@pytest.mark.parametrize(
    ("method", "path", "headers", "status"),
    [
        ("GET", "/a/%zz", {}, 400),
        ("GET", "/a/%00b", {}, 400),
        ("GET", "/" + "a" * 9000, {}, 414),
        ("GET", "/big-headers", {"x-big": "y" * 40000}, 431),
        ("TRACE", "/a", {}, 501),
    ],
)
def test_bad_requests_get_clear_4xx(
    client: httpx.Client, method: str, path: str, headers: dict[str, str], status: int
) -> None:
    r = client.request(method, path, headers=headers)
    assert r.status_code == status
    assert r.headers.get("content-type", "text/plain").startswith("text/plain")
    assert "Traceback" not in r.text


@pytest.mark.parametrize(
    ("mode", "status"),
    [("hang", 504), ("reset", 502)],
)
def test_origin_failures_before_head(
    origin: OriginServer, client: httpx.Client, mode: str, status: int
) -> None:
    path = unique()
    origin.script(path, body="x", mode=mode, headers={"cache-control": "max-age=60"})
    r = client.get(path)
    assert r.status_code == status
    assert "fwd=miss" in r.headers["cache-status"]


@pytest.mark.parametrize("mode", ["short", "close-mid"])
def test_truncated_origin_body_is_never_stored(
    origin: OriginServer, client: httpx.Client, mode: str
) -> None:
    path = unique()
    origin.script(path, size=200_000, mode=mode, headers={"cache-control": "max-age=60"})
    for _ in range(2):
        with pytest.raises(httpx.HTTPError):
            client.get(path)
    assert origin.requests(path) == 2


def test_stale_if_error_when_origin_answers_500(origin: OriginServer, client: httpx.Client) -> None:
    path = unique()
    origin.script(path, body="good", headers={"cache-control": "max-age=1, stale-if-error=60"})
    client.get(path)
    time.sleep(1.2)
    origin.script(path, status=500, body="boom", headers={"cache-control": "no-store"})
    r = client.get(path)
    assert r.status_code == 200 and r.text == "good"
    assert "fwd=stale; fwd-status=500" in r.headers["cache-status"]


def test_metrics_expose_requests_and_offload(origin: OriginServer, client: httpx.Client) -> None:
    import re

    def series(text: str, pattern: str) -> float:
        return sum(float(m.group(1)) for m in re.finditer(rf"^{pattern} (\S+)$", text, re.M))

    def read() -> tuple[float, float, float]:
        text = client.get("/metrics").text
        hits = series(text, r'edgeshield_requests_total\{[^}]*cache="hit"[^}]*\}')
        sent = series(text, r'edgeshield_client_bytes_total\{route="\*/"\}')
        fetched = series(text, r'edgeshield_origin_bytes_total\{origin="main"\}')
        return hits, sent, fetched

    path = unique()
    origin.script(path, size=5000, headers={"cache-control": "max-age=60"})
    hits, sent, fetched = read()
    for _ in range(3):
        client.get(path)
    hits2, sent2, fetched2 = read()
    # offload is derivable: 15000 bytes to clients for 5000 from the origin
    assert (hits2 - hits, sent2 - sent, fetched2 - fetched) == (2, 15000, 5000)
    text = client.get("/metrics").text
    assert 'edgeshield_cache_bytes{tier="memory"}' in text
    assert "edgeshield_request_duration_seconds_bucket" in text


def test_ops_endpoints(client: httpx.Client) -> None:
    assert client.get("/healthz").text == "ok\n"
    ready = client.get("/readyz").json()
    assert ready["ready"] is True and ready["origins"] == ["main"]


def test_variants_beyond_the_cap_are_served_but_not_stored(
    origin: OriginServer, client: httpx.Client
) -> None:
    path = unique()
    origin.script(path, body="v", headers={"cache-control": "max-age=60", "vary": "x-variant"})
    for i in range(16):  # the default cap
        client.get(path, headers={"x-variant": str(i)})
    assert (
        client.get(path, headers={"x-variant": "3"})
        .headers["cache-status"]
        .startswith("edgeshield; hit")
    )
    for _ in range(2):
        r = client.get(path, headers={"x-variant": "overflow"})
        assert r.status_code == 200 and "hit" not in r.headers["cache-status"]
    assert origin.requests(path) == 18


def test_invalid_cache_control_from_the_origin_is_treated_as_stale(
    origin: OriginServer, client: httpx.Client
) -> None:
    path = unique()
    origin.script(path, body="v", headers={"cache-control": "max-age=abc"})
    for _ in range(2):
        r = client.get(path)
        assert r.status_code == 200 and "hit" not in r.headers["cache-status"]
    assert origin.requests(path) == 2


def test_never_an_open_relay(origin: OriginServer, proxy: ProxyServer) -> None:
    """An absolute-form target naming another host still goes to the configured origin."""
    import socket

    path = unique()
    origin.script(path, body="configured origin", headers={"cache-control": "max-age=60"})
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
        elsewhere = "198.51.100.7:81"  # TEST-NET-2: never contacted, only named
        request = f"GET http://{elsewhere}{path} HTTP/1.1\r\nHost: {elsewhere}\r\n"
        request += "Connection: close\r\n\r\n"
        sock.sendall(request.encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"configured origin")
    assert origin.requests(path) == 1
    connect = httpx.Client(base_url=proxy.url).request("CONNECT", "/")
    assert connect.status_code in (400, 501)


def test_unsatisfiable_range_on_a_miss(origin: OriginServer, client: httpx.Client) -> None:
    path = unique()
    origin.script(path, size=1000, headers={"cache-control": "max-age=60"})
    r = client.get(path, headers={"range": "bytes=2000-"})
    assert r.status_code == 416 and r.headers["content-range"] == "bytes */1000"
    # The 416 came from the one fetch, which goes on to store the object: the next request
    # is a hit, or joins that fetch if it is still under way (a busy machine).
    again = client.get(path)
    assert again.status_code == 200 and len(again.content) == 1000
    assert origin.requests(path) == 1


def test_range_on_a_chunked_miss_is_ignored_then_answered_from_cache(
    origin: OriginServer, client: httpx.Client
) -> None:
    path = unique()
    origin.script(path, size=1000, chunked=True, headers={"cache-control": "max-age=60"})
    first = client.get(path, headers={"range": "bytes=0-9"})
    assert first.status_code == 200 and first.content == gen_bytes(0, 1000)
    second = client.get(path, headers={"range": "bytes=0-9"})
    assert second.status_code == 206 and second.content == gen_bytes(0, 10)


def test_ranges_of_an_object_too_large_to_keep(origin: OriginServer, client: httpx.Client) -> None:
    """Above the per-object memory limit (16 MiB): a single range streams at once, several
    ranges are ignored (full body), and nothing is stored."""
    path = unique()
    size = 20 * 1024 * 1024
    origin.script(path, size=size, headers={"cache-control": "max-age=60"})
    single = client.get(path, headers={"range": f"bytes={size - 10}-"})
    assert single.status_code == 206 and single.content == gen_bytes(size - 10, 10)
    multi = client.get(path, headers={"range": "bytes=0-0,5-5"})
    assert multi.status_code == 200 and len(multi.content) == size
    assert "stored" not in multi.headers["cache-status"]
    assert origin.requests(path) == 2


def test_http11_without_host_is_refused(proxy: ProxyServer) -> None:
    import socket

    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
        sock.sendall(b"GET /x HTTP/1.1\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    # granian hands a missing Host over as an empty one
    assert data.startswith(b"HTTP/1.1 400")
    assert b"missing host" in data or b"empty host" in data


def test_a_method_the_parser_does_not_know(
    origin: OriginServer, client: httpx.Client, engine: str | None
) -> None:
    """uvicorn's parser (llhttp) refuses a method outside its list; granian hands any
    token method over, and it is relayed like any other uncacheable method."""
    path = unique()
    origin.script(path, status=418, body="short and stout")
    r = client.request("BREW", path)
    if engine == "uvicorn":
        assert r.status_code == 400
    else:
        assert (r.status_code, r.text) == (418, "short and stout")
        assert origin.requests(path, method="BREW") == 1
    assert "Traceback" not in r.text


def test_operations_endpoints_take_get_and_head_only(client: httpx.Client) -> None:
    for path in ("/metrics", "/healthz", "/readyz"):
        r = client.post(path)
        assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD"
        assert "date" in r.headers
    assert client.head("/healthz").status_code == 200


def test_upstream_cache_status_is_kept_as_a_list(
    origin: OriginServer, client: httpx.Client
) -> None:
    """Chained caches (RFC 9211 2): the upstream member first, ours appended; and the
    upstream's Accept-Ranges does not duplicate ours."""
    path = unique()
    origin.script(
        path,
        body="chained",
        headers={
            "cache-control": "max-age=60",
            "cache-status": "upstream; hit",
            "accept-ranges": "bytes",
        },
    )
    for expected in ("upstream; hit, edgeshield; fwd=miss", "upstream; hit, edgeshield; hit"):
        r = client.get(path)
        assert r.headers["cache-status"].startswith(expected)
        assert r.headers.get_list("accept-ranges") == ["bytes"]


def test_revalidated_200_is_not_labelled_stale_if_error(
    origin: OriginServer, client: httpx.Client
) -> None:
    path = unique()
    origin.script(path, body="one", headers={"cache-control": "max-age=1"})
    client.get(path)
    time.sleep(1.2)
    origin.script(path, body="two", headers={"cache-control": "max-age=60"})
    r = client.get(path)
    assert r.text == "two"
    assert r.headers["cache-status"].startswith("edgeshield; fwd=stale; fwd-status=200; stored")
    assert "stale-if-error" not in r.headers["cache-status"]
