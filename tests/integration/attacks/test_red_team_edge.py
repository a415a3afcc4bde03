"""Red-team replays against what the granian engine, compression, plain-URL image
conversion, the new image options and request ids brought: each sends a hostile input to
a real `edgeshield serve` (granian, HTTP/2 by prior knowledge on, an admin listener, an
images route with auto_format) and asserts a clean refusal, no poisoned entry, bounded work.

Findings that are facts of the server engine (granian's) are asserted as documented
(docs/architecture.md, docs/deployment.md)."""

from __future__ import annotations

import base64
import gzip
import json
import socket
import struct
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events
import httpx
import pytest
import pyvips
from hpack import Encoder

from tests.support.origin_server import OriginServer
from tests.support.ports import free_port
from tests.support.proxy_server import ProxyServer, running_proxy
from tests.support.raw_http import exchange

TOKEN = "red-team-admin-token-0123456789"
HANG_GUARD = 30.0
CACHED = {"cache-control": "max-age=300"}


@pytest.fixture(scope="module")
def admin_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def edge(origin_server: OriginServer, admin_port: int) -> Iterator[ProxyServer]:
    config = f"""
[server]
access_log = "off"
http2_cleartext = true
[admin]
token = "{TOKEN}"
port = {admin_port}
host = "127.0.0.1"
[origins.main]
kind = "http"
url = "{origin_server.url}"
[[routes]]
origin = "main"
path_prefix = "/img"
images = true
auto_format = true
[[routes]]
origin = "main"
"""
    with running_proxy(config) as proxy:
        yield proxy


@pytest.fixture
def client(edge: ProxyServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=edge.url, timeout=HANG_GUARD) as c:
        yield c


def unique(prefix: str = "/rt") -> str:
    return f"{prefix}/{uuid.uuid4().hex}"


def origin_saw(origin: OriginServer, path: str) -> int:
    return sum(n for k, n in origin.stats()["requests"].items() if k.split(" ", 1)[1] == path)


# -- HTTP/1.1 framing --------------------------------------------------------------------

H = b"Host: 127.0.0.1\r\n"
SMUGGLED = b"GET /smuggled HTTP/1.1\r\n" + H + b"\r\n"


@pytest.mark.parametrize(
    "request_bytes",
    [
        # CL + TE: chunked wins, the connection closes; the "body" is never a request
        b"POST /rt HTTP/1.1\r\n" + H + b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\n" + SMUGGLED,
        b"POST /rt HTTP/1.1\r\n"
        + H
        + b"Content-Length: 4\r\nContent-Length: 40\r\n\r\nabcd"
        + SMUGGLED,
        b"POST /rt HTTP/1.1\r\n" + H + b"Content-Length: 3, 3\r\n\r\nabc" + SMUGGLED,
        b"POST /rt HTTP/1.1\r\n" + H + b"Content-Length: +3\r\n\r\nabc" + SMUGGLED,
        b"GET /rt HTTP/1.1\r\n" + H + b"X-Fold: a\r\n b\r\n\r\n" + SMUGGLED,  # obs-fold
        b"POST /rt HTTP/1.1\r\n"
        + H
        + b"Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n"
        + SMUGGLED,
        b"POST /rt HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
        b"ffffffffffffffffffff\r\nabc\r\n0\r\n\r\n" + SMUGGLED,  # chunk size overflow
        b"POST /rt HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
        b'3;ext="x\r\n' + SMUGGLED + b'"\r\nabc\r\n0\r\n\r\n',  # quoted chunk extension
        b"POST /rt HTTP/1.1\r\n"
        + H
        + b"Transfer-Encoding: chunked\r\n\r\n 3\r\nabc\r\n0\r\n\r\n"
        + SMUGGLED,
        # a GET whose declared body is a request: read as the body, not as a request
        b"GET /rt HTTP/1.1\r\n" + H + b"Content-Length: %d\r\n\r\n" % len(SMUGGLED) + SMUGGLED,
    ],
    ids=[
        "cl-te",
        "two-cl",
        "cl-list",
        "cl-plus",
        "obs-fold",
        "te-list",
        "huge-chunk",
        "chunk-ext",
        "chunk-space",
        "get-body",
    ],
)
def test_framing_attacks_never_smuggle_a_request(
    edge: ProxyServer, origin: OriginServer, request_bytes: bytes
) -> None:
    answer = exchange(edge.port, request_bytes, timeout=HANG_GUARD)
    assert answer.status in (200, 400, 404, 405, 501), answer
    assert b"Traceback" not in answer.body
    assert origin_saw(origin, "/smuggled") == 0
    assert httpx.get(edge.url + "/gen/10", timeout=HANG_GUARD).status_code == 200


