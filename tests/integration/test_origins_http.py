"""HttpOrigin against the real test origin server (no mocked transport)."""

from __future__ import annotations

import asyncio
import base64
import gzip
import socket
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from config.schema import HttpOrigin as HttpOriginSettings
from routing.origins import build_origin
from routing.origins.base import (
    BadOriginPath,
    OriginBodyError,
    OriginBodyTimeout,
    OriginError,
    OriginRequest,
    OriginTimeout,
    OriginUnavailable,
)
from routing.origins.http import HttpOrigin, HttpResponse, parse_content_length
from tests.support.origin_server import OriginServer, gen_bytes, running_origin
from tests.support.ports import free_port

FAST = {"connect_timeout": 1.0, "first_byte_timeout": 2.0, "read_timeout": 2.0}


@pytest.fixture(scope="module")
def server() -> Iterator[OriginServer]:
    with running_origin() as srv:
        yield srv


@pytest.fixture
def origin_server(server: OriginServer) -> OriginServer:
    server.reset()
    return server


def settings(url: str, **kw: Any) -> HttpOriginSettings:
    return HttpOriginSettings.model_validate({"kind": "http", "url": url, **FAST, **kw})


@pytest.fixture
async def make() -> AsyncIterator[Any]:
    made: list[HttpOrigin] = []

    def factory(url: str, **kw: Any) -> HttpOrigin:
        origin = HttpOrigin("up", settings(url, **kw))
        made.append(origin)
        return origin

    yield factory
    for origin in made:
        await origin.aclose()


@pytest.fixture
def http(origin_server: OriginServer, make: Any) -> HttpOrigin:
    origin: HttpOrigin = make(origin_server.url)
    return origin


async def fetch(origin: HttpOrigin, path: str, method: str = "GET", **kw: Any) -> HttpResponse:
    path, _, query = path.partition("?")
    return await origin.fetch(OriginRequest(method, path, query=query, **kw))


async def body_of(resp: HttpResponse) -> bytes:
    return b"".join([chunk async for chunk in resp.body()])


async def fetch_body(origin: HttpOrigin, path: str, **kw: Any) -> tuple[HttpResponse, bytes]:
    resp = await fetch(origin, path, **kw)
    return resp, await body_of(resp)


# -- the happy path --------------------------------------------------------------------


async def test_streams_generated_body(http: HttpOrigin) -> None:
    resp = await fetch(http, "/gen/3000000")
    assert resp.status == 200 and resp.content_length == 3_000_000
    chunks = [c async for c in resp.body()]
    assert len(chunks) > 1
    assert b"".join(chunks) == gen_bytes(0, 3_000_000)
    headers = dict(resp.headers)
    assert headers["etag"] == '"gen-3000000"' and headers["cache-control"] == "max-age=3600"


async def test_request_headers_host_override_and_extra(
    origin_server: OriginServer, make: Any
) -> None:
    origin = make(
        origin_server.url,
        host_header="media.example",
        headers={"X-Shield-Token": "s3cret", "User-Agent": "edgeshield"},
    )
    req_headers = [
        ("host", "client.example"),
        ("if-none-match", '"v1"'),
        ("user-agent", "curl/8"),
        ("accept", "image/avif"),
    ]
    _, _ = await fetch_body(origin, "/gen/10", headers=req_headers)
    seen = origin_server.stats()["last_headers"]["/gen/10"]
    assert seen["host"] == "media.example"
    assert seen["x-shield-token"] == "s3cret"
    assert seen["user-agent"] == "edgeshield"  # the configured header wins
    assert seen["if-none-match"] == '"v1"' and seen["accept"] == "image/avif"
    # httpx adds nothing of its own (an Accept-Encoding would change what gets cached).
    assert "accept-encoding" not in seen


async def test_host_in_extra_headers_is_the_override(
    origin_server: OriginServer, make: Any
) -> None:
    origin = make(origin_server.url, headers={"Host": "cdn.example"})
    await fetch_body(origin, "/gen/1", headers=[("host", "client.example"), ("expect", "x")])
    seen = origin_server.stats()["last_headers"]["/gen/1"]
    assert seen["host"] == "cdn.example" and "expect" not in seen


