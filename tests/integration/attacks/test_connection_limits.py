"""Connection-level limits on both engines: the header-read timeout (also the keep-alive
idle timeout), HTTP/0.9 request lines, the header count and size, the per-worker
connection cap (docs/deployment.md#connection-limits), and which connections that send
nothing each kind of listener closes: plain, HTTP/2 cleartext, TLS with and without
HTTP/2 (docs/deployment.md#connections-that-send-nothing).

Every wait here is a hang guard: a limit is shown by the server closing or answering,
never by how fast it did. The one negative check (a connection past the cap is not
answered while the cap is held) cannot be made to pass by a slow machine."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.h2_raw import H2Connection
from tests.support.origin_server import OriginServer
from tests.support.proxy_server import (
    ENGINES,
    ProxyServer,
    proxy_config,
    running_proxy,
    toml_value,
)
from tests.support.raw_http import RawResponse, exchange, read_response
from tests.support.tls_certs import TestPki

GUARD = 30.0  # seconds: a server that never closes fails here, a slow one does not
HEAD_TIMEOUT = 2  # header_read_timeout of the proxies below


def get(target: str = "/gen/10", *extra: str, close: bool = True) -> bytes:
    lines = [f"GET {target} HTTP/1.1", "Host: media.example", *extra]
    lines += ["Connection: close"] if close else []
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=GUARD)


def closed_by_server(sock: socket.socket) -> bool:
    """Reads until the server closes (True) or the guard runs out (False)."""
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except (ConnectionResetError, ssl.SSLError):
        pass
    return True


@pytest.fixture(scope="module", params=ENGINES)
def edge(request: pytest.FixtureRequest, origin_server: OriginServer) -> Iterator[ProxyServer]:
    config = proxy_config(origin_server.url, server={"header_read_timeout": HEAD_TIMEOUT})
    with running_proxy(config, engine=request.param) as server:
        yield server


def still_serves(edge: ProxyServer, verify: ssl.SSLContext | bool = True) -> None:
    """A clean client is answered; on uvicorn a connection just closed may still count
    against the cap for a moment, so a 503 is asked again until the guard runs out."""
    deadline = time.monotonic() + GUARD
    url = f"{edge.url}/gen/10"
    while (status := httpx.get(url, timeout=GUARD, verify=verify).status_code) == 503:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert status == 200


def test_http09_request_line_is_closed(edge: ProxyServer) -> None:
    """`GET /` with no version: granian (httparse) answers 400 and closes at once; uvicorn's
    llhttp takes it for an HTTP/0.9 line and waits for a header section, which the
    header-read timeout cuts off."""
    with connect(edge.port) as sock:
        sock.sendall(b"GET /\r\n")
        answer = read_response(sock)
        assert answer.status == (400 if edge.engine == "granian" else 0)
        assert closed_by_server(sock)
    still_serves(edge)


def test_head_sent_a_byte_at_a_time_is_cut_off(edge: ProxyServer) -> None:
    """Slowloris: every byte arrives well within the timeout, the head never completes.
    The timeout runs from the connection's start, so the trickle does not extend it."""
    trickle = b"GET /gen/10 HTTP/1.1\r\nHost: media.example\r\n" + b"X-Slow: " + b"a" * 10_000
    with connect(edge.port) as sock:
        sock.settimeout(0.5)
        cut = False
        for i in range(int(GUARD / 0.5)):
            try:
                sock.sendall(trickle[i : i + 1])
                if sock.recv(65536) == b"":
                    cut = True
                    break
            except TimeoutError:
                continue
            except (ConnectionResetError, BrokenPipeError):
                cut = True
                break
        assert cut, "the server kept a head that never completes"
    still_serves(edge)


def test_silent_connection_is_closed(edge: ProxyServer) -> None:
    with connect(edge.port) as sock:
        assert closed_by_server(sock)


def test_idle_keep_alive_connection_is_closed(edge: ProxyServer) -> None:
    with connect(edge.port) as sock:
        sock.sendall(get(close=False))
        assert read_response(sock).status == 200
        assert closed_by_server(sock)


def test_header_count(edge: ProxyServer) -> None:
    """hyper takes at most 100 header fields and answers 431 past them; uvicorn has no
    count, only the size limit below."""
    fields = [f"X-Field-{i}: v" for i in range(120)]
    answer = exchange(edge.port, get("/gen/10", *fields), timeout=GUARD)
    assert answer.status == (431 if edge.engine == "granian" else 200)
    ninety = exchange(edge.port, get("/gen/10", *fields[:90]), timeout=GUARD)
    assert ninety.status == 200


