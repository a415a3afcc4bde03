"""nginx secure_link, including the example published in the ngx_http_secure_link_module
documentation: "/s/link?md5=_e4Nc3iduzkWRm01TBBNYw&expires=2147483647" for 127.0.0.1 with
secure_link_md5 "$secure_link_expires$uri$remote_addr secret"."""

from __future__ import annotations

import base64
import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.auth.common import AuthInput, AuthResult
from proxy.auth.nginx import ExpressionError, NginxVerifier, nginx_arg, parse_expression, sign
from proxy.auth.policy import AuthPolicy


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


# -- $arg_NAME as nginx's ngx_http_arg reads it ------------------------------------------


EXAMPLE = "md5=_e4Nc3iduzkWRm01TBBNYw&expires=2147483647"


@pytest.mark.parametrize(
    "query",
    [
        "MD5=_e4Nc3iduzkWRm01TBBNYw&EXPIRES=2147483647",
        "Md5=_e4Nc3iduzkWRm01TBBNYw&Expires=2147483647",
        "x=1&mD5=_e4Nc3iduzkWRm01TBBNYw&eXpIrEs=2147483647",
        # The first match wins, whatever its case, as in nginx.
        "MD5=_e4Nc3iduzkWRm01TBBNYw&md5=wrong&expires=2147483647",
        # A bare name without "=" is no match; the search goes on.
        "md5&MD5=_e4Nc3iduzkWRm01TBBNYw&expires=2147483647",
    ],
)
def test_arg_names_are_case_insensitive(query: str) -> None:
    verifier = NginxVerifier(secret=b"secret")
    result = run(verifier, "/s/link", query)
    assert result is not None and result.ok, (query, result)


@pytest.mark.parametrize(
    "query",
    [
        "md%35=_e4Nc3iduzkWRm01TBBNYw&expires=2147483647",  # names are not decoded
        "xmd5=_e4Nc3iduzkWRm01TBBNYw&expires=2147483647",  # whole names only
        "md5=wrong&MD5=_e4Nc3iduzkWRm01TBBNYw&expires=2147483647",
    ],
)
def test_what_nginx_would_not_read_either(query: str) -> None:
    result = run(NginxVerifier(secret=b"secret"), "/s/link", query)
    assert result is None or not result.ok, query


def test_the_expression_may_name_the_argument_in_any_case() -> None:
    verifier = NginxVerifier("$arg_MD5,$arg_Expires", "$secure_link_expires$uri$remote_addr secret")
    assert run(verifier, "/s/link", EXAMPLE).ok
    assert verifier.query_params == frozenset({"md5", "expires"})


def test_token_parameters_are_stripped_whatever_their_case() -> None:
    policy = AuthPolicy([NginxVerifier(secret=b"secret")])
    query = "a=1&MD5=_e4Nc3iduzkWRm01TBBNYw&Expires=2147483647&b=MD5"
    assert policy.strip_token(query) == "a=1&b=MD5"


def ngx_http_arg(args: bytes, name: bytes) -> bytes | None:
    """A line-by-line port of nginx's ngx_http_arg (src/http/ngx_http_parse.c): search
    the lower-case name with ngx_strlcasestrn, accept it at the start or after "&" when
    an "=" follows, the value running to the next "&"."""

    def lower(b: int) -> int:
        return b | 0x20 if 0x41 <= b <= 0x5A else b

    needle = bytes(lower(b) for b in name)
    size = len(needle)
    last = len(args)
    p = 0
    while p < last:
        # ngx_strlcasestrn(p, last - 1, name, len - 1): the first case-insensitive match
        # of the whole name starting in [p, last - 1 - (len - 1)).
        found = -1
        for start in range(p, last - 1 - (size - 1)):
            if bytes(lower(b) for b in args[start : start + size]) == needle:
                found = start
                break
        if found < 0:
            return None
        p = found
        if (p == 0 or args[p - 1] == ord("&")) and args[p + size] == ord("="):
            end = args.find(b"&", p)
            return args[p + size + 1 : end if end >= 0 else last]
        p += 1
    return None


@given(
    st.lists(
        st.tuples(st.text("mdMD5x=", max_size=5), st.text("aB&=%5", max_size=4)), max_size=5
    ).map(lambda parts: "&".join(n + v for n, v in parts)),
    st.sampled_from(["md5", "MD5", "d5", "m", "x"]),
)
def test_nginx_arg_matches_nginx(query: str, name: str) -> None:
    expected = ngx_http_arg(query.encode(), name.lower().encode())
    got = nginx_arg(query, name)
    assert got == (None if expected is None else expected.decode()), (query, name)