def test_oversized_header_sections_are_refused(edge: ProxyServer) -> None:
    many = b"".join(b"X-%d: v\r\n" % i for i in range(2000))
    for head in (many, b"X-Big: " + b"a" * 100_000 + b"\r\n"):
        answer = exchange(edge.port, b"GET /gen/10 HTTP/1.1\r\n" + H + head + b"\r\n")
        assert answer.status == 431


# -- HTTP/2 by prior knowledge ----------------------------------------------------------


@dataclass
class H2:
    """One raw h2c connection (the `h2` library, no validation of what we send)."""

    sock: socket.socket
    conn: h2.connection.H2Connection
    status: dict[int, int] = field(default_factory=dict)
    body: dict[int, bytes] = field(default_factory=dict)
    goaway: int | None = None
    closed: bool = False

    @classmethod
    def open(cls, port: int) -> H2:
        sock = socket.create_connection(("127.0.0.1", port), timeout=HANG_GUARD)
        config = h2.config.H2Configuration(
            client_side=True, validate_outbound_headers=False, normalize_outbound_headers=False
        )
        conn = h2.connection.H2Connection(config)
        conn.initiate_connection()
        sock.sendall(conn.data_to_send())
        return cls(sock, conn)

    def send(self, data: bytes | None = None) -> bool:
        """False once the server has closed the connection."""
        try:
            self.sock.sendall(self.conn.data_to_send() if data is None else data)
        except OSError:
            self.closed = True
        return not self.closed

    def pump(self, done: object) -> None:
        """Read until `done()` is true or the server ends the connection."""
        deadline = time.monotonic() + HANG_GUARD
        while not self.closed and not done() and time.monotonic() < deadline:  # type: ignore[operator]
            try:
                data = self.sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                self.closed = True
                break
            for event in self.conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    self.status[event.stream_id] = int(dict(event.headers)[b":status"])
                elif isinstance(event, h2.events.DataReceived):
                    self.body[event.stream_id] = self.body.get(event.stream_id, b"") + event.data
                    self.conn.acknowledge_received_data(
                        event.flow_controlled_length, event.stream_id
                    )
                elif isinstance(event, h2.events.StreamEnded):
                    self.body.setdefault(event.stream_id, b"")
                elif isinstance(event, h2.events.ConnectionTerminated):
                    self.goaway = int(event.error_code)
            self.send()

    def close(self) -> None:
        self.sock.close()


def request_headers(path: str, *extra: tuple[str, str]) -> list[tuple[bytes, bytes]]:
    fields = [(":method", "GET"), (":scheme", "http"), (":authority", "127.0.0.1"), (":path", path)]
    return [(k.encode(), v.encode()) for k, v in [*fields, *extra]]


def frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    head = struct.pack(">I", len(payload))[1:] + bytes([kind, flags])
    return head + struct.pack(">I", stream) + payload


def test_h2_rapid_reset_is_cut_off_before_the_origin(
    edge: ProxyServer, origin: OriginServer
) -> None:
    prefix = unique("/reset")
    c = H2.open(edge.port)
    try:
        for i in range(5000):
            c.conn.send_headers(1 + 2 * i, request_headers(f"{prefix}/{i}"), end_stream=True)
            c.conn.reset_stream(1 + 2 * i)
            if i % 100 == 99 and not c.send():
                break
        c.send()
        c.pump(lambda: c.goaway is not None)
    finally:
        c.close()
    assert c.goaway is not None or c.closed
    started = sum(n for k, n in origin.stats()["requests"].items() if prefix in k)
    assert started < 100  # streams reset at once cost the origin (almost) nothing
    assert httpx.get(edge.url + "/gen/10", timeout=HANG_GUARD).status_code == 200