def test_header_section_over_max_header_bytes(edge: ProxyServer) -> None:
    """40 KB of fields: past max_header_bytes (32 KiB), within what the engine reads."""
    answer = exchange(edge.port, get("/gen/10", "X-Big: " + "a" * 40_000), timeout=GUARD)
    assert answer.status == 431


def test_endless_header_section_is_cut_off(edge: ProxyServer) -> None:
    """Past max_header_bytes + max_url_bytes the engine answers 431 and stops reading
    (hyper's buffer limit; server_protocol.py's count on uvicorn, whose parser has no
    limit). The answer may be lost to the reset a close with unread input causes."""
    head = b"GET /gen/10 HTTP/1.1\r\nHost: media.example\r\nX-Big: " + b"a" * 1_000_000
    with connect(edge.port) as sock:
        try:
            sock.sendall(head)
            answer = read_response(sock)
        except (ConnectionResetError, BrokenPipeError):
            answer = RawResponse(0, [], b"")
        assert answer.status in (431, 0)
        assert closed_by_server(sock)
    still_serves(edge)


@pytest.fixture(params=ENGINES)
def capped(request: pytest.FixtureRequest, origin_server: OriginServer) -> Iterator[ProxyServer]:
    config = proxy_config(
        origin_server.url, server={"max_connections": 2, "header_read_timeout": 60}
    )
    with running_proxy(config, engine=request.param) as server:
        yield server


def kept_alive(port: int) -> socket.socket:
    """A connection that was answered once and stays open. A 503 (uvicorn, while the
    close of an earlier connection is not processed yet) is tried again."""
    deadline = time.monotonic() + GUARD
    while True:
        sock = connect(port)
        sock.sendall(get(close=False))
        status = read_response(sock).status
        if status == 200:
            return sock
        sock.close()
        assert status == 503 and time.monotonic() < deadline
        time.sleep(0.1)


def test_connections_past_the_cap(capped: ProxyServer) -> None:
    """Two kept-alive connections hold a cap of 2. granian leaves a third unaccepted
    until one of them closes; uvicorn answers it 503 and closes."""
    held: list[socket.socket] = []
    try:
        held += [kept_alive(capped.port), kept_alive(capped.port)]
        with connect(capped.port) as third:
            third.sendall(get())
            if capped.engine == "granian":
                third.settimeout(1.0)
                with pytest.raises(TimeoutError):
                    third.recv(1)  # not accepted: nothing can come back yet
                third.settimeout(GUARD)
                held.pop().close()
                assert read_response(third).status == 200
            else:
                answer = read_response(third)
                assert answer.status == 503
    finally:
        for sock in held:
            sock.close()
    still_serves(capped)


# Connections that send nothing, on the listeners that can tell HTTP/2 from HTTP/1.1.
# The HTTP/2 ones run on granian only: uvicorn speaks HTTP/1.1 alone.
PING_ACK_GUARD = GUARD + 20  # header_read_timeout, then hyper's 20 s for a PING's answer


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return TestPki(tmp_path_factory.mktemp("pki"))


def tls_config(origin: OriginServer, pki: TestPki, name: str, **tls: object) -> str:
    leaf = pki.leaf(name)
    fields = {"cert": leaf.cert, "key": leaf.key, **tls}
    lines = ["[server.tls]"] + [f"{k} = {toml_value(v)}" for k, v in fields.items()]
    return proxy_config(origin.url, server={"header_read_timeout": HEAD_TIMEOUT}) + "\n".join(lines)


def tls_connect(port: int, pki: TestPki, alpn: list[str] | None) -> ssl.SSLSocket:
    """A completed TLS handshake offering `alpn` (None: no ALPN extension)."""
    context = pki.ssl_context()
    if alpn is not None:
        context.set_alpn_protocols(alpn)
    return context.wrap_socket(connect(port), server_hostname="127.0.0.1")


def deaf_h2(port: int, context: ssl.SSLContext | None) -> socket.socket:
    """Sends the HTTP/2 preface and SETTINGS, then reads nothing, so never answers a
    PING (the h2 library would, were its bytes read)."""
    return H2Connection.open(port, context, timeout=PING_ACK_GUARD).sock


def still_open(sock: socket.socket) -> bool:
    """True while the server has not closed `sock`; it was sent nothing to answer."""
    sock.settimeout(1.0)
    try:
        return sock.recv(1) != b""
    except TimeoutError:
        return True
    except (ConnectionResetError, ssl.SSLError):
        return False


