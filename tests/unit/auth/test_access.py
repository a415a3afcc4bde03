"""Client address behind trusted proxies, IP/country lists, referer and CORS tables."""

from __future__ import annotations

import pytest

from config.auth import (
    CorsSettings,
    CountrySettings,
    IpAccessSettings,
    RefererSettings,
    RouteAccessSettings,
    TrustedProxies,
)
from proxy.auth.access import (
    AccessPolicy,
    CorsPolicy,
    IpRules,
    TrustedNetworks,
    client_ip,
    cors_headers,
    country_allowed,
    country_of,
    forwarded_for,
    ip_allowed,
    is_preflight,
    preflight,
    referer_allowed,
)
from proxy.auth.common import AuthInput
from proxy.auth.keys import KeyRing
from proxy.auth.native import NativeVerifier, sign_url
from proxy.auth.policy import AuthPolicy
from proxy.http.vary import merge_vary

TRUSTED = TrustedNetworks.from_settings(
    TrustedProxies(cidrs=("10.0.0.0/8", "2001:db8:ffff::/48"), country_header="cf-ipcountry")
)
FORWARDED = TrustedNetworks.from_settings(TrustedProxies(cidrs=("10.0.0.0/8",), header="forwarded"))


# -- client address -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("peer", "xff", "expected"),
    [
        ("203.0.113.9", None, "203.0.113.9"),
        ("203.0.113.9", "1.2.3.4", "203.0.113.9"),  # untrusted peer: header ignored
        ("10.0.0.1", None, "10.0.0.1"),
        ("10.0.0.1", "198.51.100.7", "198.51.100.7"),
        ("10.0.0.1", "1.2.3.4, 198.51.100.7", "198.51.100.7"),  # spoofed left part ignored
        ("10.0.0.1", "198.51.100.7, 10.0.0.2, 10.0.0.3", "198.51.100.7"),  # proxy chain
        ("10.0.0.1", "10.0.0.5, 10.0.0.2", "10.0.0.5"),  # all trusted: the leftmost
        ("10.0.0.1", "garbage, 10.0.0.2", "10.0.0.2"),  # stop at junk, keep the trusted hop
        ("10.0.0.1", "198.51.100.7, garbage", "10.0.0.1"),
        ("10.0.0.1", "198.51.100.7:4711", "198.51.100.7"),  # a port
        ("10.0.0.1", "[2001:db8::1]:4711", "2001:db8::1"),
        ("::ffff:10.0.0.1", "198.51.100.7", "198.51.100.7"),  # mapped IPv4 peer
        ("2001:db8:ffff::1", "2001:db8::7", "2001:db8::7"),
        ("not-an-ip", "198.51.100.7", "not-an-ip"),
    ],
)
def test_client_ip_from_x_forwarded_for_only_through_trusted_proxies(
    peer: str, xff: str | None, expected: str
) -> None:
    headers = {"x-forwarded-for": xff} if xff is not None else {}
    assert client_ip(peer, headers, TRUSTED) == expected


def test_client_ip_without_trusted_proxies_is_the_peer() -> None:
    nobody = TrustedNetworks()
    assert client_ip("10.0.0.1", {"x-forwarded-for": "1.2.3.4"}, nobody) == "10.0.0.1"


@pytest.mark.parametrize(
    ("forwarded", "expected"),
    [
        ("for=198.51.100.7", "198.51.100.7"),
        ('for="[2001:db8:cafe::17]:4711"', "2001:db8:cafe::17"),
        ("for=192.0.2.43, for=198.51.100.17;proto=https", "198.51.100.17"),
        ("for=198.51.100.17;by=10.0.0.1, for=10.0.0.2", "198.51.100.17"),
        ("for=unknown, for=10.0.0.2", "10.0.0.2"),
        ("proto=https", "10.0.0.1"),
    ],
)
def test_client_ip_from_forwarded(forwarded: str, expected: str) -> None:
    assert client_ip("10.0.0.1", {"forwarded": forwarded}, FORWARDED) == expected


def test_forwarded_parsing() -> None:
    assert forwarded_for('for=a;proto="x,y", For=b') == ["a", "b"]


