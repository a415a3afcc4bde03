"""Signed URLs, path tokens, signed cookies and access rules through a real edgeshield
process in front of a real origin: what is refused, why (edgeshield-auth-reason), and
that every signed URL for one object shares one cached copy without the token ever
reaching the origin."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from proxy.auth.keys import Key
from proxy.auth.native import sign_url, signed_cookie
from tests.support.origin_server import OriginServer
from tests.support.proxy_server import ProxyServer, running_proxy

# Caching semantics hold on every server engine (tests/conftest.py).
ON_EVERY_ENGINE = True

SECRET = "integration-secret-k1-0123456789"
OLD_SECRET = "integration-secret-k0-9876543210"
KEYS = K1 = Key("k1", SECRET.encode())
K0 = Key("k0", OLD_SECRET.encode())


@pytest.fixture(scope="module")
def auth_proxy(origin_server: OriginServer, engine: str | None) -> Iterator[ProxyServer]:
    config = f"""
[server]
access_log = "off"
[auth]
signing_kid = "k1"
clock_skew = 0
[auth.keys.k1]
secret = "{SECRET}"
[auth.keys.k0]
secret = "{OLD_SECRET}"
[origins.main]
kind = "http"
url = "{origin_server.url}"
[[routes]]
path_prefix = "/private"
origin = "main"
[routes.auth]
schemes = ["native"]
[[routes]]
path_prefix = "/hotlink"
origin = "main"
[routes.access.referer]
allow_hosts = ["www.example.com"]
allow_empty = false
[[routes]]
path_prefix = "/cors"
origin = "main"
[routes.access.cors]
allow_origins = ["https://app.example.com"]
[[routes]]
path_prefix = "/blocked"
origin = "main"
[routes.access.ip]
deny = ["127.0.0.0/8", "::1"]
[[routes]]
path_prefix = "/limited"
origin = "main"
[routes.access.ratelimit]
rate = 0.5
burst = 3
[[routes]]
path_prefix = "/"
origin = "main"
"""
    with running_proxy(config, engine=engine) as proxy:
        yield proxy


def _flip(url: str, i: int) -> str:
    return url[:i] + ("A" if url[i] != "A" else "B") + url[i + 1 :]


def _script(origin: OriginServer, path: str) -> None:
    origin.script(path, body=f"body of {path}", headers={"cache-control": "max-age=60"})


def test_unsigned_request_is_refused_with_reason(
    origin: OriginServer, auth_proxy: ProxyServer
) -> None:
    _script(origin, "/private/a.mp4")
    r = httpx.get(auth_proxy.url + "/private/a.mp4")
    assert r.status_code == 403
    assert r.headers["edgeshield-auth-reason"] == "missing"
    assert r.headers["cache-control"] == "no-store"
    assert r.text == "forbidden: missing\n"
    assert origin.requests("/private/a.mp4") == 0


def test_signed_urls_share_one_copy_and_the_origin_never_sees_a_token(
    origin: OriginServer, auth_proxy: ProxyServer
) -> None:
    _script(origin, "/private/b.mp4")
    first = sign_url("/private/b.mp4?v=2", KEYS, ttl=600)
    second = sign_url("/private/b.mp4?v=2", K0, ttl=900)  # another key, another token
    assert first != second
    with httpx.Client(base_url=auth_proxy.url) as client:
        a = client.get(first)
        b = client.get(second)
        c = client.get(first)  # fresh memory hit (the fast path verifies too)
    assert (a.status_code, b.status_code, c.status_code) == (200, 200, 200)
    assert a.text == "body of /private/b.mp4"
    assert b.headers["cache-status"].startswith("edgeshield; hit")
    assert c.headers["cache-status"].startswith("edgeshield; hit")
    assert origin.requests("/private/b.mp4") == 1
    assert origin.stats()["last_target"]["/private/b.mp4"] == "/private/b.mp4?v=2"


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (lambda url: url.replace("b.mp4", "c.mp4"), "acl-mismatch"),
        (lambda url: url[:-2] + ("AA" if not url.endswith("AA") else "BB"), "bad-signature"),
        (lambda url: _flip(url, len(url) // 2 + 10), "bad-signature"),
    ],
)
def test_tampered_urls_are_refused_on_hits_too(
    origin: OriginServer, auth_proxy: ProxyServer, mangle: object, reason: str
) -> None:
    _script(origin, "/private/b.mp4")
    _script(origin, "/private/c.mp4")
    good = sign_url("/private/b.mp4", KEYS, ttl=600)
    with httpx.Client(base_url=auth_proxy.url) as client:
        assert client.get(good).status_code == 200  # cached now
        bad = client.get(mangle(good))  # type: ignore[operator]
    assert bad.status_code == 403
    assert bad.headers["edgeshield-auth-reason"] == reason


def test_expired_and_not_yet_valid_tokens(origin: OriginServer, auth_proxy: ProxyServer) -> None:
    _script(origin, "/private/d.mp4")
    now = int(time.time())
    expired = sign_url("/private/d.mp4", KEYS, expires=now - 5)
    early = sign_url("/private/d.mp4", KEYS, expires=now + 600, not_before=now + 300)
    with httpx.Client(base_url=auth_proxy.url) as client:
        assert client.get(sign_url("/private/d.mp4", KEYS, ttl=60)).status_code == 200
        r1 = client.get(expired)
        r2 = client.get(early)
    assert (r1.status_code, r1.headers["edgeshield-auth-reason"]) == (403, "expired")
    assert (r2.status_code, r2.headers["edgeshield-auth-reason"]) == (403, "not-yet-valid")


def test_path_token_covers_a_rendition_directory(
    origin: OriginServer, auth_proxy: ProxyServer
) -> None:
    for name in ("master.m3u8", "seg1.ts"):
        _script(origin, f"/private/v/abc/{name}")
    _script(origin, "/private/v/abcd/seg1.ts")
    url = sign_url(
        "/private/v/abc/master.m3u8", KEYS, ttl=600, prefix="/private/v/abc/", style="path"
    )
    assert url.startswith("/_t/")
    token_dir = url.rsplit("/", 1)[0]  # what a relative URI in the playlist resolves against
    with httpx.Client(base_url=auth_proxy.url) as client:
        playlist = client.get(url)
        segment = client.get(f"{token_dir}/seg1.ts")
        sibling = client.get(token_dir.replace("/abc", "/abcd") + "/seg1.ts")
        plain = client.get(sign_url("/private/v/abc/seg1.ts", KEYS, ttl=60))
    assert playlist.status_code == 200 and playlist.text == "body of /private/v/abc/master.m3u8"
    assert segment.status_code == 200
    assert (sibling.status_code, sibling.headers["edgeshield-auth-reason"]) == (403, "acl-mismatch")
    # the query-signed URL shares the path-token copy: one origin fetch per object
    assert plain.headers["cache-status"].startswith("edgeshield; hit")
    assert origin.requests("/private/v/abc/seg1.ts") == 1
    assert origin.stats()["last_target"]["/private/v/abc/seg1.ts"] == "/private/v/abc/seg1.ts"


def test_signed_cookie_is_accepted_and_stripped_from_the_origin_request(
    origin: OriginServer, auth_proxy: ProxyServer
) -> None:
    _script(origin, "/private/cookie/e.mp4")
    set_cookie = signed_cookie(KEYS, prefix="/private/cookie/", ttl=600)
    pair = set_cookie.split(";", 1)[0]
    r = httpx.get(
        auth_proxy.url + "/private/cookie/e.mp4",
        headers={"cookie": f"theme=dark; {pair}"},
    )
    assert r.status_code == 200
    seen = origin.stats()["last_headers"]["/private/cookie/e.mp4"]
    assert seen.get("cookie") == "theme=dark"
    other = httpx.get(auth_proxy.url + "/private/f.mp4", headers={"cookie": pair})
    assert (other.status_code, other.headers["edgeshield-auth-reason"]) == (403, "acl-mismatch")


def test_referer_allow_list(origin: OriginServer, auth_proxy: ProxyServer) -> None:
    _script(origin, "/hotlink/i.jpg")
    ok = httpx.get(
        auth_proxy.url + "/hotlink/i.jpg", headers={"referer": "https://www.example.com/p"}
    )
    other = httpx.get(auth_proxy.url + "/hotlink/i.jpg", headers={"referer": "https://evil.test/"})
    empty = httpx.get(auth_proxy.url + "/hotlink/i.jpg")
    assert ok.status_code == 200
    assert (other.status_code, other.headers["edgeshield-auth-reason"]) == (403, "referer-denied")
    assert empty.status_code == 403


def test_ip_deny_list(origin: OriginServer, auth_proxy: ProxyServer) -> None:
    _script(origin, "/blocked/x")
    r = httpx.get(auth_proxy.url + "/blocked/x")
    assert (r.status_code, r.headers["edgeshield-auth-reason"]) == (403, "ip-denied")
    assert origin.requests("/blocked/x") == 0


def test_cors_preflight_and_response_headers(origin: OriginServer, auth_proxy: ProxyServer) -> None:
    _script(origin, "/cors/v.mp4")
    app = "https://app.example.com"
    with httpx.Client(base_url=auth_proxy.url) as client:
        pre = client.options(
            "/cors/v.mp4",
            headers={
                "origin": app,
                "access-control-request-method": "GET",
                "access-control-request-headers": "range",
            },
        )
        denied = client.options(
            "/cors/v.mp4",
            headers={"origin": "https://evil.test", "access-control-request-method": "GET"},
        )
        get = client.get("/cors/v.mp4", headers={"origin": app, "range": "bytes=0-3"})
        foreign = client.get("/cors/v.mp4", headers={"origin": "https://evil.test"})
        bare = client.get("/cors/v.mp4")
    assert pre.status_code == 204
    assert pre.headers["access-control-allow-origin"] == app
    assert "range" in pre.headers["access-control-allow-headers"]
    assert denied.status_code == 403 and "access-control-allow-origin" not in denied.headers
    assert get.status_code == 206
    assert get.headers["access-control-allow-origin"] == app
    assert "content-range" in get.headers["access-control-expose-headers"]
    # the answer depends on Origin, so every response says so, exactly once
    for r in (get, foreign, bare):
        assert [v.lower() for k, v in r.headers.multi_items() if k == "vary"] == ["origin"]
    assert "access-control-allow-origin" not in foreign.headers
    assert origin.requests("/cors/v.mp4", "OPTIONS") == 0


def test_rate_limit_answers_429_with_retry_after(
    origin: OriginServer, auth_proxy: ProxyServer
) -> None:
    _script(origin, "/limited/r")
    with httpx.Client(base_url=auth_proxy.url) as client:
        codes = [client.get("/limited/r") for _ in range(5)]
    assert [r.status_code for r in codes[:3]] == [200, 200, 200]
    refused = codes[3]
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["edgeshield-auth-reason"] == "rate-limited"
