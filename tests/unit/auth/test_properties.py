"""Property tests: any single-byte change to a signed URL, its token or its path is
rejected, for every style and scheme."""

from __future__ import annotations

from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from proxy.auth.akamai import AkamaiVerifier, generate_token
from proxy.auth.bunny import BunnyVerifier, sign_basic, sign_sha256
from proxy.auth.cloudfront import CloudFrontVerifier, canned_policy, custom_policy, sign_policy
from proxy.auth.common import AuthInput, AuthResult
from proxy.auth.keys import KeyRing
from proxy.auth.native import NativeVerifier, sign_url, signed_cookie, split_path_token
from proxy.auth.nginx import NginxVerifier, sign
from proxy.auth.policy import AuthPolicy, Verifier
from proxy.http.paths import BadPath, normalize_path

NOW = 1_700_000_000.0
CLIENT = "198.51.100.7"
RING = KeyRing({"k1": b"first secret key", "k2": b"second secret key"}, default_kid="k1")
PRINTABLE = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def mutate(text: str, index: int, char: str) -> str:
    return text[:index] + char + text[index + 1 :]


def in_escape(text: str, index: int) -> bool:
    return "%" in (text[index - 1 : index], text[index - 2 : index - 1])


def mutations(text: str, lo: int = 0, hi: int | None = None) -> st.SearchStrategy[str]:
    """``text`` with one character in [lo, hi) replaced by a different printable one."""
    end = len(text) if hi is None else hi

    @st.composite
    def build(draw: st.DrawFn) -> str:
        index = draw(st.integers(lo, end - 1))
        char = draw(PRINTABLE.filter(lambda c: c != text[index]))
        # The case of a hex digit in a percent-escape is no change of meaning
        # ("%2f" is "%2F"); every other single-byte change is.
        assume(not (in_escape(text, index) and char.lower() == text[index].lower()))
        return mutate(text, index, char)

    return build()


def verify_url(url: str, verifier: Verifier, *, cookie: str | None = None) -> AuthResult | None:
    """None when the URL does not even parse as a request (also a rejection)."""
    raw_path, _, query = url.partition("?")
    try:
        path = normalize_path(raw_path)
    except BadPath:
        return None
    token, path = split_path_token(path)
    inp = AuthInput(
        path=path,
        query=query,
        headers={"cookie": cookie} if cookie else {},
        client_ip=CLIENT,
        now=NOW,
        path_token=token,
        host="cdn.example",
        scheme="https",
    )
    return AuthPolicy([verifier]).verify(inp)


def rejected(result: AuthResult | None) -> bool:
    return result is None or not result.ok


NATIVE = NativeVerifier(RING)
QUERY_URL = sign_url("/videos/abc/master.m3u8?lang=en", RING, ttl=600, now=NOW, bind=["lang"])
PATH_URL = sign_url("/videos/abc/master.m3u8", RING, ttl=600, now=NOW, style="path")
PREFIX_URL = sign_url(
    "/videos/abc/master.m3u8", RING, ttl=600, now=NOW, style="path", prefix="/videos/abc/"
)
COOKIE = signed_cookie(RING, prefix="/videos/abc/", ttl=600, now=NOW).split(";", 1)[0]


def test_the_unmutated_urls_verify() -> None:
    assert verify_url(QUERY_URL, NATIVE).ok
    assert verify_url(PATH_URL, NATIVE).ok
    assert verify_url(PREFIX_URL, NATIVE).ok
    assert verify_url("/videos/abc/x.ts", NATIVE, cookie=COOKIE).ok


@settings(max_examples=400, deadline=None)
@given(mutations(QUERY_URL))
def test_any_byte_of_a_query_signed_url(url: str) -> None:
    assert rejected(verify_url(url, NATIVE))


@settings(max_examples=400, deadline=None)
@given(mutations(PATH_URL))
def test_any_byte_of_a_path_signed_url(url: str) -> None:
    assert rejected(verify_url(url, NATIVE))


@settings(max_examples=300, deadline=None)
@given(mutations(PREFIX_URL, 0, PREFIX_URL.index("/videos/abc/") + len("/videos/abc/")))
def test_any_byte_of_a_prefix_token_or_of_the_prefix_part_of_its_path(url: str) -> None:
    assert rejected(verify_url(url, NATIVE))


@settings(max_examples=300, deadline=None)
@given(mutations(COOKIE, len("edgeshield_token=")))
def test_any_byte_of_a_signed_cookie(cookie: str) -> None:
    assert rejected(verify_url("/videos/abc/x.ts", NATIVE, cookie=cookie))