def test_ip_bound_token_through_trusted_proxy_only() -> None:
    ring = KeyRing({"k": b"secret"})
    url = sign_url("/a.mp4", ring, ttl=60, now=1_700_000_000, ip="198.51.100.7")
    query = url.split("?", 1)[1]
    verifier = AuthPolicy([NativeVerifier(ring)])

    def check(peer: str, xff: str) -> str:
        ip = client_ip(peer, {"x-forwarded-for": xff}, TRUSTED)
        inp = AuthInput(path="/a.mp4", query=query, client_ip=ip, now=1_700_000_000)
        return verifier.verify(inp).reason

    assert check("10.0.0.1", "198.51.100.7") == ""  # via the trusted CDN
    assert check("203.0.113.66", "198.51.100.7") == "ip-mismatch"  # spoofed header
    assert check("10.0.0.1", "198.51.100.7, 203.0.113.66") == "ip-mismatch"


def test_country_only_from_trusted_peers() -> None:
    assert country_of("10.0.0.1", {"cf-ipcountry": "de"}, TRUSTED) == "DE"
    assert country_of("203.0.113.9", {"cf-ipcountry": "DE"}, TRUSTED) is None
    assert country_of("10.0.0.1", {"cf-ipcountry": "XYZ"}, TRUSTED) is None
    assert country_of("10.0.0.1", {}, TRUSTED) is None
    assert country_of("10.0.0.1", {"cf-ipcountry": "DE"}, FORWARDED) is None  # no header set


# -- lists ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("allow", "deny", "ip", "ok"),
    [
        ((), (), "1.2.3.4", True),
        (("10.0.0.0/8",), (), "10.1.2.3", True),
        (("10.0.0.0/8",), (), "11.0.0.1", False),
        ((), ("10.0.0.0/8",), "10.1.2.3", False),
        ((), ("10.0.0.0/8",), "11.0.0.1", True),
        (("10.0.0.0/8",), ("10.9.0.0/16",), "10.9.1.1", False),  # deny wins
        (("2001:db8::/32",), (), "2001:db8::1", True),
        (("10.0.0.0/8",), (), "::ffff:10.0.0.1", True),
        (("10.0.0.0/8",), (), "junk", False),
        ((), (), "junk", True),
    ],
)
def test_ip_allow_deny(allow: tuple[str, ...], deny: tuple[str, ...], ip: str, ok: bool) -> None:
    assert ip_allowed(IpRules.from_settings(IpAccessSettings(allow=allow, deny=deny)), ip) is ok


@pytest.mark.parametrize(
    ("allow", "deny", "country", "ok"),
    [
        ((), (), None, True),
        (("DE", "AT"), (), "de", True),
        (("DE", "AT"), (), "FR", False),
        (("DE",), (), None, False),  # unknown and an allow list: refused
        ((), ("RU",), "RU", False),
        ((), ("RU",), None, True),
    ],
)
def test_country_allow_deny(
    allow: tuple[str, ...], deny: tuple[str, ...], country: str | None, ok: bool
) -> None:
    assert country_allowed(CountrySettings(allow=allow, deny=deny), country) is ok


REFERER = RefererSettings(allow_hosts=("example.com", "*.example.org"), allow_empty=True)


@pytest.mark.parametrize(
    ("referer", "settings", "ok"),
    [
        (None, REFERER, True),
        ("", REFERER, True),
        (None, RefererSettings(allow_hosts=("example.com",), allow_empty=False), False),
        ("https://example.com/page", REFERER, True),
        ("https://EXAMPLE.com:8443/page", REFERER, True),
        ("https://www.example.com/", REFERER, False),  # no wildcard for example.com
        ("https://a.example.org/x", REFERER, True),
        ("https://a.b.example.org/x", REFERER, True),
        ("https://example.org/x", REFERER, False),  # the apex is not a subdomain
        ("https://evilexample.org/", REFERER, False),
        ("https://example.org.evil.com/", REFERER, False),
        ("https://example.com@evil.com/", REFERER, False),
        ("ftp://example.com/", REFERER, False),
        ("not a url", REFERER, False),
        ("https://[::1/", REFERER, False),
    ],
)
def test_referer_table(referer: str | None, settings: RefererSettings, ok: bool) -> None:
    assert referer_allowed(settings, referer) is ok


def test_access_policy_check() -> None:
    policy = AccessPolicy.from_settings(
        RouteAccessSettings(
            ip=IpAccessSettings(deny=("203.0.113.0/24",)),
            country=CountrySettings(allow=("DE",)),
            referer=RefererSettings(allow_hosts=("example.com",), allow_empty=False),
        )
    )
    good = {"referer": "https://example.com/"}
    assert policy.check(client_ip="1.2.3.4", country="DE", headers=good) == ""
    assert policy.check(client_ip="203.0.113.1", country="DE", headers=good) == "ip-denied"
    assert policy.check(client_ip="1.2.3.4", country="FR", headers=good) == "country-denied"
    assert policy.check(client_ip="1.2.3.4", country="DE", headers={}) == "referer-denied"
    assert AccessPolicy.from_settings(None).check(client_ip="x", country=None, headers={}) == ""


