"""Per-route policy: schemes tried in order, token sources, token stripping for the
cache key and origin request, denial answers, and building from settings."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from config.auth import AuthSettings, RouteAuthSettings, auth_reference_errors
from proxy.auth import (
    OPEN,
    AuthContext,
    build_policy,
    denial,
    log_denial,
    sign_url,
    split_path_token,
    strip_token,
    verify,
)
from proxy.auth.akamai import generate_token
from proxy.auth.bunny import sign_basic
from proxy.auth.common import REASONS, AuthInput
from proxy.auth.keys import KeyError_

NOW = 1_700_000_000.0


@dataclass
class FakeRequest:
    """The fields of proxy.request.Request that auth reads."""

    path: str
    query: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    client: str = "198.51.100.7"
    now: float = NOW
    scheme: str = "https"
    host: str = "cdn.example"


def auth_settings(tmp_path: Path) -> AuthSettings:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (tmp_path / "cf.pem").write_bytes(pem)
    (tmp_path / "k2.key").write_text("second secret\n")
    return AuthSettings.model_validate(
        {
            "keys": {
                "k1": {"secret": "first secret"},
                "k2": {"secret_file": str(tmp_path / "k2.key")},
                "aka": {"secret": "0a0b0c0d0e0f"},
                "bunny": {"secret": "bunny-key"},
            },
            "signing_kid": "k1",
            "clock_skew": 5,
            "akamai": {"key": "aka", "token_name": "hdnts"},
            "bunny": {"key": "bunny"},
            "cloudfront": {"public_keys": {"KCF": {"public_key_file": str(tmp_path / "cf.pem")}}},
            "nginx": {"secure_link_md5": "$secure_link_expires$uri secret"},
        }
    )


@pytest.fixture
def ctx(tmp_path: Path) -> AuthContext:
    return AuthContext.from_settings(auth_settings(tmp_path))


def test_context_loads_keys_and_hides_them(ctx: AuthContext) -> None:
    assert ctx.keys.kids == ("aka", "bunny", "k1", "k2")
    assert ctx.keys.get("k2").secret == b"second secret"
    assert ctx.akamai_key == bytes.fromhex("0a0b0c0d0e0f")
    assert "secret" not in repr(ctx).replace("secret=<", "")
    assert "first secret" not in repr(ctx.settings)


def test_native_route_through_verify(ctx: AuthContext) -> None:
    policy = build_policy(RouteAuthSettings(), ctx)
    url = sign_url("/videos/a.mp4?x=1", ctx.keys, ttl=60, now=NOW)
    parts = urlsplit(url)
    assert verify(FakeRequest(parts.path, parts.query), policy).ok
    assert verify(FakeRequest(parts.path, "x=1"), policy).reason == "missing"
    # The pipeline splits path tokens before routing and hands the token over.
    url = sign_url("/videos/a.mp4", ctx.keys, ttl=60, now=NOW, style="path")
    token, path = split_path_token(urlsplit(url).path, policy.marker or "_t")
    assert verify(FakeRequest(path), policy, path_token=token).ok
    # Skew from [auth]: 5 s.
    assert verify(FakeRequest(parts.path, parts.query, now=NOW + 64), policy).ok
    late = verify(FakeRequest(parts.path, parts.query, now=NOW + 65), policy)
    assert late.reason == "expired"


def test_schemes_in_order_first_valid_wins(ctx: AuthContext) -> None:
    policy = build_policy(RouteAuthSettings(schemes=("native", "akamai", "bunny")), ctx)
    assert policy.schemes == ("native", "akamai", "bunny")
    akamai = generate_token("0a0b0c0d0e0f", exp=int(NOW) + 60, acl="/*")
    result = verify(FakeRequest("/a", f"hdnts={akamai}"), policy)
    assert (result.ok, result.scheme) == (True, "akamai")
    bunny = sign_basic("bunny-key", "/a", int(NOW) + 60)
    result = verify(FakeRequest("/a", f"token={bunny}&expires={int(NOW) + 60}"), policy)
    # "token" is both native's and bunny's parameter: native fails, bunny succeeds.
    assert (result.ok, result.scheme) == (True, "bunny")
    # None valid: the first failure found is reported.
    result = verify(FakeRequest("/a", "hdnts=exp=1~hmac=00"), policy)
    assert (result.ok, result.scheme, result.reason) == (False, "akamai", "bad-signature")
    result = verify(FakeRequest("/a"), policy)
    assert (result.scheme, result.reason) == ("native", "missing")


def test_not_required_and_open_routes(ctx: AuthContext) -> None:
    assert verify(FakeRequest("/a"), OPEN).ok
    lax = build_policy(RouteAuthSettings(required=False), ctx)
    assert verify(FakeRequest("/a", "token=garbage"), lax).ok
    assert lax.strip_token("token=garbage&x=1") == "x=1"  # still stripped
    assert build_policy(None, ctx) is OPEN


def test_styles_limit_where_native_tokens_are_read(ctx: AuthContext) -> None:
    policy = build_policy(RouteAuthSettings(styles=("cookie",), cookie="sess"), ctx)
    url = sign_url("/a.mp4", ctx.keys, ttl=60, now=NOW)
    parts = urlsplit(url)
    assert verify(FakeRequest(parts.path, parts.query), policy).reason == "missing"
    token = parts.query.split("=", 1)[1]
    assert verify(FakeRequest("/a.mp4", headers={"cookie": f"sess={token}"}), policy).ok
    assert policy.marker is None
    assert policy.strip_params == frozenset()
    assert policy.strip_cookies(f"a=1; sess={token}; b=2") == "a=1; b=2"
    assert policy.strip_cookies(f"sess={token}") is None


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ""),
        ("token=abc", ""),
        ("a=1&token=abc&b=2", "a=1&b=2"),
        ("token=abc&token=def&a=%20", "a=%20"),
        ("%74oken=abc&a=1", "a=1"),  # names compared decoded
        ("tokenx=1&xtoken=2", "tokenx=1&xtoken=2"),
        ("a&&token&b=", "a&b="),
        ("Expires=1&Signature=s&Key-Pair-Id=K&color=red", "color=red"),
        ("hdnts=exp%3D1&md5=x&expires=1&token_path=%2Fa%2F", ""),
    ],
)
def test_strip_token_for_the_cache_key(ctx: AuthContext, query: str, expected: str) -> None:
    policy = build_policy(
        RouteAuthSettings(schemes=("native", "akamai", "cloudfront", "bunny", "nginx")), ctx
    )
    assert policy.strip_token(query) == expected


def test_every_signed_url_for_one_object_shares_one_cache_key(ctx: AuthContext) -> None:
    policy = build_policy(RouteAuthSettings(), ctx)
    keys = set()
    for ttl, kid in [(60, "k1"), (120, "k1"), (60, "k2")]:
        parts = urlsplit(sign_url("/v/a.mp4?q=hd", ctx.keys, ttl=ttl, kid=kid, now=NOW))
        keys.add(f"{parts.path}?{policy.strip_token(parts.query)}")
    assert keys == {"/v/a.mp4?q=hd"}


def test_strip_token_function() -> None:
    assert strip_token("a=1&b=2&c=3", ["b"]) == "a=1&c=3"
    assert strip_token("a=1", []) == "a=1"


def test_denial_answer_and_log_line(caplog: pytest.LogCaptureFixture, ctx: AuthContext) -> None:
    policy = build_policy(RouteAuthSettings(), ctx)
    result = verify(FakeRequest("/a", "token=x.y"), policy)
    status, headers, body = denial(result)
    assert status == 403
    assert (b"edgeshield-auth-reason", b"bad-signature") in headers
    assert body == b"forbidden: bad-signature\n"
    with caplog.at_level(logging.INFO, logger="edgeshield.auth"):
        log_denial(result, route="r", client="c", path="/a")
    assert "reason=bad-signature" in caplog.text and "secret" not in caplog.text
    assert set(REASONS) == {
        "missing",
        "expired",
        "not-yet-valid",
        "bad-signature",
        "unknown-kid",
        "ip-mismatch",
        "acl-mismatch",
    }


def test_unconfigured_schemes(tmp_path: Path) -> None:
    bare = AuthContext.from_settings(AuthSettings())
    for scheme in ("akamai", "cloudfront", "bunny", "nginx"):
        with pytest.raises(ValueError, match=scheme):
            build_policy(RouteAuthSettings(schemes=(scheme,)), bare)
    errors = auth_reference_errors(
        AuthSettings(), [None, RouteAuthSettings(schemes=("native", "cloudfront"))]
    )
    assert errors == [
        ("routes[1].auth.schemes", "'native' needs [auth.keys.<kid>] to be configured"),
        ("routes[1].auth.schemes", "'cloudfront' needs [auth.cloudfront] to be configured"),
    ]


def test_key_loading_errors_name_the_setting(tmp_path: Path) -> None:
    missing = AuthSettings.model_validate({"keys": {"k": {"secret_file": str(tmp_path / "nope")}}})
    with pytest.raises(KeyError_, match=r"auth\.keys\.k\.secret_file: cannot read"):
        AuthContext.from_settings(missing)
    bad_akamai = AuthSettings.model_validate(
        {"keys": {"a": {"secret": "not hex"}}, "akamai": {"key": "a"}}
    )
    with pytest.raises(KeyError_, match="hex"):
        AuthContext.from_settings(bad_akamai)
    bad_pem = AuthSettings.model_validate(
        {"cloudfront": {"public_keys": {"K": {"public_key": "-----BEGIN nonsense"}}}}
    )
    with pytest.raises(KeyError_, match=r"auth\.cloudfront\.public_keys\.K"):
        AuthContext.from_settings(bad_pem)


def test_auth_input_from_request_uses_host_header(ctx: AuthContext) -> None:
    from proxy.auth.policy import auth_input

    inp = auth_input(FakeRequest("/a", headers={"host": "cdn.example:8443"}), client_ip="1.2.3.4")
    assert isinstance(inp, AuthInput)
    assert (inp.host, inp.client_ip, inp.scheme) == ("cdn.example:8443", "1.2.3.4", "https")