async def test_abandoned_body_then_next_request(
    origin_server: OriginServer, http: HttpOrigin
) -> None:
    resp = await fetch(http, "/gen/5000000")
    chunks = resp.body()
    async for _ in chunks:
        break
    await chunks.aclose()  # type: ignore[attr-defined]
    await resp.aclose()
    resp, body = await fetch_body(http, "/gen/10")
    assert body == gen_bytes(0, 10)


async def test_host_defaults_to_the_origin_authority(
    origin_server: OriginServer, http: HttpOrigin
) -> None:
    await fetch_body(http, "/gen/1", headers=[("host", "client.example")])
    seen = origin_server.stats()["last_headers"]["/gen/1"]
    assert seen["host"] == f"127.0.0.1:{origin_server.port}"


@pytest.mark.parametrize("base", ["/media", "/media/"])
async def test_base_url_path_is_a_prefix(origin_server: OriginServer, make: Any, base: str) -> None:
    origin = make(origin_server.url + base)
    origin_server.script("/media/a%20b.jpg", body="img")
    resp, body = await fetch_body(origin, "/a%20b.jpg?w=100&q=%2F")
    assert resp.status == 200 and body == b"img"
    stats = origin_server.stats()
    assert stats["requests"] == {"GET /media/a%20b.jpg": 1}
    assert stats["last_target"]["/media/a%20b.jpg"] == "/media/a%20b.jpg?w=100&q=%2F"


async def test_hop_by_hop_headers_are_stripped(
    origin_server: OriginServer, http: HttpOrigin
) -> None:
    origin_server.script(
        "/h",
        body="x",
        headers=[
            ["Connection", "keep-alive, X-Hop"],
            ["Keep-Alive", "timeout=5"],
            ["X-Hop", "1"],
            ["Proxy-Connection", "keep-alive"],
            ["Trailer", "x-sum"],
            ["Upgrade", "h2c"],
            ["X-Mixed-Case", "kept"],
            ["Set-Cookie", "a=1"],
            ["Set-Cookie", "b=2"],
        ],
    )
    resp, _ = await fetch_body(http, "/h")
    names = [k for k, _ in resp.headers]
    for hop in ("connection", "keep-alive", "x-hop", "proxy-connection", "trailer", "upgrade"):
        assert hop not in names
    assert ("x-mixed-case", "kept") in resp.headers
    assert [v for k, v in resp.headers if k == "set-cookie"] == ["a=1", "b=2"]
    assert "content-length" in names


async def test_chunked_response_has_no_length(
    origin_server: OriginServer, http: HttpOrigin
) -> None:
    origin_server.script("/c", mode="chunked", size=500_000)
    resp, body = await fetch_body(http, "/c")
    assert resp.content_length is None and body == gen_bytes(0, 500_000)
    assert "transfer-encoding" not in dict(resp.headers)


async def test_content_encoding_passes_through_raw(
    origin_server: OriginServer, http: HttpOrigin
) -> None:
    compressed = gzip.compress(b"hello " * 1000)
    origin_server.script(
        "/z",
        body_base64=base64.b64encode(compressed).decode(),
        headers={"content-encoding": "gzip", "content-type": "text/plain"},
    )
    resp, body = await fetch_body(http, "/z", headers=[("accept-encoding", "gzip")])
    assert body == compressed
    assert dict(resp.headers)["content-encoding"] == "gzip"
    assert resp.content_length == len(compressed)


async def test_head_and_304_have_no_body(origin_server: OriginServer, http: HttpOrigin) -> None:
    resp, body = await fetch_body(http, "/gen/5000", method="HEAD")
    assert resp.status == 200 and body == b"" and resp.content_length == 5000
    resp, body = await fetch_body(http, "/gen/5000", headers=[("if-none-match", '"gen-5000"')])
    assert resp.status == 304 and body == b""
    assert origin_server.stats()["not_modified"] == {"/gen/5000": 1}


