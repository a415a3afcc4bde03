"""Self-tests of the scriptable test origin (tests/support/origin_server.py)."""

from __future__ import annotations

import base64
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.origin_server import OriginServer, gen_bytes, running_origin
from tests.support.ports import free_port, port_open, wait_for_port


@pytest.fixture(scope="module")
def server() -> Iterator[OriginServer]:
    with running_origin() as srv:
        yield srv


@pytest.fixture
def origin(server: OriginServer) -> Iterator[OriginServer]:
    if not server.running:
        server.start()
    server.reset()
    yield server


@pytest.fixture
def client(origin: OriginServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=origin.url, timeout=5.0, trust_env=False) as c:
        yield c


def raw_exchange(
    port: int, request: bytes, *, timeout: float = 2.0
) -> tuple[bytes, BaseException | None]:
    """Send raw bytes, read until EOF/reset/timeout; return (data, the error if any)."""
    data = b""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        while True:
            try:
                chunk = sock.recv(65536)
            except (TimeoutError, ConnectionResetError) as exc:
                return data, exc
            if not chunk:
                return data, None
            data += chunk


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode()


def split(data: bytes) -> tuple[bytes, dict[str, str], bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return lines[0].encode(), headers, body


# -- content and defaults --------------------------------------------------------------


def test_gen_bytes_is_deterministic_and_offset_consistent() -> None:
    whole = gen_bytes(0, 600_000)
    assert len(whole) == 600_000
    assert whole[:3] == b"\x00\x01\x02" and whole[251] == 0 and whole[252] == 1
    assert gen_bytes(12_345, 300_000) == whole[12_345:312_345]
    assert gen_bytes(5, 0) == b""


def test_gen_path_streams_generated_bytes(client: httpx.Client) -> None:
    r = client.get("/gen/1000000")
    assert r.status_code == 200
    assert r.content == gen_bytes(0, 1_000_000)
    assert r.headers["content-length"] == "1000000"
    assert r.headers["cache-control"] == "max-age=3600"
    assert r.headers["etag"] == '"gen-1000000"'
    assert "last-modified" in r.headers and "date" in r.headers


def test_unknown_path_is_404_cacheable_briefly(client: httpx.Client) -> None:
    r = client.get("/nope")
    assert r.status_code == 404
    assert r.headers["cache-control"] == "max-age=5"


def test_script_body_headers_persist_and_reset(origin: OriginServer, client: httpx.Client) -> None:
    origin.script("/a.jpg", body="hello", headers={"X-Thing": "1", "cache-control": "no-cache"})
    for _ in range(2):
        r = client.get("/a.jpg")
        assert r.status_code == 200 and r.text == "hello"
        assert r.headers["x-thing"] == "1" and r.headers["cache-control"] == "no-cache"
    origin.script("/a.jpg", status=503, body="down")
    assert client.get("/a.jpg").status_code == 503
    origin.reset()
    assert client.get("/a.jpg").status_code == 404
    assert origin.stats()["requests"] == {"GET /a.jpg": 1}


def test_binary_body_and_size(origin: OriginServer, client: httpx.Client) -> None:
    payload = bytes(range(256)) * 3
    origin.scripts(
        [
            {"path": "/bin", "body_base64": base64.b64encode(payload).decode()},
            {"path": "/sized", "size": 70_000},
        ]
    )
    assert client.get("/bin").content == payload
    assert client.get("/sized").content == gen_bytes(0, 70_000)


def test_bad_script_is_rejected(origin: OriginServer) -> None:
    with pytest.raises(RuntimeError, match="400"):
        origin.script("/x", mode="sideways")
    with pytest.raises(RuntimeError, match="400"):
        origin.script("/x", nonsense=1)


def test_head_has_length_but_no_body(origin: OriginServer) -> None:
    origin.script("/h", size=5000)
    data, err = raw_exchange(
        origin.port or 0, b"HEAD /h HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    assert err is None
    status, headers, body = split(data)
    assert status.startswith(b"HTTP/1.1 200")
    assert headers["content-length"] == "5000" and body == b""


# -- conditionals and ranges -----------------------------------------------------------


def test_if_none_match_gives_304_with_validators(
    origin: OriginServer, client: httpx.Client
) -> None:
    origin.script("/c", body="x", headers={"etag": '"v1"', "cache-control": "max-age=60"})
    r = client.get("/c", headers={"if-none-match": 'W/"v0", "v1"'})
    assert r.status_code == 304 and r.content == b""
    assert r.headers["etag"] == '"v1"' and r.headers["cache-control"] == "max-age=60"
    assert client.get("/c", headers={"if-none-match": '"v2"'}).status_code == 200
    stats = origin.stats()
    assert stats["conditional"] == {"/c": 2}
    assert stats["not_modified"] == {"/c": 1}


def test_if_modified_since(origin: OriginServer, client: httpx.Client) -> None:
    lm = "Wed, 01 May 2024 10:00:00 GMT"
    origin.script("/m", body="x", headers={"last-modified": lm})
    assert client.get("/m", headers={"if-modified-since": lm}).status_code == 304
    earlier = "Tue, 30 Apr 2024 10:00:00 GMT"
    assert client.get("/m", headers={"if-modified-since": earlier}).status_code == 200


def test_conditionals_can_be_ignored(origin: OriginServer, client: httpx.Client) -> None:
    origin.script("/c", body="x", headers={"etag": '"v1"'}, honor_conditionals=False)
    assert client.get("/c", headers={"if-none-match": '"v1"'}).status_code == 200


def test_ranges_only_when_asked(origin: OriginServer, client: httpx.Client) -> None:
    origin.script("/r", size=1000)
    r = client.get("/r", headers={"range": "bytes=10-19"})
    assert r.status_code == 200 and len(r.content) == 1000
    origin.script("/r", size=1000, honor_range=True)
    r = client.get("/r", headers={"range": "bytes=10-19"})
    assert r.status_code == 206
    assert r.headers["content-range"] == "bytes 10-19/1000"
    assert r.content == gen_bytes(10, 10)
    r = client.get("/r", headers={"range": "bytes=-5"})
    assert r.content == gen_bytes(995, 5)
    assert client.get("/r", headers={"range": "bytes=5000-"}).status_code == 416


# -- misbehaviour modes ----------------------------------------------------------------


def test_delay_before_head(origin: OriginServer, client: httpx.Client) -> None:
    origin.script("/d", body="x", delay=0.3)
    t0 = time.monotonic()
    assert client.get("/d").status_code == 200
    assert time.monotonic() - t0 >= 0.3


def test_hold_after_sends_the_rest_only_once_released(
    origin: OriginServer, client: httpx.Client
) -> None:
    origin.script("/held", size=5000, hold_after=100)
    with client.stream("GET", "/held") as r:
        chunks = r.iter_raw()
        held = b""
        while len(held) < 100:  # all the origin sends before the release
            held += next(chunks)
        assert held == gen_bytes(0, 100)
        origin.release("/held")
        rest = b"".join(chunks)
    assert held + rest == gen_bytes(0, 5000)


def test_hang_never_answers(origin: OriginServer) -> None:
    origin.script("/h", mode="hang")
    data, err = raw_exchange(origin.port or 0, get("/h"), timeout=0.3)
    assert data == b"" and isinstance(err, TimeoutError)
    assert origin.requests("/h") == 1


def test_reset_closes_with_rst(origin: OriginServer) -> None:
    origin.script("/x", mode="reset", body="never")
    data, err = raw_exchange(origin.port or 0, get("/x"))
    assert data == b"" and isinstance(err, ConnectionResetError)


def test_short_declares_more_than_it_sends(origin: OriginServer) -> None:
    origin.script("/s", mode="short", size=1000)
    data, err = raw_exchange(origin.port or 0, get("/s"))
    assert err is None
    _, headers, body = split(data)
    assert headers["content-length"] == "1000"
    assert body == gen_bytes(0, 500)


def test_long_sends_more_than_declared(origin: OriginServer) -> None:
    origin.script("/l", mode="long", size=1000, extra=300)
    data, err = raw_exchange(origin.port or 0, get("/l"))
    assert err is None
    _, headers, body = split(data)
    assert headers["content-length"] == "1000"
    assert body == gen_bytes(0, 1300)


def test_trickle_sends_one_byte_at_a_time(origin: OriginServer) -> None:
    origin.script("/t", mode="trickle", size=4, trickle_interval=0.1)
    t0 = time.monotonic()
    data, err = raw_exchange(
        origin.port or 0, b"GET /t HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    assert err is None
    assert split(data)[2] == gen_bytes(0, 4)
    assert time.monotonic() - t0 >= 0.3


def test_chunked_has_no_content_length(origin: OriginServer, client: httpx.Client) -> None:
    origin.script("/c", mode="chunked", size=600_000)
    data, _ = raw_exchange(
        origin.port or 0, b"GET /c HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    _, headers, _ = split(data)
    assert headers["transfer-encoding"] == "chunked" and "content-length" not in headers
    r = client.get("/c")
    assert r.content == gen_bytes(0, 600_000)


def test_close_mid_resets_after_part_of_the_body(origin: OriginServer) -> None:
    origin.script("/cm", mode="close-mid", size=100_000, close_after=1000)
    data, err = raw_exchange(origin.port or 0, get("/cm"))
    _, headers, body = split(data)
    assert headers["content-length"] == "100000"
    assert len(body) <= 1000 and body == gen_bytes(0, len(body))
    assert err is None or isinstance(err, ConnectionResetError)


def test_chunked_flag_combines_with_close_mid(origin: OriginServer, client: httpx.Client) -> None:
    origin.script("/cm", mode="close-mid", size=10_000, chunked=True)
    with pytest.raises(httpx.HTTPError):
        client.get("/cm")


# -- stats -----------------------------------------------------------------------------


def test_stats_shape_and_last_headers(origin: OriginServer, client: httpx.Client) -> None:
    client.get("/gen/10?x=1", headers={"X-Probe": "a"})
    client.head("/gen/10")
    client.post("/p", content=b"body")
    stats = origin.stats()
    assert stats["requests"] == {"GET /gen/10": 1, "HEAD /gen/10": 1, "POST /p": 1}
    assert stats["total"] == 3
    assert stats["last_target"]["/gen/10"] == "/gen/10"
    assert stats["last_headers"]["/p"]["content-length"] == "4"
    assert "x-probe" not in stats["last_headers"]["/gen/10"]  # the HEAD came last
    assert set(stats) >= {"conditional", "not_modified", "connections", "open_connections"}


def test_connections_are_counted_without_control_traffic(origin: OriginServer) -> None:
    with httpx.Client(base_url=origin.url, trust_env=False) as c:
        for _ in range(3):
            c.get("/gen/1")
    with httpx.Client(base_url=origin.url, trust_env=False) as c:
        c.get("/gen/1")
    assert origin.stats()["connections"] == 2


def test_chunked_request_body_is_read(origin: OriginServer) -> None:
    req = (
        b"POST /up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        b"3\r\nabc\r\n0\r\n\r\n"
    )
    data, _ = raw_exchange(origin.port or 0, req)
    assert data.startswith(b"HTTP/1.1 404")
    assert origin.requests("/up", "POST") == 1


# -- process control -------------------------------------------------------------------


def test_restart_keeps_port_and_kill_refuses(origin: OriginServer) -> None:
    port = origin.port
    origin.script("/a", body="x")
    origin.restart()
    assert origin.port == port and port_open(port or 0)
    assert origin.stats()["total"] == 0  # a fresh process
    origin.kill()
    assert not port_open(port or 0)
    origin.start(port)
    wait_for_port(port or 0, timeout=2)
    assert origin.running


def test_ports_helpers() -> None:
    port = free_port()
    assert not port_open(port)
    with pytest.raises(TimeoutError):
        wait_for_port(port, timeout=0.1)