def test_h2_continuation_flood_is_bounded(edge: ProxyServer) -> None:
    c = H2.open(edge.port)
    encoder = Encoder()
    sent = 0
    try:
        c.send(frame(1, 0, 1, encoder.encode(request_headers("/gen/10"))))  # no END_HEADERS
        pad = encoder.encode([(b"x-pad", b"a" * 8000)])
        while sent < 64 * 1024 * 1024 and c.send(frame(9, 0, 1, pad)):
            sent += len(pad)
        c.pump(lambda: c.goaway is not None)
    finally:
        c.close()
    assert c.closed or c.goaway is not None
    assert sent < 16 * 1024 * 1024  # cut off long before 64 MiB of header block
    assert httpx.get(edge.url + "/gen/10", timeout=HANG_GUARD).status_code == 200


def test_h2_huge_header_list_is_refused(edge: ProxyServer) -> None:
    c = H2.open(edge.port)
    try:
        pads = [(f"x-h{i}", "v" * 100) for i in range(2000)]
        c.conn.send_headers(1, request_headers("/gen/10", *pads), end_stream=True)
        c.send()
        c.pump(lambda: c.goaway is not None or 1 in c.status)
    finally:
        c.close()
    assert c.goaway is not None or c.closed or c.status.get(1) == 431


def test_h2_authority_and_host_that_disagree_are_keyed_by_host(edge: ProxyServer) -> None:
    """granian hands the app Host and drops :authority when both are sent (RFC 9113 8.3.1
    calls the disagreement malformed; docs/architecture.md): the request is answered, and
    cached, as the Host one, never under the other authority's key."""
    c = H2.open(edge.port)
    try:
        fields = request_headers("/gen/10")
        fields[2] = (b":authority", b"other.example")
        c.conn.send_headers(1, [*fields, (b"host", b"127.0.0.1")], end_stream=True)
        c.send()
        c.pump(lambda: 1 in c.body or c.goaway is not None)
    finally:
        c.close()
    assert c.status.get(1) == 200
    other = httpx.get(f"{edge.url}/gen/10", headers={"host": "other.example"})
    assert "; hit" not in other.headers.get("cache-status", "")


# -- the admin listener ----------------------------------------------------------------


def test_admin_paths_stay_off_the_main_listener(edge: ProxyServer, admin_port: int) -> None:
    admin_host = f"127.0.0.1:{admin_port}".encode()
    auth = f"Authorization: Bearer {TOKEN}\r\n".encode()
    for request_bytes in (
        b"GET /_admin/status.json HTTP/1.1\r\nHost: " + admin_host + b"\r\n" + auth + b"\r\n",
        b"GET http://" + admin_host + b"/_admin/status.json HTTP/1.1\r\n" + H + auth + b"\r\n",
        b"PURGE /gen/10 HTTP/1.1\r\n" + H + auth + b"\r\n",
        b"GET /metrics HTTP/1.1\r\n" + H + b"\r\n",
    ):
        assert exchange(edge.port, request_bytes).status == 404
    c = H2.open(edge.port)
    try:
        fields = request_headers("/_admin/status.json", ("authorization", f"Bearer {TOKEN}"))
        fields[2] = (b":authority", admin_host)
        c.conn.send_headers(1, fields, end_stream=True)
        c.send()
        c.pump(lambda: 1 in c.body)
    finally:
        c.close()
    assert c.status.get(1) == 404