# -- vendors ------------------------------------------------------------------------------

AKAMAI_KEY = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
AKAMAI = AkamaiVerifier(bytes.fromhex(AKAMAI_KEY))
AKAMAI_URL = "/videos/abc/master.m3u8?__token__=" + generate_token(
    AKAMAI_KEY, exp=int(NOW) + 600, st=int(NOW) - 10, acl="/videos/abc/*", data="x"
)


@settings(max_examples=300, deadline=None)
@given(mutations(AKAMAI_URL, AKAMAI_URL.index("__token__=") + len("__token__=")))
def test_any_byte_of_an_akamai_token(url: str) -> None:
    assert rejected(verify_url(url, AKAMAI))


BUNNY = BunnyVerifier(b"bunny-key")
_BUNNY_MD5 = sign_basic("bunny-key", "/videos/a.mp4", 1_700_000_600)
BUNNY_MD5_URL = f"/videos/a.mp4?token={_BUNNY_MD5}&expires=1700000600"
BUNNY_SHA_URL = (
    "/videos/abc/a.mp4?token="
    + sign_sha256(
        "bunny-key", "/videos/abc/a.mp4", 1_700_000_600, params={"token_path": "/videos/abc/"}
    )
    + "&token_path=%2Fvideos%2Fabc%2F&expires=1700000600"
)


@settings(max_examples=300, deadline=None)
@given(mutations(BUNNY_MD5_URL))
def test_any_byte_of_a_bunny_basic_url(url: str) -> None:
    assert rejected(verify_url(url, BUNNY))


@settings(max_examples=300, deadline=None)
@given(mutations(BUNNY_SHA_URL, BUNNY_SHA_URL.index("?")))
def test_any_byte_of_a_bunny_sha256_token(url: str) -> None:
    assert rejected(verify_url(url, BUNNY))


NGINX = NginxVerifier(secret=b"secret")
NGINX_URL = "/s/link?md5={}&expires=1700000600".format(
    sign(
        "$secure_link_expires$uri$remote_addr $secret",
        uri="/s/link",
        expires=1_700_000_600,
        remote_addr=CLIENT,
        secret=b"secret",
    )
)


def _names_lowered(url: str) -> str:
    path, _, query = url.partition("?")
    parts = (part.partition("=") for part in query.split("&"))
    return path + "?" + "&".join(name.lower() + eq + value for name, eq, value in parts)


@settings(max_examples=300, deadline=None)
@given(mutations(NGINX_URL))
def test_any_byte_of_an_nginx_secure_link(url: str) -> None:
    # The case of a letter in a parameter name is no change: nginx's $arg_ ignores it.
    assume(_names_lowered(url) != NGINX_URL)
    assert rejected(verify_url(url, NGINX))


CLOUDFRONT = CloudFrontVerifier({"KCF": RSA_KEY.public_key()})
_RESOURCE = "https://cdn.example/videos/a.mp4"
CF_CANNED_URL = (
    "/videos/a.mp4?Expires=1700000600&Signature="
    + sign_policy(RSA_KEY, canned_policy(_RESOURCE, 1_700_000_600))
    + "&Key-Pair-Id=KCF"
)
_POLICY = custom_policy("https://cdn.example/videos/*", expires=1_700_000_600)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations(CF_CANNED_URL))
def test_any_byte_of_a_cloudfront_canned_url(url: str) -> None:
    assert rejected(verify_url(url, CLOUDFRONT))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_byte_of_a_cloudfront_custom_policy_or_signature(data: st.DataObject) -> None:
    from proxy.auth.common import cloudfront_b64_encode

    policy = cloudfront_b64_encode(_POLICY.encode())
    signature = sign_policy(RSA_KEY, _POLICY)
    field = data.draw(st.sampled_from(["policy", "signature"]))
    if field == "policy":
        policy = data.draw(mutations(policy))
    else:
        signature = data.draw(mutations(signature))
    url = f"/videos/a.mp4?Policy={policy}&Signature={signature}&Key-Pair-Id=KCF"
    assert rejected(verify_url(url, CLOUDFRONT))


def test_the_unmutated_vendor_urls_verify() -> None:
    for url, verifier in [
        (AKAMAI_URL, AKAMAI),
        (BUNNY_MD5_URL, BUNNY),
        (BUNNY_SHA_URL, BUNNY),
        (NGINX_URL, NGINX),
        (CF_CANNED_URL, CLOUDFRONT),
    ]:
        result = verify_url(url, verifier)
        assert result is not None and result.ok, (url, result)
    parts = urlsplit(CF_CANNED_URL)
    assert parts.path == "/videos/a.mp4"
