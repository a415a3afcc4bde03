"""Hostile origin answers replayed against a real `edgeshield serve` (issue 11, items 3
and 4): partial answers to full requests, bodies longer than their Content-Length,
statuses no client may be given, invalid CDN-Cache-Control, origins that die after a
store, If-Modified-Since without Last-Modified, the variant cap.

Each attack asserts a clean, complete answer (read whole off a raw socket where the
connection matters), no poisoned entry (a clean client afterwards gets the right bytes),
and no traceback in the proxy's log."""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Iterator
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path

import httpx
import pytest

from tests.support.origin_server import OriginServer, gen_bytes, running_origin
from tests.support.proxy_server import ProxyServer, proxy_config, running_proxy

Response = tuple[int, dict[str, str], bytes]


def unique(prefix: str = "/attack") -> str:
    return f"{prefix}/{uuid.uuid4().hex}"


def read_response(sock: socket.socket) -> Response:
    """One whole HTTP/1.1 response framed by Content-Length (every answer here has one).
    A dropped connection or a short body fails the test."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection dropped before a response head: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers["content-length"])
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, f"connection dropped mid-body: {len(body)} of {length} bytes"
        body += chunk
    return status, headers, body[:length]


def raw_get(port: int, path: str, extra: str = "", *, requests: int = 1) -> list[Response]:
    """`requests` GETs of `path` one after the other on one keep-alive connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        out = []
        for _ in range(requests):
            # the Host httpx sends, so a clean client afterwards asks for the same key
            request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{extra}\r\n"
            sock.sendall(request.encode())
            out.append(read_response(sock))
        return out


def access_lines(log: Path, path: str, timeout: float = 10.0) -> list[dict[str, object]]:
    """The access-log lines for `path` (written within a second; the timeout is a guard)."""
    deadline = time.monotonic() + timeout
    while True:
        text = log.read_text() if log.exists() else ""
        lines = [json.loads(line) for line in text.splitlines() if path in line]
        if lines or time.monotonic() > deadline:
            return lines
        time.sleep(0.1)


@pytest.fixture(scope="module")
def access_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("access") / "access.log"


@pytest.fixture(scope="module")
def proxy(origin_server: OriginServer, access_log: Path) -> Iterator[ProxyServer]:
    """One pooled origin connection, so any reuse of a damaged connection shows."""
    config = proxy_config(
        origin_server.url,
        origin={"first_byte_timeout": 2.0, "read_timeout": 1.0, "max_connections": 1},
        cache_settings={"max_variants": 2},
    ).replace('access_log = "off"', f"access_log = {json.dumps(str(access_log))}")
    with running_proxy(config) as server:
        yield server
    assert "Traceback" not in server.log()


@pytest.fixture
def client(proxy: ProxyServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=proxy.url, timeout=15) as c:
        yield c


# -- 206 / Content-Range to a request without Range -----------------------------------