async def test_request_body_is_sent(origin_server: OriginServer, http: HttpOrigin) -> None:
    resp, _ = await fetch_body(
        http,
        "/upload",
        method="POST",
        headers=[("content-length", "999"), ("content-type", "text/plain")],
        body=b"payload",
    )
    assert resp.status == 404
    seen = origin_server.stats()["last_headers"]["/upload"]
    assert seen["content-length"] == "7" and seen["content-type"] == "text/plain"
    assert origin_server.requests("/upload", "POST") == 1


async def test_sequential_requests_reuse_one_connection(
    origin_server: OriginServer, http: HttpOrigin
) -> None:
    for _ in range(5):
        await fetch_body(http, "/gen/70000")
    # An abandoned body must not poison the pool: the connection is dropped instead.
    resp = await fetch(http, "/gen/3000000")
    await resp.aclose()
    await resp.aclose()
    await fetch_body(http, "/gen/10")
    stats = origin_server.stats()
    assert stats["total"] == 7
    assert stats["connections"] == 2


# -- failures --------------------------------------------------------------------------


async def expect_head_error(origin: HttpOrigin, path: str, cls: type[OriginError]) -> OriginError:
    with pytest.raises(cls) as info:
        await fetch(origin, path)
    err = info.value
    assert err.origin == "up" and len(err.reason) < 40
    assert "Traceback" not in err.reason and "http" not in err.reason
    return err


async def test_connect_refused(make: Any) -> None:
    port = free_port()  # nothing listens there
    origin = make(f"http://127.0.0.1:{port}")
    err = await expect_head_error(origin, "/x", OriginUnavailable)
    assert err.reason == "connect failed" and err.status == 502


async def test_connect_timeout(make: Any) -> None:
    # A listening socket whose accept queue is full: further SYNs are left unanswered.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(8):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            fillers.append(s)
        await asyncio.sleep(0.05)
        origin = make(f"http://127.0.0.1:{port}", connect_timeout=0.2)
        err = await expect_head_error(origin, "/x", OriginTimeout)
        assert err.reason == "connect timeout" and err.status == 504
    finally:
        for s in fillers:
            s.close()
        listener.close()


async def test_hang_is_a_first_byte_timeout(origin_server: OriginServer, make: Any) -> None:
    origin_server.script("/h", mode="hang")
    origin = make(origin_server.url, first_byte_timeout=0.3)
    t0 = time.monotonic()
    err = await expect_head_error(origin, "/h", OriginTimeout)
    assert err.reason == "first byte timeout"
    assert time.monotonic() - t0 > 0.25  # it waited the timeout (a lower bound cannot flake)


async def test_first_byte_timeout_not_read_timeout_governs_the_head(
    origin_server: OriginServer, make: Any
) -> None:
    origin_server.script("/slowhead", size=1000, delay=0.3)
    origin = make(origin_server.url, first_byte_timeout=2.0, read_timeout=0.1)
    resp, body = await fetch_body(origin, "/slowhead")
    assert resp.status == 200 and body == gen_bytes(0, 1000)


async def test_reset_before_head(origin_server: OriginServer, http: HttpOrigin) -> None:
    origin_server.script("/r", mode="reset")
    err = await expect_head_error(http, "/r", OriginUnavailable)
    assert err.reason in ("connection reset", "connection closed")


async def test_invalid_content_length(origin_server: OriginServer, http: HttpOrigin) -> None:
    origin_server.script("/bad", body="abc", headers={"content-length": "3x"})
    await expect_head_error(http, "/bad", OriginUnavailable)


def test_parse_content_length() -> None:
    assert parse_content_length([("content-length", "12")]) == 12
    assert parse_content_length([("content-length", "12, 12")]) == 12
    assert parse_content_length([]) is None
    for bad in ("-1", "1.5", "", "12, 13", "\u0661"):
        with pytest.raises(ValueError):
            parse_content_length([("content-length", bad)])


async def test_short_body(origin_server: OriginServer, http: HttpOrigin) -> None:
    origin_server.script("/s", mode="short", size=200_000)
    resp = await fetch(http, "/s")
    assert resp.status == 200 and resp.content_length == 200_000
    with pytest.raises(OriginBodyError) as info:
        await body_of(resp)
    assert info.value.reason == "incomplete body"


