"""Native signed URLs: vectors computed from the documented canonical string, round trips
for every style, time windows, scope (ACL) attacks, IP binding, bound parameters, key
rotation and the constant-time comparison."""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import urlsplit

import pytest

from proxy.auth import common, native
from proxy.auth.common import AuthInput, AuthResult
from proxy.auth.keys import KeyRing
from proxy.auth.native import (
    NativeVerifier,
    mint_token,
    sign_url,
    signed_cookie,
    split_path_token,
    token_free_path,
)
from proxy.auth.policy import AuthPolicy
from tests.unit.auth.conftest import NOW

CLIENT = "198.51.100.7"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def check(
    url: str,
    ring: KeyRing,
    *,
    now: float = NOW,
    client: str = CLIENT,
    cookie: str | None = None,
    skew: float = 0.0,
) -> AuthResult:
    """Verify a signed URL the way the pipeline will: split a path token, then verify."""
    parts = urlsplit(url)
    token, path = split_path_token(parts.path)
    headers = {"cookie": cookie} if cookie else {}
    inp = AuthInput(
        path=path, query=parts.query, headers=headers, client_ip=client, now=now, path_token=token
    )
    return AuthPolicy([NativeVerifier(ring, skew=skew)]).verify(inp)


# -- vectors --------------------------------------------------------------------------------


def test_vector_exact_path_follows_the_documented_canonical_string() -> None:
    key = KeyRing({"k1": b"secret"}).signing_key()
    claims = "k=k1&e=2000000000&p=/videos/a.mp4"
    message = b"edgeshield-v1\n" + claims.encode() + b"\n"
    expected = (
        b64url(claims.encode()) + "." + b64url(hmac.new(b"secret", message, "sha256").digest())
    )
    assert mint_token(key, expires=2_000_000_000, path="/videos/a.mp4") == expected


def test_vector_with_every_claim_and_bound_parameters() -> None:
    key = KeyRing({"k2": b"another secret"}).signing_key()
    claims = "k=k2&e=2000000000&n=1999990000&i=203.0.113.0/24&a=/videos/abc/&b=quality,lang"
    # bound: each name, then "=" + the percent-encoded value of each occurrence.
    bound = "quality=720&lang=en%20GB"
    message = b"edgeshield-v1\n" + claims.encode() + b"\n" + bound.encode()
    expected = (
        b64url(claims.encode())
        + "."
        + b64url(hmac.new(b"another secret", message, hashlib.sha256).digest())
    )
    token = mint_token(
        key,
        expires=2_000_000_000,
        not_before=1_999_990_000,
        ip="203.0.113.9/24",
        prefix="/videos/abc/",
        bind={"quality": ["720"], "lang": ["en GB"]},
    )
    assert token == expected


# -- round trips ------------------------------------------------------------------------------


def test_query_style_round_trip(ring: KeyRing) -> None:
    url = sign_url("https://cdn.example/videos/abc/master.m3u8", ring, ttl=60, now=NOW)
    assert "?token=" in url
    result = check(url, ring)
    assert result.ok, result
    assert result.scheme == "native"
    assert result.claims["path"] == "/videos/abc/master.m3u8"
    assert result.claims["kid"] == "k1"


def test_path_style_round_trip_and_relative_urls_inherit_it(ring: KeyRing) -> None:
    url = sign_url(
        "/videos/abc/master.m3u8", ring, ttl=60, now=NOW, prefix="/videos/abc/", style="path"
    )
    assert url.startswith("/_t/")
    assert check(url, ring).ok
    # A player resolves "seg-1.ts" against the playlist URL: same token, another file.
    segment = url.rsplit("/", 1)[0] + "/seg-1.ts"
    assert check(segment, ring).ok
    # Climbing out of the prefix does not work.
    outside = url.rsplit("/", 2)[0] + "/other/seg-1.ts"
    assert check(outside, ring).reason == "acl-mismatch"


def test_cookie_style_round_trip(ring: KeyRing) -> None:
    set_cookie = signed_cookie(ring, prefix="/videos/abc/", ttl=60, now=NOW)
    pair = set_cookie.split(";", 1)[0]
    assert "Path=/videos/abc/" in set_cookie and "HttpOnly" in set_cookie
    assert check("/videos/abc/master.m3u8", ring, cookie=f"a=b; {pair}").ok
    assert check("/videos/abd/master.m3u8", ring, cookie=pair).reason == "acl-mismatch"


def test_split_path_token() -> None:
    assert split_path_token("/_t/abc.def/videos/a.m3u8") == ("abc.def", "/videos/a.m3u8")
    assert split_path_token("/_t/abc.def") == ("abc.def", "/")
    assert split_path_token("/videos/_t/x/a") == (None, "/videos/_t/x/a")
    assert split_path_token("/_tx/abc/a") == (None, "/_tx/abc/a")
    assert split_path_token("/p/abc/a", marker="p") == ("abc", "/a")
    assert token_free_path("/_t/tok/a/b") == "/a/b"