@pytest.fixture(scope="module", params=ENGINES)
def tls_http1(
    request: pytest.FixtureRequest, origin_server: OriginServer, pki: TestPki
) -> Iterator[ProxyServer]:
    config = tls_config(origin_server, pki, f"limits-{request.param}", http2=False)
    with running_proxy(config, scheme="https", engine=request.param) as server:
        yield server


@pytest.mark.parametrize("alpn", [["h2", "http/1.1"], ["http/1.1"], None])
def test_silent_tls_connection_is_closed_on_http1(
    tls_http1: ProxyServer, pki: TestPki, alpn: list[str] | None
) -> None:
    """With [server.tls] http2 = false (uvicorn: always) the header-read timeout runs from
    the end of the handshake, whatever ALPN offered."""
    with tls_connect(tls_http1.port, pki, alpn) as sock:
        assert sock.selected_alpn_protocol() in ("http/1.1", None)
        assert closed_by_server(sock)
    still_serves(tls_http1, pki.ssl_context())


def test_silent_connections_on_tls_with_http2(origin_server: OriginServer, pki: TestPki) -> None:
    """granian, TLS offering h2 (the default): a connection that never sends its
    ClientHello is closed by the handshake timeout (10 s), one that sends the HTTP/2
    preface and then ignores the server is closed when its PING goes unanswered, and a
    normal client is served meanwhile. A connection that completes the handshake and
    sends nothing is held: granian waits for its first bytes with no timeout."""
    config = tls_config(origin_server, pki, "limits-h2")
    with (
        running_proxy(config, scheme="https", engine="granian") as edge,
        connect(edge.port) as no_hello,
        deaf_h2(edge.port, pki.ssl_context()) as deaf,
        tls_connect(edge.port, pki, ["h2", "http/1.1"]) as silent,
    ):
        assert closed_by_server(no_hello)
        assert closed_by_server(deaf)
        still_serves(edge, pki.ssl_context())
        # Opened with the two above, and long past header_read_timeout: still held.
        assert still_open(silent)


def test_silent_connections_on_http2_cleartext(origin_server: OriginServer) -> None:
    """granian with http2_cleartext: a deaf HTTP/2 connection is closed by the unanswered
    PING, a half-sent HTTP/1.1 head by the header-read timeout; a connection that sends
    nothing is held (no timeout before the first bytes tell HTTP/2 from HTTP/1.1)."""
    config = proxy_config(
        origin_server.url, server={"header_read_timeout": HEAD_TIMEOUT, "http2_cleartext": True}
    )
    with (
        running_proxy(config, engine="granian") as edge,
        deaf_h2(edge.port, None) as deaf,
        connect(edge.port) as half,
        connect(edge.port) as silent,
    ):
        half.sendall(b"GET /gen/10 HTTP/1.1\r\nHost: media.example\r\n")
        assert closed_by_server(half)
        assert closed_by_server(deaf)
        still_serves(edge)
        assert still_open(silent)


def answered(edge: ProxyServer, verify: ssl.SSLContext) -> bool:
    try:
        return httpx.get(f"{edge.url}/gen/10", timeout=GUARD, verify=verify).status_code == 200
    except httpx.TransportError:
        return False


def test_a_worker_out_of_descriptors_in_tls_handshakes_is_replaced(
    origin_server: OriginServer, pki: TestPki
) -> None:
    """granian holds TLS connections in their handshake beyond max_connections; enough
    that never send a ClientHello fill the worker's open-file limit (512 here), and it
    stops for good: every accept fails, and the held handshakes no longer time out
    (docs/deployment.md#connections-in-the-tls-handshake). proxy/serve/fd_watch.py sees
    it full past the handshake timeout and reloads the workers; a new client is served."""
    config = tls_config(origin_server, pki, "limits-fds")
    with running_proxy(config, scheme="https", engine="granian", nofile=512) as edge:
        flood = [connect(edge.port) for _ in range(600)]
        try:
            deadline = time.monotonic() + GUARD + 30  # 15 s stuck, then a reload
            while "out of file descriptors" not in edge.log():
                assert time.monotonic() < deadline, "the stuck worker was not replaced"
                time.sleep(0.5)
            # A connection caught by the stuck worker as it is killed is reset: ask again.
            while not answered(edge, pki.ssl_context()):
                assert time.monotonic() < deadline, "the new worker does not serve"
                time.sleep(0.5)
        finally:
            for sock in flood:
                sock.close()
        assert "Traceback" not in edge.log()