@pytest.mark.parametrize(
    ("status", "content_range"),
    [(206, "bytes 0-9/100"), (200, "bytes 0-9/100"), (206, None)],
    ids=["206", "200-with-content-range", "206-without-content-range"],
)
def test_a_partial_answer_to_a_full_request_is_a_502_and_never_stored(
    origin: OriginServer,
    proxy: ProxyServer,
    client: httpx.Client,
    status: int,
    content_range: str | None,
) -> None:
    path = unique()
    headers = {"cache-control": "max-age=600", "etag": '"v1"'}
    if content_range:
        headers["content-range"] = content_range
    origin.script(path, status=status, body=gen_bytes(0, 10).hex()[:10], headers=headers)
    (answer,) = raw_get(proxy.port, path)
    assert answer[0] == 502
    assert answer[2] == b"502 origin answered a range to a full request\n"
    # nothing kept: a clean client gets the whole object once the origin behaves
    origin.script(path, size=100, headers={"cache-control": "max-age=600", "etag": '"v1"'})
    full = client.get(path)
    assert full.status_code == 200 and full.content == gen_bytes(0, 100)
    part = client.get(path, headers={"range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == gen_bytes(10, 10)
    assert part.headers["content-range"] == "bytes 10-19/100"
    assert origin.requests(path) == 2  # the 206, then one fill: the range was a hit


def test_request_range_is_not_forwarded(
    origin: OriginServer, proxy: ProxyServer, client: httpx.Client
) -> None:
    path = unique()
    origin.script(path, size=100, headers={"cache-control": "max-age=600"})
    (answer,) = raw_get(proxy.port, path, "Request-Range: bytes=0-9\r\n")
    assert answer[0] == 200 and answer[2] == gen_bytes(0, 100)
    assert "request-range" not in origin.stats()["last_headers"][path]


def test_pass_mode_relays_a_206_only_to_a_range(origin: OriginServer) -> None:
    """Pass mode (caching off) forwards Range, so there a 206 is the answer asked for;
    to a request without Range it is the same 502 as on a cache fetch."""
    path, partial = unique(), unique()
    origin.script(path, size=100, honor_range=True)
    origin.script(
        partial, status=206, body="0123456789", headers={"content-range": "bytes 0-9/100"}
    )
    with running_proxy(proxy_config(origin.url, cache={"enabled": False})) as passing:
        ranged = raw_get(passing.port, path, "Range: bytes=0-9\r\n")[0]
        assert ranged[0] == 206 and ranged[2] == gen_bytes(0, 10)
        assert raw_get(passing.port, partial)[0][0] == 502
        assert "Traceback" not in passing.log()


# -- a body longer than its Content-Length ----------------------------------------------


def test_a_body_longer_than_content_length_never_poisons_the_pool(
    origin: OriginServer, proxy: ProxyServer, client: httpx.Client
) -> None:
    path = unique()
    origin.script(
        path,
        body="hello",
        mode="long",
        keep_open=True,  # the extra bytes sit where the next response would start
        extra=1024,
        headers={"cache-control": "max-age=600"},
    )
    ((status, _, body),) = raw_get(proxy.port, path)
    assert status == 200 and body == b"hello"  # as framed: the declared bytes
    # The pool has one connection: had it gone back, the next request would read the
    # extra bytes as its response (a 502).
    for i in range(20):
        r = client.get(f"/gen/{1000 + i}")
        assert r.status_code == 200 and r.content == gen_bytes(0, 1000 + i)
    # what is kept is the message as framed, nothing of the bytes beyond it
    again = client.get(path)
    assert again.status_code == 200 and again.content == b"hello"
    assert again.headers["cache-status"].startswith("edgeshield; hit")


# -- statuses no client may be given -----------------------------------------------------


@pytest.mark.parametrize("status", [999, 600, 101])
def test_an_invalid_origin_status_is_a_502_and_a_log_line(
    origin: OriginServer, proxy: ProxyServer, access_log: Path, status: int
) -> None:
    path = unique()
    origin.script(path, status=status, body="weird", headers={"cache-control": "max-age=60"})
    first, second = raw_get(proxy.port, path, requests=2)  # the connection stays usable
    for answer in (first, second):
        # (a 101 already fails in httpcore: "invalid response")
        assert answer[0] == 502 and answer[2].startswith(b"502 invalid ")
    lines = access_lines(access_log, path)
    assert lines and all(line["status"] == 502 for line in lines)


# -- CDN-Cache-Control (RFC 9213) ---------------------------------------------------------


@pytest.mark.parametrize("cdn", ["max-age=10000, &&&&&", 'max-age="10000"', "max-age=-5"])
def test_an_invalid_cdn_cache_control_does_not_override_no_store(
    origin: OriginServer, client: httpx.Client, cdn: str
) -> None:
    path = unique()
    origin.script(
        path, body="private", headers={"cache-control": "no-store", "cdn-cache-control": cdn}
    )
    for _ in range(2):
        r = client.get(path)
        assert r.status_code == 200 and r.text == "private"
        assert "stored" not in r.headers["cache-status"]
    assert origin.requests(path) == 2


def test_a_valid_cdn_cache_control_still_does(origin: OriginServer, client: httpx.Client) -> None:
    path = unique()
    origin.script(
        path,
        body="shared",
        headers={"cache-control": "no-store", "cdn-cache-control": "max-age=60"},
    )
    assert "stored" in client.get(path).headers["cache-status"]
    assert client.get(path).headers["cache-status"].startswith("edgeshield; hit")
    assert origin.requests(path) == 1


# -- If-Modified-Since against an entry without Last-Modified -----------------------------


def test_ims_against_a_date_only_entry(origin: OriginServer, client: httpx.Client) -> None:
    path = unique()
    origin.script(path, body="dated", headers={"cache-control": "max-age=600"})
    first = client.get(path)
    assert "last-modified" not in first.headers
    date = parsedate_to_datetime(first.headers["date"]).timestamp()
    for ims, expected in ((date, 304), (date + 3600, 304), (date - 3600, 200)):
        r = client.get(path, headers={"if-modified-since": formatdate(ims, usegmt=True)})
        assert r.status_code == expected
        assert r.content == (b"" if expected == 304 else b"dated")
    assert origin.requests(path) == 1


# -- the variant cap ----------------------------------------------------------------------


def test_no_stored_claim_past_the_variant_cap(origin: OriginServer, client: httpx.Client) -> None:
    path = unique()
    origin.script(
        path, body="hello", headers={"cache-control": "max-age=600", "vary": "accept-language"}
    )
    for lang in ("en", "de"):  # max_variants = 2
        r = client.get(path, headers={"accept-language": lang})
        assert "; stored" in r.headers["cache-status"]
    for _ in range(2):
        r = client.get(path, headers={"accept-language": "fr"})
        assert r.status_code == 200 and r.text == "hello"
        assert "stored" not in r.headers["cache-status"]
        assert "fwd=miss" in r.headers["cache-status"]
    assert (
        client.get(path, headers={"accept-language": "en"})
        .headers["cache-status"]
        .startswith("edgeshield; hit")
    )
    assert origin.requests(path) == 4


# -- the origin goes away after a store ---------------------------------------------------


@pytest.fixture
def own_origin() -> Iterator[OriginServer]:
    """An origin this test may kill."""
    with running_origin() as server:
        yield server


def _stale_proxy(origin: OriginServer, **cache: object) -> ProxyServer:
    config = proxy_config(
        origin.url,
        origin={"connect_timeout": 2.0, "first_byte_timeout": 0.5, "read_timeout": 1.0},
        cache=cache,
    )
    return ProxyServer(config).start()


@pytest.mark.parametrize("failure", ["killed", "hanging"])
def test_a_stale_copy_stands_in_for_an_unreachable_origin(
    own_origin: OriginServer, failure: str
) -> None:
    proxy = _stale_proxy(own_origin)
    try:
        with httpx.Client(base_url=proxy.url, timeout=15) as client:
            ok, strict = unique(), unique()
            own_origin.script(ok, body="kept copy", headers={"cache-control": "max-age=1"})
            own_origin.script(
                strict, body="strict", headers={"cache-control": "max-age=1, must-revalidate"}
            )
            assert client.get(ok).text == "kept copy"
            assert client.get(strict).text == "strict"
            if failure == "killed":
                own_origin.kill()
            else:
                own_origin.script(ok, mode="hang")
                own_origin.script(strict, mode="hang")
            time.sleep(1.5)  # both copies are now stale (max-age=1)
            stale = client.get(ok)
            assert stale.status_code == 200 and stale.text == "kept copy"
            kind = "error" if failure == "killed" else "timeout"
            assert stale.headers["cache-status"].startswith("edgeshield; fwd=stale")
            assert f"detail=origin-{kind}" in stale.headers["cache-status"]
            refused = client.get(strict)  # must-revalidate: never served stale
            assert refused.status_code == (502 if failure == "killed" else 504)
            assert refused.text != "strict"
        assert "Traceback" not in proxy.log()
    finally:
        proxy.stop()


def test_use_stale_off_for_a_route(own_origin: OriginServer) -> None:
    proxy = _stale_proxy(own_origin, use_stale=[])
    try:
        with httpx.Client(base_url=proxy.url, timeout=15) as client:
            path = unique()
            own_origin.script(path, body="copy", headers={"cache-control": "max-age=1"})
            assert client.get(path).text == "copy"
            own_origin.kill()
            time.sleep(1.5)
            assert client.get(path).status_code == 502
    finally:
        proxy.stop()