def test_missing(ring: KeyRing) -> None:
    assert check("/videos/a.mp4", ring).reason == "missing"
    assert check("/videos/a.mp4?token=", ring).reason == "missing"


# -- time -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "skew", "reason"),
    [
        (NOW + 99, 0, ""),  # exp - 1
        (NOW + 100, 0, "expired"),  # exactly at exp: expired (valid while now < exp)
        (NOW + 101, 0, "expired"),
        (NOW + 129, 30, ""),  # skew keeps it a little longer
        (NOW + 130, 30, "expired"),
        (NOW - 11, 0, "not-yet-valid"),  # nbf = NOW - 10
        (NOW - 10, 0, ""),  # exactly at nbf: valid
        (NOW - 40, 30, ""),
        (NOW - 41, 30, "not-yet-valid"),
    ],
)
def test_expiry_and_not_before_boundaries(
    ring: KeyRing, now: float, skew: float, reason: str
) -> None:
    url = sign_url("/a.mp4", ring, expires=int(NOW) + 100, not_before=int(NOW) - 10)
    result = check(url, ring, now=now, skew=skew)
    assert (result.ok, result.reason) == (reason == "", reason)


# -- scope ------------------------------------------------------------------------------------

ACL_TABLE = [
    ("/a/b/", "/a/b/", True),
    ("/a/b/", "/a/b/c.ts", True),
    ("/a/b/", "/a/b/c/d.ts", True),
    ("/a/b/", "/a/bc", False),  # a prefix never authorizes a sibling
    ("/a/b/", "/a/bc/x.ts", False),
    ("/a/b/", "/a/b", False),
    ("/a/b", "/a/b", True),  # without the slash: the path and what is below it
    ("/a/b", "/a/b/x", True),
    ("/a/b", "/a/bc", False),
    ("/a/b/", "/a/b/../c", False),  # dot segments resolve first: /a/c
    ("/a/b/", "/a/b/%2e%2e/c", False),  # encoded dots are dots
    ("/a/b/", "/a/b/%2E%2E/c", False),
    ("/a/b/", "/a/b/.%2e/c", False),
    ("/a/b/", "/a//b/x.ts", True),  # duplicate slashes merge: /a/b/x.ts
    ("/a/b/", "//a/b/x.ts", True),
    ("/a/b/", "/a/b/..%2Fc", False),  # encoded slash: refused outright
    ("/a/b/", "/a/b/%2f..%2fc", False),
    ("/a/b/", "/a/b/%5c..%5cc", False),  # encoded backslash
    ("/a/b/", "/a/b/%252e%252e/c", False),  # double-encoded dots
    ("/a/b/", "/a/b/%252f/c", False),  # double-encoded slash
    ("/a/b/", "/a/b/%25ff", True),  # a literal percent is fine
    ("/a/b/", "/a/b/%7e", True),  # case of escapes: %7e is "~"
    ("/a/b/", "/A/B/x", False),  # paths are case-sensitive
    ("/a/b/", "/a/b/..;/c", False),  # servlet-style dot segment
    ("/a/%7Eb/", "/a/~b/x", True),  # escapes of unreserved characters decoded on both sides
]


@pytest.mark.parametrize(("prefix", "path", "allowed"), ACL_TABLE)
def test_prefix_acl_boundaries_and_normalisation_attacks(
    ring: KeyRing, prefix: str, path: str, allowed: bool
) -> None:
    token = mint_token(ring.signing_key(), expires=int(NOW) + 60, prefix=prefix)
    inp = AuthInput(path=path, query=f"token={token}", client_ip=CLIENT, now=NOW)
    result = AuthPolicy([NativeVerifier(ring)]).verify(inp)
    assert result.ok is allowed, result
    if not allowed:
        assert result.reason == "acl-mismatch"


def test_exact_path_token_covers_that_path_only(ring: KeyRing) -> None:
    url = sign_url("/a/b/c.ts", ring, ttl=60, now=NOW)
    query = urlsplit(url).query
    for path, ok in [
        ("/a/b/c.ts", True),
        ("/a//b/./c.ts", True),
        ("/a/b/c.tsx", False),
        ("/a/b/", False),
    ]:
        result = check(f"{path}?{query}", ring)
        assert result.ok is ok, (path, result)


def test_sign_url_refuses_a_url_outside_its_prefix(ring: KeyRing) -> None:
    with pytest.raises(ValueError, match="not under"):
        sign_url("/a/bc", ring, ttl=60, prefix="/a/b/")


# -- IP binding -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bound", "client", "ok"),
    [
        ("203.0.113.7", "203.0.113.7", True),
        ("203.0.113.7", "203.0.113.8", False),
        ("203.0.113.0/24", "203.0.113.200", True),
        ("203.0.113.0/24", "203.0.114.1", False),
        ("203.0.113.7", "::ffff:203.0.113.7", True),  # IPv4-mapped IPv6 peer
        ("2001:db8::/32", "2001:db8:1::5", True),
        ("2001:db8::/32", "2001:db9::5", False),
        ("203.0.113.7", "not-an-ip", False),
    ],
)
def test_ip_binding(ring: KeyRing, bound: str, client: str, ok: bool) -> None:
    url = sign_url("/a.mp4", ring, ttl=60, now=NOW, ip=bound)
    result = check(url, ring, client=client)
    assert result.ok is ok
    if not ok:
        assert result.reason == "ip-mismatch"