@pytest.mark.parametrize("chunked", [False, True])
async def test_close_mid_body(origin_server: OriginServer, http: HttpOrigin, chunked: bool) -> None:
    origin_server.script("/cm", mode="close-mid", size=200_000, chunked=chunked)
    resp = await fetch(http, "/cm")
    with pytest.raises(OriginBodyError) as info:
        await body_of(resp)
    assert info.value.reason in ("incomplete body", "connection reset")


async def test_long_body_is_cut_at_content_length_and_not_reused(
    origin_server: OriginServer, http: HttpOrigin
) -> None:
    origin_server.script("/l", mode="long", size=10_000, extra=5000)
    resp, body = await fetch_body(http, "/l")
    assert body == gen_bytes(0, 10_000)
    # The extra bytes must not be read as the next response.
    for _ in range(3):
        resp, body = await fetch_body(http, "/gen/100")
        assert resp.status == 200 and body == gen_bytes(0, 100)


async def test_trickle_stall_is_a_read_timeout(origin_server: OriginServer, make: Any) -> None:
    origin_server.script("/t", mode="trickle", size=20, trickle_interval=0.3)
    origin = make(origin_server.url, read_timeout=0.1)
    resp = await fetch(origin, "/t")
    assert resp.status == 200
    with pytest.raises(OriginBodyTimeout) as info:
        await body_of(resp)
    assert isinstance(info.value, OriginTimeout) and isinstance(info.value, OriginBodyError)
    assert info.value.reason == "read timeout"


async def test_total_timeout_during_body(origin_server: OriginServer, make: Any) -> None:
    origin_server.script("/t", mode="trickle", size=200, trickle_interval=0.02)
    origin = make(origin_server.url, read_timeout=1.0, total_timeout=0.4)
    resp = await fetch(origin, "/t")
    received = 0
    with pytest.raises(OriginBodyTimeout) as info:
        async for chunk in resp.body():
            received += len(chunk)
    assert info.value.reason == "total timeout"
    assert 0 < received < 200


async def test_total_timeout_before_head(origin_server: OriginServer, make: Any) -> None:
    origin_server.script("/h", mode="hang")
    origin = make(origin_server.url, first_byte_timeout=5.0, total_timeout=0.3)
    err = await expect_head_error(origin, "/h", OriginTimeout)
    assert err.reason == "total timeout"  # not the 5 s first-byte one


async def test_origin_restart_between_requests(
    origin_server: OriginServer, http: HttpOrigin
) -> None:
    await fetch_body(http, "/gen/10")
    origin_server.restart()
    try:
        resp, body = await fetch_body(http, "/gen/10")
    except OriginUnavailable:
        # A keep-alive connection the origin closed may be noticed only on use;
        # the next attempt goes over a fresh connection.
        resp, body = await fetch_body(http, "/gen/10")
    assert resp.status == 200 and body == gen_bytes(0, 10)


async def test_origin_killed_mid_body(make: Any) -> None:
    with running_origin() as srv:
        srv.script("/t", mode="trickle", size=100, trickle_interval=0.02)
        origin = make(srv.url)
        resp = await fetch(origin, "/t")
        chunks = resp.body()
        await anext(chunks)
        srv.kill()
        with pytest.raises(OriginBodyError):
            async for _ in chunks:
                pass


async def test_odd_paths(origin_server: OriginServer, http: HttpOrigin) -> None:
    resp, _ = await fetch_body(http, "/caf\u00e9 #1.jpg")
    assert resp.status == 404
    assert "GET /caf%C3%A9%20%231.jpg" in origin_server.stats()["requests"]
    with pytest.raises(BadOriginPath):
        await fetch(http, "/\udcff")


async def test_build_origin_makes_an_http_origin(origin_server: OriginServer) -> None:
    origin = build_origin("up", settings(origin_server.url))
    try:
        assert isinstance(origin, HttpOrigin) and origin.name == "up"
        resp = await origin.fetch(OriginRequest("GET", "/gen/3"))
        assert resp.status == 200
        await resp.aclose()
    finally:
        await origin.aclose()
