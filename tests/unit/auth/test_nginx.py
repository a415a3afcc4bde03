"""nginx secure_link, including the example published in the ngx_http_secure_link_module
documentation: "/s/link?md5=_e4Nc3iduzkWRm01TBBNYw&expires=2147483647" for 127.0.0.1 with
secure_link_md5 "$secure_link_expires$uri$remote_addr secret"."""

from __future__ import annotations

import base64
import hashlib

import pytest

from proxy.auth.common import AuthInput, AuthResult
from proxy.auth.nginx import ExpressionError, NginxVerifier, parse_expression, sign


def run(
    verifier: NginxVerifier,
    path: str,
    query: str,
    *,
    now: float = 1_700_000_000,
    client: str = "127.0.0.1",
    headers: dict[str, str] | None = None,
) -> AuthResult | None:
    return verifier.verify(
        AuthInput(path=path, query=query, client_ip=client, now=now, headers=headers or {})
    )


def md5_b64url(text: str) -> str:
    # echo -n TEXT | openssl md5 -binary | openssl base64 | tr +/ -_ | tr -d =
    return (
        base64.b64encode(hashlib.md5(text.encode()).digest())
        .decode()
        .translate(str.maketrans("+/", "-_", "="))
    )


def test_published_example_with_the_secret_written_in_the_expression() -> None:
    assert md5_b64url("2147483647/s/link127.0.0.1 secret") == "_e4Nc3iduzkWRm01TBBNYw"
    verifier = NginxVerifier("$arg_md5,$arg_expires", "$secure_link_expires$uri$remote_addr secret")
    query = "md5=_e4Nc3iduzkWRm01TBBNYw&expires=2147483647"
    result = run(verifier, "/s/link", query)
    assert result is not None and result.ok, result
    assert run(verifier, "/s/link", query, client="127.0.0.2").reason == "bad-signature"
    assert run(verifier, "/s/other", query).reason == "bad-signature"


def test_secret_from_the_key_ring() -> None:
    verifier = NginxVerifier(secret=b"secret")  # default expressions with $secret
    assert run(verifier, "/s/link", "md5=_e4Nc3iduzkWRm01TBBNYw&expires=2147483647").ok
    assert (
        sign(
            "$secure_link_expires$uri$remote_addr $secret",
            uri="/s/link",
            expires=2147483647,
            remote_addr="127.0.0.1",
            secret=b"secret",
        )
        == "_e4Nc3iduzkWRm01TBBNYw"
    )


@pytest.mark.parametrize(
    ("now", "reason"),
    [(1_700_000_600, ""), (1_700_000_601, "expired"), (1_700_000_000, "")],
)
def test_valid_through_the_expiry_second(now: float, reason: str) -> None:
    digest = md5_b64url("1700000600/a.mp4 k")
    verifier = NginxVerifier("$arg_h,$arg_e", "$secure_link_expires$uri k")
    result = run(verifier, "/a.mp4", f"h={digest}&e=1700000600", now=now)
    assert result is not None and result.reason == reason


def test_configurable_expression_without_expiry_and_other_variables() -> None:
    digest = md5_b64url("s3cr3t/videos/a.mp4Mozilla")
    verifier = NginxVerifier("$cookie_sl", "${secret}$uri$http_user_agent", secret=b"s3cr3t")
    headers = {"cookie": f"sl={digest}", "user-agent": "Mozilla"}
    result = run(verifier, "/videos/a.mp4", "", headers=headers)
    assert result is not None and result.ok, result
    headers["user-agent"] = "curl"
    assert run(verifier, "/videos/a.mp4", "", headers=headers).reason == "bad-signature"


def test_uri_is_the_decoded_normalised_path() -> None:
    digest = md5_b64url("/a b/c.mp4 k")
    verifier = NginxVerifier("$arg_md5", "$uri k")
    assert run(verifier, "/a%20b/./c.mp4", f"md5={digest}").ok


def test_missing_and_malformed() -> None:
    verifier = NginxVerifier(secret=b"secret")
    assert run(verifier, "/s/link", "") is None
    assert run(verifier, "/s/link", "md5=abc").reason == "bad-signature"
    assert (
        run(verifier, "/s/link", "md5=_e4Nc3iduzkWRm01TBBNYw&expires=0").reason == "bad-signature"
    )
    assert (
        run(verifier, "/s/link", "md5=_e4Nc3iduzkWRm01TBBNYw&expires=x").reason == "bad-signature"
    )
    assert run(verifier, "/s/link", "expires=2147483647").reason == "missing"
    long = "A" * 25
    assert run(verifier, "/s/link", f"md5={long}&expires=2147483647").reason == "bad-signature"


def test_expressions() -> None:
    assert parse_expression("x$uri${remote_addr}y") == (b"x", "uri", "remote_addr", b"y")
    with pytest.raises(ExpressionError):
        parse_expression("$nope")
    with pytest.raises(ExpressionError):
        parse_expression("a $ b")
    with pytest.raises(ExpressionError):
        NginxVerifier(secure_link_md5="$uri $secret")  # no key for $secret
    assert NginxVerifier("$arg_h,$arg_e", "$uri x").query_params == frozenset({"h", "e"})
    assert "topsecret" not in repr(NginxVerifier(secure_link_md5="$uri topsecret"))
