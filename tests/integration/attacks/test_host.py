"""Issue 11, item 1: the cache key comes from a validated authority.

Each hostile Host (or absolute-form target) is replayed over a raw socket against a real
`edgeshield serve`; each must get a clean 400 with a reason, never reach the origin, and
leave no entry behind: a clean client afterwards gets the right bytes."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support.origin_server import OriginServer
from tests.support.proxy_server import ProxyServer, proxy_config, running_proxy
from tests.support.raw_http import exchange

IMAGE = b"the real image bytes\n" * 50


@pytest.fixture(scope="module")
def edge(origin_server: OriginServer) -> Iterator[ProxyServer]:
    with running_proxy(proxy_config(origin_server.url)) as server:
        yield server


def script_pair(origin: OriginServer, name: str) -> None:
    """/images/<name> is the real object; /<name> a cacheable 404 an attacker would plant."""
    origin.script(
        f"/images/{name}",
        body=IMAGE.decode(),
        headers={"content-type": "image/jpeg", "cache-control": "max-age=600"},
    )
    origin.script(
        f"/{name}", status=404, body="not here\n", headers={"cache-control": "max-age=600"}
    )


@pytest.fixture
def scripted(origin: OriginServer) -> OriginServer:
    script_pair(origin, "landscape-640.jpg")
    return origin


def request(target: str, *host_lines: str, version: str = "HTTP/1.1") -> bytes:
    lines = [f"GET {target} {version}", *host_lines, "Connection: close", "", ""]
    return "\r\n".join(lines).encode("latin-1")


HOSTILE_HOSTS = [
    "127.0.0.1/images",  # the reproduction in the issue
    "127.0.0.1/images/",
    "127.0.0.1\\images",
    "evil@127.0.0.1",
    "127.0.0.1?x=",
    "127.0.0.1#frag",
    "127.0.0.1%2fimages",
    "127.0.0.1 /images",
    "127.0.0.1\t/images",
    "127.0.0.1,evil.example",
    "127.0.0.1:99999",
    "127.0.0.1:8o",
    "[::1",
    "[fe80::1%eth0]",
    "\x01\x02",
    "",
]


@pytest.mark.parametrize("host", HOSTILE_HOSTS)
def test_hostile_host_is_refused_before_routing(
    edge: ProxyServer, scripted: OriginServer, host: str
) -> None:
    answer = exchange(edge.port, request("/landscape-640.jpg", f"Host: {host}"))
    assert answer.status == 400, answer
    # Ours ("400 <reason>"), or the HTTP server's own for bytes its parser refuses.
    assert len(answer.body) < 100
    assert b"Traceback" not in answer.body
    assert scripted.requests("/landscape-640.jpg") == 0
    clean = httpx.get(f"{edge.url}/images/landscape-640.jpg")
    assert clean.status_code == 200
    assert clean.content == IMAGE


@pytest.mark.parametrize(
    "raw",
    [
        request("/images/landscape-640.jpg", "Host: 127.0.0.1", "Host: evil.example"),
        request("/images/landscape-640.jpg", "Host: 127.0.0.1", "Host: 127.0.0.1"),
        request("/images/landscape-640.jpg"),  # HTTP/1.1 without Host (RFC 9112 3.2)
        request("http://127.0.0.1/landscape-640.jpg", "Host: 127.0.0.1/images"),
    ],
    ids=["two-hosts", "two-equal-hosts", "no-host", "absolute-path-host"],
)
def test_ambiguous_authority_is_refused(
    edge: ProxyServer, scripted: OriginServer, raw: bytes
) -> None:
    # Twice: the second may meet a memoised fast-path plan, which must refuse it too.
    for _ in range(2):
        warm = httpx.get(f"{edge.url}/images/landscape-640.jpg")
        assert warm.content == IMAGE
        answer = exchange(edge.port, raw)
        assert answer.status == 400, answer
        assert answer.body.startswith(b"400 ")
    assert scripted.requests("/landscape-640.jpg") == 0


# An absolute-form target whose authority disagrees with Host, or carries userinfo.
ABSOLUTE_FORMS = {
    "absolute-differs": request("http://evil.example/images/landscape-640.jpg", "Host: 127.0.0.1"),
    "absolute-userinfo": request(
        "http://user@127.0.0.1/images/landscape-640.jpg", "Host: 127.0.0.1"
    ),
}


@pytest.fixture(scope="module")
def uvicorn_edge(origin_server: OriginServer) -> Iterator[ProxyServer]:
    with running_proxy(proxy_config(origin_server.url), engine="uvicorn") as server:
        yield server


@pytest.mark.parametrize("raw", ABSOLUTE_FORMS.values(), ids=ABSOLUTE_FORMS.keys())
def test_absolute_form_disagreeing_with_host_is_refused_on_uvicorn(
    uvicorn_edge: ProxyServer, scripted: OriginServer, raw: bytes
) -> None:
    """uvicorn hands the target's authority over (proxy/serve/server_protocol.py), so
    edgeshield compares it with Host (RFC 9112 3.2.2)."""
    test_ambiguous_authority_is_refused(uvicorn_edge, scripted, raw)


@pytest.mark.parametrize("raw", ABSOLUTE_FORMS.values(), ids=ABSOLUTE_FORMS.keys())
def test_absolute_form_on_granian_is_keyed_by_host(
    edge: ProxyServer, scripted: OriginServer, raw: bytes
) -> None:
    """granian drops an absolute-form target's authority before the app sees it: the
    request is answered, and cached, for its Host, never for the target's authority
    (docs/deployment.md). Nothing reaches the origin for another site."""
    warm = httpx.get(f"{edge.url}/images/landscape-640.jpg")
    assert warm.content == IMAGE
    before = scripted.requests("/images/landscape-640.jpg")
    for _ in range(2):
        answer = exchange(edge.port, raw)
        assert (answer.status, answer.body) == (200, IMAGE)
    assert scripted.requests("/images/landscape-640.jpg") == before  # the Host's entry


def test_poisoning_attempt_leaves_the_right_bytes(edge: ProxyServer, origin: OriginServer) -> None:
    """The issue's reproduction: before the fix, the 404 of /fresh.jpg was stored under
    the key of /images/fresh.jpg and served to everyone."""
    script_pair(origin, "fresh.jpg")
    attack = exchange(edge.port, request("/fresh.jpg", "Host: 127.0.0.1/images"))
    assert attack.status == 400
    for _ in range(3):  # miss, then hits (the fast path included)
        clean = httpx.get(f"{edge.url}/images/fresh.jpg")
        assert clean.status_code == 200
        assert clean.content == IMAGE
    assert origin.requests("/images/fresh.jpg") == 1
    assert origin.requests("/fresh.jpg") == 0


def test_valid_authorities_share_one_key(edge: ProxyServer, origin: OriginServer) -> None:
    """Case, port, a trailing dot and absolute form do not split the cache (nor skip a
    host-scoped route): one origin fetch."""
    script_pair(origin, "shared.jpg")
    variants = [
        request("/images/shared.jpg", "Host: media.example"),
        request("/images/shared.jpg", "Host: MEDIA.example:8080"),
        request("/images/shared.jpg", "Host: media.example:"),
        request("/images/shared.jpg", "Host: media.example."),  # fully qualified
        request("http://media.example/images/shared.jpg", "Host: media.example"),
    ]
    for raw in variants:
        answer = exchange(edge.port, raw)
        assert answer.status == 200
        assert answer.body == IMAGE
    assert origin.requests("/images/shared.jpg") == 1


def test_http10_without_host_uses_the_listening_address(
    edge: ProxyServer, scripted: OriginServer
) -> None:
    answer = exchange(edge.port, request("/images/landscape-640.jpg", version="HTTP/1.0"))
    assert answer.status == 200
    assert answer.body == IMAGE


def test_ipv6_literal_host(edge: ProxyServer, scripted: OriginServer) -> None:
    answer = exchange(edge.port, request("/images/landscape-640.jpg", "Host: [::1]:8080"))
    assert answer.status == 200
    assert answer.body == IMAGE
