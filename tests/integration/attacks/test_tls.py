"""Hostile input at the TLS and HTTP/2 layer: plain HTTP on the TLS port, a TLS handshake
on a plain port, malformed HTTP/2 frames. Each gets a clean close (or a 400), closes
only its own connection, and leaves no traceback in the log."""

from __future__ import annotations

import socket
import ssl
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.h2_raw import H2Connection
from tests.support.origin_server import OriginServer, gen_bytes
from tests.support.proxy_server import ENGINES, ProxyServer, proxy_config, running_proxy
from tests.support.tls_certs import TestPki

HANG_GUARD = 30.0
# The first bytes of a TLS alert record, all a TLS server may say before it closes.
TLS_ALERT = b"\x15\x03"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return TestPki(tmp_path_factory.mktemp("pki"))


def _tls_config(origin: OriginServer, pki: TestPki, name: str) -> str:
    leaf = pki.leaf(name)
    return proxy_config(origin.url) + f'[server.tls]\ncert = "{leaf.cert}"\nkey = "{leaf.key}"\n'


@pytest.fixture(scope="module", params=ENGINES)
def tls_proxy(
    request: pytest.FixtureRequest, origin_server: OriginServer, pki: TestPki
) -> Iterator[ProxyServer]:
    config = _tls_config(origin_server, pki, f"attack-{request.param}")
    with running_proxy(config, scheme="https", engine=request.param) as server:
        yield server


@pytest.fixture(scope="module", params=ENGINES)
def plain_proxy(
    request: pytest.FixtureRequest, origin_server: OriginServer
) -> Iterator[ProxyServer]:
    with running_proxy(proxy_config(origin_server.url), engine=request.param) as server:
        yield server


def _exchange(port: int, data: bytes) -> bytes:
    """Send `data` on a fresh connection and read until the server closes it (a hang
    guard, not a timing: a server that never closes fails the test)."""
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=HANG_GUARD) as sock:
        sock.sendall(data)
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
    return received


def _client_hello() -> bytes:
    """The bytes a TLS client sends first."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    context = ssl.create_default_context()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def _still_serves(proxy: ProxyServer, pki: TestPki | None = None) -> None:
    context: ssl.SSLContext | None = None
    if pki is not None:
        context = pki.ssl_context()
    import httpx

    with httpx.Client(verify=context or True, timeout=HANG_GUARD) as client:
        assert client.get(f"{proxy.url}/gen/100").content == gen_bytes(0, 100)
    assert "Traceback" not in proxy.log()


def test_plain_http_on_the_tls_port_is_closed_cleanly(tls_proxy: ProxyServer, pki: TestPki) -> None:
    answer = _exchange(tls_proxy.port, b"GET /gen/100 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert answer == b"" or answer.startswith((TLS_ALERT, b"HTTP/1.1 400")), answer[:200]
    assert gen_bytes(0, 100) not in answer
    _still_serves(tls_proxy, pki)


def test_a_tls_handshake_on_a_plain_port_is_closed_cleanly(plain_proxy: ProxyServer) -> None:
    answer = _exchange(plain_proxy.port, _client_hello())
    assert answer == b"" or answer.startswith(b"HTTP/1.1 400"), answer[:200]
    _still_serves(plain_proxy)


def _frame(kind: int, flags: int, stream: int, payload: bytes, length: int | None = None) -> bytes:
    size = len(payload) if length is None else length
    return struct.pack(">I", size)[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


MALFORMED = {
    # HEADERS (type 1) on stream 0, which only carries connection frames.
    "headers_on_stream_0": _frame(1, 0x5, 0, b"\x82"),
    # DATA (type 0) on a stream never opened.
    "data_on_an_idle_stream": _frame(0, 0x1, 7, b"hello"),
    # A frame longer than SETTINGS_MAX_FRAME_SIZE (16,384) allows.
    "oversized_frame": _frame(0, 0, 1, b"\x00" * 20_000),
    # SETTINGS whose length is not a multiple of 6.
    "settings_bad_length": _frame(4, 0, 0, b"\x00\x01\x00"),
    # A header block that is not valid HPACK (an index past every table).
    "bad_hpack": _frame(1, 0x5, 1, b"\xff\xff\xff\xff\x0f"),
    # WINDOW_UPDATE with a zero increment on the connection.
    "zero_window_update": _frame(8, 0, 0, b"\x00\x00\x00\x00"),
}


@pytest.fixture(scope="module")
def h2_proxy(origin_server: OriginServer, pki: TestPki) -> Iterator[ProxyServer]:
    with running_proxy(_tls_config(origin_server, pki, "attack-h2"), scheme="https") as server:
        yield server


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_a_malformed_http2_frame_closes_only_its_connection(
    h2_proxy: ProxyServer, pki: TestPki, name: str
) -> None:
    with (
        H2Connection.open(h2_proxy.port, pki.ssl_context()) as good,
        H2Connection.open(h2_proxy.port, pki.ssl_context()) as bad,
    ):
        first = good.request("/gen/1000")
        good.read_until(lambda: good.streams[first].ended)
        # The settings exchange is done before the bad frame, so it is read as a frame.
        bad.read_until(lambda: bad.settings)
        bad.sock.sendall(MALFORMED[name])
        bad.read_until(lambda: False, timeout=HANG_GUARD)  # until the server closes it
        assert bad.closed
        # The other connection, opened before, still works.
        again = good.request("/gen/2000")
        good.read_until(lambda: good.streams[again].ended)
        assert good.streams[again].headers[":status"] == "200"
        assert good.streams[again].body == gen_bytes(0, 2000)
    assert "Traceback" not in h2_proxy.log()


def test_the_redirect_listener_refuses_what_is_not_a_host(
    origin_server: OriginServer, pki: TestPki, tmp_path: Path
) -> None:
    from tests.support.ports import free_port

    port = free_port()
    config = _tls_config(origin_server, pki, "attack-redirect") + f"redirect_port = {port}\n"
    with running_proxy(config, scheme="https") as proxy:
        for host in (b"evil.example/x", b"a@evil.example", b"[::1", b"x:99999", b""):
            answer = _exchange(
                port, b"GET / HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n"
            )
            assert answer.startswith(b"HTTP/1.1 400"), (host, answer[:200])
            assert b"location" not in answer.lower()
        # Two Host fields, and no Host at all.
        two = b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n"
        assert _exchange(port, two).startswith(b"HTTP/1.1 400")
        assert _exchange(port, b"GET / HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.1 400")
        # A TLS handshake on it is closed, like on any plain port.
        answer = _exchange(port, _client_hello())
        assert answer == b"" or answer.startswith(b"HTTP/1.1 400")
        _still_serves(proxy, pki)