def test_the_admin_listener_wants_its_token_from_loopback_too(admin_port: int) -> None:
    url = f"http://127.0.0.1:{admin_port}/_admin/status.json"
    with httpx.Client(timeout=HANG_GUARD) as admin:
        assert admin.get(url).status_code == 401
        assert admin.get(url, headers={"x-forwarded-for": "127.0.0.1"}).status_code == 401
        assert admin.get(url, headers={"authorization": "Bearer " + "x" * 31}).status_code in (
            401,
            403,
        )
        ok = admin.get(url, headers={"authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200 and TOKEN not in ok.text


# -- request ids -----------------------------------------------------------------------


def test_a_cached_error_carries_each_requests_own_id(
    client: httpx.Client, origin: OriginServer
) -> None:
    path = unique()
    # an origin that echoes the id it was sent, stored with its 404
    origin.script(path, status=404, headers={**CACHED, "x-request-id": "first-fetch"}, body="no")
    first, second = client.get(path), client.get(path)
    assert "hit" in second.headers["cache-status"]
    assert first.headers["x-request-id"] != "first-fetch"
    # a fresh memory hit makes no id (docs/operations.md), and never shows another's
    assert second.headers.get("x-request-id") not in ("first-fetch", first.headers["x-request-id"])
    stale = client.get(path, headers={"range": "bytes=0-0"})  # a pipeline hit: its own id
    assert stale.headers["x-request-id"] not in ("first-fetch", first.headers["x-request-id"])


def test_a_clients_request_id_is_neither_sent_on_nor_reflected(
    client: httpx.Client, origin: OriginServer
) -> None:
    for forged in ("<script>alert(1)</script>", "a" * 100, "x y", "ok-looking-id"):
        path = unique()  # a miss each time: the pipeline's answer, with its id
        answer = client.get(path, headers={"x-request-id": forged})
        assert answer.status_code == 404
        assert forged not in answer.headers["x-request-id"] and forged not in answer.text
        assert origin.stats()["last_headers"][path]["x-request-id"] != forged


# -- compression -----------------------------------------------------------------------


def decoded(resp: httpx.Response, raw: bytes) -> bytes:
    return gzip.decompress(raw) if resp.headers.get("content-encoding") == "gzip" else raw


def test_encoded_forms_reach_only_clients_that_take_them(
    client: httpx.Client, origin: OriginServer
) -> None:
    """Clients alternate codings and Origin values on an object the origin varies by
    Origin; each gets a coding it named, the form's own ETag, and one body."""
    path = unique() + ".json"
    body = json.dumps([{"id": i} for i in range(400)])
    origin.script(
        path,
        headers={**CACHED, "content-type": "application/json", "etag": '"e1"', "vary": "Origin"},
        body=body,
    )
    takes = ["gzip", "", "br", "identity", "gzip;q=0, br;q=0", "*;q=0", "gzip", "x-gzip", ""]
    for accept, site in [(a, s) for a in takes for s in ("https://a", "https://b")]:
        with client.stream(
            "GET", path, headers={"accept-encoding": accept, "origin": site}
        ) as resp:
            raw = b"".join(resp.iter_raw())
        coding = resp.headers.get("content-encoding")
        named = {m.split(";")[0].strip().replace("x-gzip", "gzip") for m in accept.split(",")}
        assert coding is None or (coding in named and f"{coding};q=0" not in accept), accept
        assert "Accept-Encoding" in resp.headers["vary"] and "Origin" in resp.headers["vary"]
        assert resp.headers["etag"] == ('"e1"' if coding is None else f'"e1-{coding}"')
        if coding in (None, "gzip"):
            assert decoded(resp, raw) == body.encode()
    # a validator of one form never confirms another
    other = client.get(path, headers={"accept-encoding": "", "if-none-match": '"e1-gzip"'})
    assert other.status_code == 200 and "content-encoding" not in other.headers


def test_an_origin_coded_body_is_undone_for_clients_that_refuse_it(
    client: httpx.Client, origin: OriginServer
) -> None:
    path = unique() + ".txt"
    text = b"coded by the origin " * 200
    origin.script(
        path,
        headers={**CACHED, "content-type": "text/plain", "content-encoding": "gzip"},
        body_base64=base64.b64encode(gzip.compress(text)).decode(),
    )
    for accept in ("gzip", "", "identity", "gzip;q=0", "br", ""):
        with client.stream("GET", path, headers={"accept-encoding": accept}) as resp:
            raw = b"".join(resp.iter_raw())
        if accept == "gzip":
            assert resp.headers.get("content-encoding") == "gzip"
            raw = gzip.decompress(raw)
        else:
            assert "content-encoding" not in resp.headers, accept
        assert raw == text


# -- images ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def jpeg() -> bytes:
    image = pyvips.Image.black(64, 48, bands=3).linear([1, 1, 1], [120, 80, 40])
    return bytes(image.cast("uchar").jpegsave_buffer(Q=80))


def test_auto_format_never_sends_a_format_the_client_did_not_name(
    client: httpx.Client, origin: OriginServer, jpeg: bytes
) -> None:
    path = unique("/img") + ".jpg"
    origin.script(
        path,
        headers={**CACHED, "content-type": "image/jpeg"},
        body_base64=base64.b64encode(jpeg).decode(),
    )
    accepts = [
        "image/avif,image/webp,*/*",
        "",
        "*/*",
        "image/webp",
        "image/*",
        "image/webp;q=0, image/*",
        "image/avif;q=0,image/webp;q=0,*/*",
        "text/html",
        "image/avif",
        "",
    ]
    for accept in accepts:
        resp = client.get(path, headers={"accept": accept})
        kind = resp.headers["content-type"]
        assert resp.status_code == 200 and resp.headers["vary"].lower() == "accept"
        if kind != "image/jpeg":
            fmt = kind.split("/")[1]
            assert f"image/{fmt}" in accept and f"image/{fmt};q=0" not in accept, accept
        else:
            assert resp.content == jpeg


@pytest.mark.parametrize(
    "query",
    [
        "w=10&fill-color=%3Cscript%3Ealert(1)%3C/script%3E",
        "ar=%3Cb%3E1:1",
        "w=10&bri=1e9",
        "w=10&sat=-101&con=NaN",
        "ar=1:0",
        "ar=100000:1&fit=fill",
        "fill=%3Cimg%20src=x%3E&fit=fill&w=10&h=10",
        "cs=%22%3E%3Csvg%3E",
    ],
)
def test_hostile_image_options_are_refused_in_plain_text(
    client: httpx.Client, origin: OriginServer, jpeg: bytes, query: str
) -> None:
    path = unique("/img") + ".jpg"
    origin.script(
        path,
        headers={**CACHED, "content-type": "image/jpeg"},
        body_base64=base64.b64encode(jpeg).decode(),
    )
    for _ in range(2):  # the refusal is not kept as the variant
        resp = client.get(f"{path}?{query}")
        assert resp.status_code == 400
        assert resp.headers["content-type"].startswith("text/plain")
        assert resp.headers["cache-control"] == "no-store"
    plain = client.get(path, headers={"accept": ""})
    assert plain.status_code == 200 and plain.content == jpeg


def test_a_huge_fill_canvas_is_scaled_or_refused(
    client: httpx.Client, origin: OriginServer, jpeg: bytes
) -> None:
    path = unique("/img") + ".jpg"
    origin.script(
        path,
        headers={**CACHED, "content-type": "image/jpeg"},
        body_base64=base64.b64encode(jpeg).decode(),
    )
    for query in ("ar=100:1&fit=fill&fm=png", "ar=1:100&fit=fill&fm=png&fill-color=f00"):
        resp = client.get(f"{path}?{query}")
        assert resp.status_code == 200
        image = pyvips.Image.new_from_buffer(resp.content, "")
        assert max(image.width, image.height) <= 8192
    for query in ("w=4096&h=4096&fit=fill&rot=45&blur=2000&fm=avif&q=100",):
        assert client.get(f"{path}?{query}").status_code in (200, 400, 413)


# -- personal answers ----------------------------------------------------------------------


def test_default_ttl_keeps_personal_answers_to_their_owner(origin: OriginServer) -> None:
    path = unique() + "/account"
    mine = base64.b64encode(b"hello alice, token s3cr3t").decode()
    origin.script(
        path,
        headers={"content-type": "text/html"},
        body="hello anonymous",
        vary_bodies={"header": "cookie", "bodies": {"session=alice": mine}},
    )
    with running_proxy(None, args=["--origin", origin.url, "--default-ttl", "60"]) as proxy:
        alice = httpx.get(proxy.url + path, headers={"cookie": "session=alice"})
        anonymous = httpx.get(proxy.url + path)
    assert "alice" in alice.text
    assert anonymous.text == "hello anonymous"
