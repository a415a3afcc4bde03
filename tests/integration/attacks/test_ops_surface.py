"""Issue 16 item 4, the operations app (proxy/ops/) against hostile spellings: a real
`edgeshield serve` with an admin token and a separate admin listener gets admin paths
spelled with trailing slashes, dot segments, encoded slashes and the wrong methods on
both listeners, and broken purge bodies. Every answer is a clean 4xx with a short body
(never admin data to the main listener or to a client without the token, never a
redirect, never a dropped connection), and afterwards a clean client still gets the
right bytes and the purge API still works."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support.origin_server import OriginServer
from tests.support.ports import free_port, wait_for_port
from tests.support.proxy_server import ProxyServer, running_proxy
from tests.support.raw_http import RawResponse, exchange

TOKEN = "ops-surface-token-0123456789abcdef"
AUTH = f"Authorization: Bearer {TOKEN}"
ADMIN_DATA = (b"recent_purges", b"edgeshield_requests", b"<!doctype html", b'"groups"')
OBJECT = "/ops/a.txt"


@pytest.fixture(scope="module")
def edge(origin_server: OriginServer) -> Iterator[tuple[ProxyServer, int]]:
    admin_port = free_port()
    config = f"""
[server]
access_log = "off"
[admin]
token = "{TOKEN}"
port = {admin_port}
[origins.main]
kind = "http"
url = "{origin_server.url}"
[[routes]]
origin = "main"
"""
    with running_proxy(config) as server:
        wait_for_port(admin_port)
        yield server, admin_port


@pytest.fixture
def scripted(origin: OriginServer) -> OriginServer:
    origin.script(OBJECT, body="the right bytes\n", headers={"cache-control": "max-age=300"})
    origin.script("/_ADMIN", status=404, body="origin 404\n")
    return origin


def send(port: int, method: str, target: str, *lines: str, body: bytes = b"") -> RawResponse:
    head = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", *lines, "Connection: close"]
    if body:
        head.append(f"Content-Length: {len(body)}")
    return exchange(port, ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)


def assert_clean_refusal(answer: RawResponse) -> None:
    assert 400 <= answer.status < 500, answer  # 0 would be a dropped connection
    assert answer.header("location") is None  # no redirect to another spelling
    assert answer.header("cache-control") == "no-store" or answer.status == 404
    assert len(answer.body) < 200 and b"Traceback" not in answer.body
    assert not any(marker in answer.body for marker in ADMIN_DATA)


def assert_still_clean(edge: tuple[ProxyServer, int], origin: OriginServer) -> None:
    proxy, admin_port = edge
    with httpx.Client(timeout=15) as client:
        assert client.get(proxy.url + OBJECT).content == b"the right bytes\n"
        assert client.get(proxy.url + "/healthz").text == "ok\n"
        status = client.get(f"http://127.0.0.1:{admin_port}/_admin/status.json", headers=_auth())
        assert status.status_code == 200 and "recent_purges" in status.json()


def _auth() -> dict[str, str]:
    return {"authorization": f"Bearer {TOKEN}"}


MAIN_SPELLINGS = [
    "/_admin",
    "/_admin/",
    "/_admin/status.json/",
    "/_admin%2Fstatus.json",
    "/_admin/../metrics",
    "/_admin/./status.json",
    "/_ADMIN",
    "/metrics",
    "/_purge",
    "/_purge/",
]


@pytest.mark.parametrize("target", MAIN_SPELLINGS)
def test_admin_spellings_on_the_main_listener_find_nothing(
    edge: tuple[ProxyServer, int], scripted: OriginServer, target: str
) -> None:
    """Even with the right token: the main listener keeps only the probes."""
    proxy, _ = edge
    assert_clean_refusal(send(proxy.port, "GET", target, AUTH))
    assert_still_clean(edge, scripted)


ADMIN_SPELLINGS = [
    "/_admin/",
    "/_admin/status.json/",
    "/_admin/../metrics",
    "/_admin/./status.json",
    "//_admin",
    "/_admin/origins%00",
    "/a.txt",
    OBJECT,
]


@pytest.mark.parametrize("target", ADMIN_SPELLINGS)
def test_admin_spellings_on_the_admin_listener(
    edge: tuple[ProxyServer, int], scripted: OriginServer, target: str
) -> None:
    """With the token: 404 for every spelling that is not an endpoint (no slash
    redirect, no content); without it, 401 or 404, never data."""
    _, admin_port = edge
    with_token = send(admin_port, "GET", target, AUTH)
    assert_clean_refusal(with_token)
    assert with_token.status == 404
    assert_clean_refusal(send(admin_port, "GET", target))
    assert scripted.requests(OBJECT) == 0  # the admin listener never fetches content
    assert_still_clean(edge, scripted)


@pytest.mark.parametrize(
    ("method", "target", "allow"),
    [
        ("PUT", "/metrics", "GET, HEAD"),
        ("POST", "/_admin", "GET, HEAD"),
        ("DELETE", "/_admin/status.json", "GET, HEAD"),
        ("GET", "/_purge", "POST"),
        ("HEAD", "/_purge", "POST"),
        ("OPTIONS", "/_purge", "POST"),
    ],
)
def test_wrong_methods_are_405_with_allow(
    edge: tuple[ProxyServer, int], scripted: OriginServer, method: str, target: str, allow: str
) -> None:
    _, admin_port = edge
    answer = send(admin_port, method, target, AUTH)
    assert answer.status == 405 and answer.header("allow") == allow
    if method != "HEAD":
        assert answer.body == b"405 method not allowed\n"
    assert_still_clean(edge, scripted)


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"{", 400),
        (b'{"urls": "not a list"}', 400),
        (b'{"urls": ["http://127.0.0.1/x"], "extra": 1}', 400),
        (b"[]", 400),
        (b"\xff\xfe\x00", 400),
    ],
)
def test_broken_purge_bodies_are_refused_and_purging_still_works(
    edge: tuple[ProxyServer, int], scripted: OriginServer, body: bytes, status: int
) -> None:
    proxy, admin_port = edge
    with httpx.Client(timeout=15) as client:
        assert client.get(proxy.url + OBJECT).status_code == 200  # cached
    answer = send(admin_port, "POST", "/_purge", AUTH, "Content-Type: application/json", body=body)
    assert answer.status == status and answer.header("content-type") == "application/json"
    assert b"error" in answer.body and b"Traceback" not in answer.body
    fetched = scripted.requests(OBJECT)
    with httpx.Client(timeout=15) as client:  # the refused purge purged nothing
        assert client.get(proxy.url + OBJECT).content == b"the right bytes\n"
        assert scripted.requests(OBJECT) == fetched
        purged = client.post(
            f"http://127.0.0.1:{admin_port}/_purge",
            json={"urls": [f"http://127.0.0.1:{proxy.port}{OBJECT}"]},
            headers=_auth(),
        )
        assert purged.status_code == 200 and purged.json()["purged"]["memory"] == 1
        assert client.get(proxy.url + OBJECT).content == b"the right bytes\n"
    assert scripted.requests(OBJECT) == fetched + 1  # fetched again after the purge


def test_an_oversized_purge_body_is_413_without_reading_it(
    edge: tuple[ProxyServer, int], scripted: OriginServer
) -> None:
    _, admin_port = edge
    lines = (AUTH, "Content-Type: application/json", "Content-Length: 999999999")
    answer = send(admin_port, "POST", "/_purge", *lines)  # the body never comes
    assert answer.status == 413 and b"larger than" in answer.body
    assert_still_clean(edge, scripted)
