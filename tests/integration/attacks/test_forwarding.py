"""Issue 11, items 2, 4.3 and 9: forwarding headers are edgeshield's alone, any method a
route allows passes through, and refusals are clean.

Replayed against a real `edgeshield serve` over raw sockets (or httpx), each attack must
get a clean answer (never a traceback, a dropped connection or a hang), reach the origin
only as it should, and leave no poisoned entry: a clean client afterwards gets the right
bytes. Two instances: `edge` trusts no proxy (clients connect directly); `shield` sits
behind a trusted proxy, 127.0.0.1 (the test client plays that proxy)."""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from proxy.auth.keys import Key
from proxy.auth.native import sign_url
from tests.support.origin_server import OriginServer
from tests.support.ports import free_port
from tests.support.proxy_server import (
    ENGINES,
    SERVING_LINE,
    ProxyServer,
    proxy_config,
    running_proxy,
)
from tests.support.raw_http import RawResponse, exchange, read_response

SECRET = "forwarding-attacks-secret-0123456789"
KEY = Key("k1", SECRET.encode())
BODY = "the right bytes\n"
HOSTILE_FORWARDING = {
    "X-Forwarded-For": "8.8.8.8",
    "X-Forwarded-Host": "evil.example",
    "X-Forwarded-Proto": "https",
    "Forwarded": "for=8.8.8.8;host=evil.example;proto=https",
    "X-Real-IP": "8.8.8.8",
}


def _config(origin_url: str, log: Path, trusted: bool) -> str:
    server = f'[server]\naccess_log = "{log}"\n'
    if trusted:
        server += '[server.trusted_proxies]\ncidrs = ["127.0.0.1/32"]\n'
    denied = '"198.51.100.0/24"' if trusted else '"127.0.0.0/8", "::1"'
    return f"""{server}
[auth]
signing_kid = "k1"
[auth.keys.k1]
secret = "{SECRET}"
[origins.main]
kind = "http"
url = "{origin_url}"
[[routes]]
path_prefix = "/blocked"
origin = "main"
[routes.access.ip]
deny = [{denied}]
[[routes]]
path_prefix = "/limited"
origin = "main"
[routes.access.ratelimit]
rate = 0.001
burst = 2
[[routes]]
path_prefix = "/bound"
origin = "main"
[routes.auth]
schemes = ["native"]
[[routes]]
path_prefix = "/ro"
origin = "main"
read_only = true
[[routes]]
path_prefix = "/override"
origin = "main"
[routes.cache]
default_ttl = 600
forward_method_override = true
[[routes]]
path_prefix = "/"
origin = "main"
[routes.cache]
default_ttl = 600
"""


@pytest.fixture(scope="module")
def edge(
    origin_server: OriginServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProxyServer]:
    log = tmp_path_factory.mktemp("edge") / "access.log"
    with running_proxy(_config(origin_server.url, log, trusted=False)) as server:
        server.access_log = log  # type: ignore[attr-defined]
        yield server


@pytest.fixture(scope="module")
def shield(
    origin_server: OriginServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProxyServer]:
    log = tmp_path_factory.mktemp("shield") / "access.log"
    with running_proxy(_config(origin_server.url, log, trusted=True)) as server:
        server.access_log = log  # type: ignore[attr-defined]
        yield server


def _script(origin: OriginServer, path: str, **fields: object) -> None:
    origin.script(path, body=BODY, **fields)  # no freshness: the route's default_ttl