# -- bound parameters -------------------------------------------------------------------------


def test_bound_parameters_cannot_change(ring: KeyRing) -> None:
    url = sign_url("/v/a.m3u8?quality=720&debug=1", ring, ttl=60, now=NOW, bind=["quality"])
    assert check(url, ring).ok
    assert check(url.replace("debug=1", "debug=2"), ring).ok  # not bound
    assert check(url.replace("quality=720", "quality=1080"), ring).reason == "bad-signature"
    assert check(url.replace("quality=720&", ""), ring).reason == "bad-signature"
    assert check(url + "&quality=1080", ring).reason == "bad-signature"  # a second value
    assert check(url.replace("quality=720", "%71uality=1080&quality=720"), ring).reason == (
        "bad-signature"
    )


# -- keys -------------------------------------------------------------------------------------


def test_key_rotation_two_kids_active_and_unknown_kid(ring: KeyRing) -> None:
    old = sign_url("/a.mp4", ring, ttl=60, now=NOW, kid="k1")
    new = sign_url("/a.mp4", ring, ttl=60, now=NOW, kid="k2")
    assert check(old, ring).ok and check(new, ring).ok
    retired = KeyRing({"k2": b"second secret key"})
    result = check(old, retired)
    assert (result.reason, result.claims.get("kid")) == ("unknown-kid", "k1")
    assert check(new, retired).ok
    # Same kid, different secret: a bad signature, not an unknown key.
    assert check(new, KeyRing({"k2": b"rotated secret"})).reason == "bad-signature"


@pytest.mark.parametrize(
    "token",
    [
        "x",
        "a.b.c",
        ".",
        "abc.",
        "!!!.???",
        "azE.",  # claims "k1" without fields
        b64url(b"k=k1&e=1") + ".AAAA",  # no scope
        b64url(b"k=k1&e=1&p=/a&a=/b") + ".AAAA",  # both scopes
        b64url(b"k=k1&k=k2&e=1&p=/a") + ".AAAA",  # repeated claim
        b64url(b"k=k1&e=1&p=/a&z=1") + ".AAAA",  # unknown claim
        b64url(b"k=k1&e=1&p=/a\n") + ".AAAA",
        b64url("k=k1&e=1&p=/ä".encode()) + ".AAAA",
        "é.é",
    ],
)
def test_malformed_tokens_are_bad_signatures(ring: KeyRing, token: str) -> None:
    inp = AuthInput(path="/a", query="", client_ip=CLIENT, now=NOW, path_token=token)
    assert AuthPolicy([NativeVerifier(ring)]).verify(inp).reason == "bad-signature"


def test_expiry_is_only_read_after_the_signature(ring: KeyRing) -> None:
    # A forged token with a bogus expiry: the signature fails first.
    forged = b64url(b"k=k1&e=never&p=/a") + "." + b64url(bytes(32))
    inp = AuthInput(path="/a", client_ip=CLIENT, now=NOW, path_token=forged)
    assert AuthPolicy([NativeVerifier(ring)]).verify(inp).reason == "bad-signature"


# -- constant time ----------------------------------------------------------------------------


def test_signatures_are_compared_in_constant_time_on_equal_lengths(
    ring: KeyRing, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[int, int]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(common.hmac, "compare_digest", spy)
    good = mint_token(ring.signing_key(), expires=int(NOW) + 60, path="/a")
    claims, sig = good.split(".")
    raw = base64.urlsafe_b64decode(sig + "=")
    variants = [
        good,
        claims + "." + b64url(raw[:1] + bytes(31)),  # right first byte
        claims + "." + b64url(raw[:31] + bytes([raw[31] ^ 1])),  # wrong last byte only
        claims + "." + b64url(raw[:16]),  # too short
        claims + "." + b64url(raw + b"x"),  # too long
        claims + ".",
    ]
    for token in variants:
        calls.clear()
        inp = AuthInput(path="/a", client_ip=CLIENT, now=NOW, path_token=token)
        result = AuthPolicy([NativeVerifier(ring)]).verify(inp)
        assert result.ok is (token == good)
        assert calls == [(32, 32)], token  # exactly one full-length comparison
    assert native.hmac is hmac


def test_key_material_never_appears_in_results_or_reprs(ring: KeyRing) -> None:
    url = sign_url("/a.mp4", ring, ttl=60, now=NOW)
    result = check(url, ring)
    text = repr(result) + repr(ring) + repr(ring.signing_key()) + str(ring)
    assert "first secret key" not in text and "second secret key" not in text
    assert "secret=<16 bytes>" in repr(ring.signing_key())