# -- CORS -----------------------------------------------------------------------------------

ANY = CorsPolicy.from_settings(CorsSettings())
LISTED = CorsPolicy.from_settings(
    CorsSettings(allow_origins=("https://app.example.com", "https://*.example.org"))
)
CREDENTIALED = CorsPolicy.from_settings(
    CorsSettings(allow_origins=("https://app.example.com",), allow_credentials=True)
)


def preflight_headers(
    origin: str, method: str = "GET", request_headers: str = ""
) -> dict[str, str]:
    headers = {"origin": origin, "access-control-request-method": method}
    if request_headers:
        headers["access-control-request-headers"] = request_headers
    return headers


@pytest.mark.parametrize(
    ("policy", "headers", "status", "expect"),
    [
        (ANY, preflight_headers("https://x.test"), 204, {"access-control-allow-origin": "*"}),
        (ANY, preflight_headers("https://x.test", "GET", "Range, If-None-Match"), 204, {}),
        (ANY, preflight_headers("https://x.test", "PUT"), 403, {}),
        (ANY, preflight_headers("https://x.test", "GET", "x-custom"), 403, {}),
        (ANY, preflight_headers("https://x.test", "POST", "content-type"), 204, {}),
        (
            LISTED,
            preflight_headers("https://app.example.com"),
            204,
            {"access-control-allow-origin": "https://app.example.com", "vary": "origin"},
        ),
        (LISTED, preflight_headers("https://a.example.org"), 204, {"vary": "origin"}),
        (LISTED, preflight_headers("https://example.org"), 403, {"vary": "origin"}),
        (LISTED, preflight_headers("https://evil.com"), 403, {"vary": "origin"}),
        (LISTED, preflight_headers("http://app.example.com"), 403, {}),
        (
            CREDENTIALED,
            preflight_headers("https://app.example.com"),
            204,
            {
                "access-control-allow-origin": "https://app.example.com",
                "access-control-allow-credentials": "true",
                "vary": "origin",
            },
        ),
    ],
)
def test_preflight_table(
    policy: CorsPolicy, headers: dict[str, str], status: int, expect: dict[str, str]
) -> None:
    assert is_preflight("OPTIONS", headers)
    answer = preflight(policy, headers)
    got = dict(answer.headers)
    assert answer.status == status and answer.allowed is (status == 204)
    for name, value in expect.items():
        assert got.get(name) == value, (name, got)
    if status == 204:
        assert got["access-control-allow-methods"] == "GET, HEAD, OPTIONS"
        assert "range" in got["access-control-allow-headers"]
        assert got["access-control-max-age"] == "600"
    else:
        assert "access-control-allow-origin" not in got
    assert ("vary" in got) is policy.varies


def test_not_a_preflight() -> None:
    assert not is_preflight("GET", preflight_headers("https://x"))
    assert not is_preflight("OPTIONS", {"origin": "https://x"})


@pytest.mark.parametrize(
    ("policy", "origin", "expect", "vary"),
    [
        (ANY, "https://x.test", "*", False),  # the same answer for everyone: no Vary
        (ANY, None, "*", False),
        (LISTED, "https://app.example.com", "https://app.example.com", True),
        (LISTED, "https://evil.com", None, True),
        (LISTED, None, None, True),  # Vary even without Origin: a cache must not mix them
        (CREDENTIALED, "https://app.example.com", "https://app.example.com", True),
    ],
)
def test_actual_response_headers(
    policy: CorsPolicy, origin: str | None, expect: str | None, vary: bool
) -> None:
    headers = dict(cors_headers(policy, origin))
    assert headers.get("access-control-allow-origin") == expect
    assert ("vary" in headers) is vary
    if expect:
        exposed = headers["access-control-expose-headers"].split(", ")
        assert "content-range" in exposed and "accept-ranges" in exposed
    assert ("access-control-allow-credentials" in headers) is (
        policy.credentials and expect is not None
    )


def test_cors_settings_validation() -> None:
    with pytest.raises(ValueError, match="credentials"):
        CorsSettings(allow_credentials=True)
    with pytest.raises(ValueError, match="origin"):
        CorsSettings(allow_origins=("example.com",))


def test_merge_vary() -> None:
    merged = merge_vary(
        [(b"vary", b"Accept-Encoding"), (b"x", b"1"), (b"vary", b"origin, accept-encoding")]
    )
    assert merged == [(b"x", b"1"), (b"vary", b"Accept-Encoding, origin")]