def _request(
    method: str, target: str, headers: dict[str, str] | None = None, *, close: bool = True
) -> bytes:
    headers = {"Host": "127.0.0.1", **(headers or {})}
    if method not in ("GET", "HEAD", "CONNECT"):
        headers["Content-Length"] = "0"
    if close:
        headers.setdefault("Connection", "close")
    lines = [f"{method} {target} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items())]
    return "\r\n".join([*lines, "", ""]).encode("latin-1")


def _clean(server: ProxyServer, path: str) -> RawResponse:
    answer = exchange(server.port, _request("GET", path))
    assert (answer.status, answer.body.decode()) == (200, BODY), answer
    return answer


def _access_lines(server: ProxyServer, path: str, count: int = 1) -> list[dict[str, object]]:
    """`count` access-log lines of `path` (written within a second: waited for, as a hang
    guard)."""
    log: Path = server.access_log  # type: ignore[attr-defined]
    for _ in range(200):
        if log.exists():
            lines = [json.loads(line) for line in log.read_text().splitlines() if line]
            found = [line for line in lines if line["path"] == path]
            if len(found) >= count:
                return found
        time.sleep(0.05)
    raise AssertionError(f"no access-log line for {path}")


def _wait_for_log(server: ProxyServer, pattern: str, times: int = 1) -> str:
    """The server log once `pattern` occurs `times` times in it (a hang guard, no timing)."""
    for _ in range(400):
        text = server.log()
        if len(re.findall(pattern, text)) >= times:
            return text
        time.sleep(0.05)
    raise AssertionError(f"{pattern!r} not logged {times} times:\n{server.log()}")


# -- the client address: the socket peer unless a trusted proxy vouches -----------------


def test_forwarded_for_does_not_bypass_an_ip_deny_list(
    edge: ProxyServer, origin: OriginServer
) -> None:
    _script(origin, "/blocked/a")
    for name, value in HOSTILE_FORWARDING.items():
        answer = exchange(edge.port, _request("GET", "/blocked/a", {name: value}))
        assert answer.status == 403, (name, answer)
        assert answer.header("edgeshield-auth-reason") == "ip-denied"
    assert origin.requests("/blocked/a") == 0
    assert _access_lines(edge, "/blocked/a")[0]["client"] == "127.0.0.1"


@pytest.mark.parametrize("way", ["workers", "admin listener"])
def test_every_way_of_serving_keeps_the_peer(origin: OriginServer, way: str) -> None:
    """`edgeshield serve` starts uvicorn four ways (one process or workers, with or
    without an admin listener); none believes a client's X-Forwarded-For."""
    _script(origin, "/blocked/w")
    extra = {"workers": 2} if way == "workers" else {}
    config = proxy_config(origin.url, route={"path_prefix": "/blocked"})
    config += '[routes.access.ip]\ndeny = ["127.0.0.0/8", "::1"]\n'
    if way == "admin listener":
        config += f"[admin]\nport = {free_port()}\n"
    with running_proxy(config, **extra) as server:
        answer = exchange(server.port, _request("GET", "/blocked/w", HOSTILE_FORWARDING))
    assert (answer.status, answer.header("edgeshield-auth-reason")) == (403, "ip-denied")
    assert origin.requests("/blocked/w") == 0


def test_rotating_forwarded_for_does_not_reset_a_rate_limit(
    edge: ProxyServer, origin: OriginServer
) -> None:
    _script(origin, "/limited/a")
    codes = [
        exchange(edge.port, _request("GET", "/limited/a", {"X-Forwarded-For": f"8.8.8.{i}"}))
        for i in range(5)
    ]
    assert [a.status for a in codes] == [200, 200, 429, 429, 429]
    assert codes[2].header("edgeshield-auth-reason") == "rate-limited"


def test_forwarded_for_does_not_satisfy_an_ip_bound_token(
    edge: ProxyServer, origin: OriginServer
) -> None:
    _script(origin, "/bound/a")
    elsewhere = sign_url("/bound/a", KEY, ttl=600, ip="8.8.8.8")
    answer = exchange(edge.port, _request("GET", elsewhere, {"X-Forwarded-For": "8.8.8.8"}))
    assert answer.status == 403, answer
    assert origin.requests("/bound/a") == 0
    ours = sign_url("/bound/a", KEY, ttl=600, ip="127.0.0.1")
    assert exchange(edge.port, _request("GET", ours)).body.decode() == BODY


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_the_origin_gets_exactly_one_forwarding_set_edgeshields(
    edge: ProxyServer, origin: OriginServer, method: str
) -> None:
    path = f"/fwd/{method.lower()}"
    _script(origin, path)
    answer = exchange(edge.port, _request(method, path, HOSTILE_FORWARDING))
    assert (answer.status, answer.body.decode()) == (200, BODY)
    seen = origin.stats()["last_headers"][path]  # repeated fields joined with ", "
    assert seen["x-forwarded-for"] == "127.0.0.1"
    assert seen["x-forwarded-host"] == "127.0.0.1"
    assert seen["x-forwarded-proto"] == "http"
    assert "forwarded" not in seen and "x-real-ip" not in seen


def test_behind_a_trusted_proxy_the_chain_is_taken_and_re_emitted_once(
    shield: ProxyServer, origin: OriginServer
) -> None:
    _script(origin, "/fwd/trusted")
    _script(origin, "/blocked/t")
    # the trusted proxy appended the address it saw to what its client claimed
    claimed = {**HOSTILE_FORWARDING, "X-Forwarded-For": "8.8.8.8, 203.0.113.5"}
    answer = exchange(shield.port, _request("GET", "/fwd/trusted", claimed))
    assert (answer.status, answer.body.decode()) == (200, BODY)
    seen = origin.stats()["last_headers"]["/fwd/trusted"]
    assert seen["x-forwarded-for"] == "203.0.113.5, 127.0.0.1"
    assert seen["x-forwarded-proto"] == "https"
    assert seen["x-forwarded-host"] == "127.0.0.1"  # the host the cache key names
    assert "forwarded" not in seen and "x-real-ip" not in seen
    hit = exchange(shield.port, _request("GET", "/fwd/trusted", claimed))
    assert "hit" in (hit.header("cache-status") or "")  # the fast path logs it
    logged = _access_lines(shield, "/fwd/trusted", 2)
    assert [line["client"] for line in logged] == ["203.0.113.5", "203.0.113.5"]
    # access rules see the client the trusted proxy vouches for
    denied = exchange(
        shield.port, _request("GET", "/blocked/t", {"X-Forwarded-For": "198.51.100.7"})
    )
    assert denied.status == 403 and denied.header("edgeshield-auth-reason") == "ip-denied"
    spoofed = {"X-Forwarded-For": "198.51.100.7, 203.0.113.5"}  # left of the client: ignored
    assert exchange(shield.port, _request("GET", "/blocked/t", spoofed)).status == 200
    assert origin.requests("/blocked/t") == 1


# -- method override on cacheable requests ------------------------------------------------


def test_method_override_on_a_get_never_reaches_the_origin_nor_poisons(
    edge: ProxyServer, origin: OriginServer
) -> None:
    _script(origin, "/mo/a", honor_method_override=True)
    for name in ("X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override"):
        answer = exchange(edge.port, _request("GET", "/mo/a", {name: "DELETE"}))
        assert (answer.status, answer.body.decode()) == (200, BODY), (name, answer)
    seen = origin.stats()["last_headers"]["/mo/a"]
    assert not {"x-http-method-override", "x-http-method", "x-method-override"} & set(seen)
    assert origin.requests("/mo/a") == 1  # then hits
    assert "hit" in (_clean(edge, "/mo/a").header("cache-status") or "")


def test_a_route_may_forward_method_override(edge: ProxyServer, origin: OriginServer) -> None:
    _script(origin, "/override/a", honor_method_override=True)
    answer = exchange(edge.port, _request("GET", "/override/a", {"X-HTTP-Method-Override": "PUT"}))
    assert answer.status == 405  # as configured: the origin was told
    assert origin.stats()["last_headers"]["/override/a"]["x-http-method-override"] == "PUT"


# -- any method the route allows passes through and invalidates ---------------------------


@pytest.mark.parametrize("method", ["M-SEARCH", "PROPFIND", "POST"])
def test_extension_methods_pass_through_uncached_and_invalidate(
    edge: ProxyServer, origin: OriginServer, method: str
) -> None:
    path = f"/methods/{method.lower()}"
    _script(origin, path)
    _clean(edge, path)
    assert "hit" in (_clean(edge, path).header("cache-status") or "")
    answer = exchange(edge.port, _request(method, path))
    assert (answer.status, answer.body.decode()) == (200, BODY), answer
    assert origin.requests(path, method) == 1
    assert "fwd=miss" in (_clean(edge, path).header("cache-status") or "")  # invalidated
    assert origin.requests(path) == 2


def test_read_only_routes_refuse_extension_methods(edge: ProxyServer, origin: OriginServer) -> None:
    _script(origin, "/ro/a")
    for method in ("PROPFIND", "M-SEARCH", "DELETE"):
        answer = exchange(edge.port, _request(method, "/ro/a"))
        assert (answer.status, answer.header("allow")) == (405, "GET, HEAD"), method
    assert origin.requests("/ro/a", "PROPFIND") == 0


# -- clean refusals: WebSocket, CONNECT, broken origin bodies -----------------------------

UPGRADE = {
    "Connection": "Upgrade",
    "Upgrade": "websocket",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
}


def _one_exchange(port: int, data: bytes) -> RawResponse:
    """One answer (uvicorn then closes after a refused upgrade, granian may keep the
    connection: either is clean)."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(data)
        return read_response(sock)


def _one_exchange_then_eof(port: int, data: bytes) -> RawResponse:
    """One answer, then the server closes (a second request on the socket is not read)."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(data)
        answer = read_response(sock)
        assert sock.recv(65536) == b""  # closed cleanly, nothing more
    return answer


@pytest.fixture(params=ENGINES)
def lone(origin_server: OriginServer, request: pytest.FixtureRequest) -> Iterator[ProxyServer]:
    """An instance of its own, so its server log holds only this test's lines; on each
    engine, since each parses the connection itself."""
    with running_proxy(proxy_config(origin_server.url), engine=request.param) as server:
        _wait_for_log(server, SERVING_LINE[request.param])
        yield server


def _new_lines(server: ProxyServer, before: str) -> list[str]:
    return server.log()[len(before) :].splitlines()


def test_websocket_upgrade_gets_a_501_and_one_log_line(lone: ProxyServer) -> None:
    before = lone.log()
    target = "/ws?token=secret-in-query"
    answer = _one_exchange(lone.port, _request("GET", target, UPGRADE))
    assert answer.status == 501 and answer.body == b"501 websocket not supported\n"
    _wait_for_log(lone, "refused websocket upgrade: /ws")
    assert httpx.get(f"{lone.url}/healthz").status_code == 200  # still serving
    assert len(_new_lines(lone, before)) == 1, _new_lines(lone, before)
    assert "secret-in-query" not in lone.log()


def test_malformed_websocket_upgrade_gets_a_400(lone: ProxyServer) -> None:
    broken = {k: v for k, v in UPGRADE.items() if k != "Sec-WebSocket-Key"}
    answer = _one_exchange(lone.port, _request("GET", "/ws", broken))
    assert answer.status == 400 and b"Traceback" not in answer.body


@pytest.mark.parametrize("target", ["example.com:443", "/tunnel"])
def test_connect_gets_a_clean_refusal_and_one_log_line(lone: ProxyServer, target: str) -> None:
    """uvicorn's parser refuses the authority form itself (400), granian hands it over
    and edgeshield refuses its target (400); an origin-form CONNECT reaches edgeshield
    (501). Either way the connection closes: a request pipelined behind it is not read."""
    before = lone.log()
    connect = _request("CONNECT", target, {"Host": "example.com:443"}, close=False)
    answer = _one_exchange_then_eof(lone.port, connect + _request("GET", "/healthz"))
    assert answer.status in (400, 501) and len(answer.body) < 100, answer
    _wait_for_log(lone, r"Invalid HTTP request|refused CONNECT")
    assert httpx.get(f"{lone.url}/healthz").status_code == 200
    assert len(_new_lines(lone, before)) == 1, _new_lines(lone, before)
    assert "Traceback" not in lone.log()


@pytest.mark.parametrize("mode", ["short", "close-mid"])
def test_a_broken_origin_body_logs_one_edgeshield_line(
    edge: ProxyServer, origin: OriginServer, mode: str
) -> None:
    path = f"/broken/{mode}"
    origin.script(path, size=200_000, mode=mode, close_after=50_000)
    answer = exchange(edge.port, _request("GET", path))
    assert answer.status == 200 and len(answer.body) < 200_000  # a broken transfer, not short
    line = rf"origin body broke off after \d+ bytes, connection closed: 127\.0\.0\.1{path} "
    _wait_for_log(edge, line)
    # a later refusal's line comes after anything uvicorn would have said about this one
    refusals = len(re.findall("refused CONNECT", edge.log()))
    exchange(edge.port, _request("CONNECT", "/after"))
    log = _wait_for_log(edge, "refused CONNECT", refusals + 1)
    assert "ASGI callable returned without completing response" not in log
    assert len(re.findall(line, log)) == 1
    origin.script(path, body=BODY)  # the origin is well again: nothing broken was kept
    _clean(edge, path)


def test_a_client_leaving_a_large_hit_does_not_flood_the_log(
    lone: ProxyServer, origin_server: OriginServer
) -> None:
    """granian logs a line for every send to a gone client; a stopped 12 MB download
    would be a dozen lines per client, an easy log flood. The access log has the one
    record; the engine's lines are filtered (proxy/serve/logs.py)."""
    path = "/large/leave"
    origin_server.script(path, size=12_000_000, headers={"cache-control": "max-age=600"})
    assert len(httpx.get(f"{lone.url}{path}").content) == 12_000_000  # stored
    before = lone.log()
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", lone.port), timeout=15) as sock:
            sock.sendall(_request("GET", path))
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    assert httpx.get(f"{lone.url}/healthz").status_code == 200
    assert len(httpx.get(f"{lone.url}{path}").content) == 12_000_000
    assert _new_lines(lone, before) == []
