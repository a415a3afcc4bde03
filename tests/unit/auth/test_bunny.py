"""bunny.net tokens, expected values computed here from bunny.net's docs: basic
"MD5(token_security_key + url_path + expiration)" in base64 with '+' -> '-', '/' -> '_'
and '=' removed; the SHA-256 form over key + signature path + expiration [+ IP] +
sorted parameters; and the HS256 forms of bunny's signing libraries, the current one
from tests/support/bunny_signer.py (written from bunny's documentation: its signers are
not published to a registry)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.auth.bunny import BunnyVerifier, sign_basic, sign_sha256, split_bunny_path_token
from proxy.auth.common import AuthInput, AuthResult
from tests.support import bunny_signer

KEY = "229248f0-f007-4bf9-ba1f-bbf1b4ad9d40"
EXPIRES = 1_700_000_600
NOW = 1_700_000_000
CLIENT = "146.14.19.7"


def fmt(digest: bytes) -> str:
    return (
        base64.b64encode(digest)
        .decode()
        .replace("\n", "")
        .replace("+", "-")
        .replace("/", "_")
        .replace("=", "")
    )


def run(
    verifier: BunnyVerifier,
    path: str,
    query: str,
    *,
    now: float = NOW,
    client: str = CLIENT,
    country: str | None = None,
    bunny_path: str | None = None,
) -> AuthResult | None:
    inp = AuthInput(
        path=path, query=query, client_ip=client, now=now, country=country, bunny_path=bunny_path
    )
    return verifier.verify(inp)


def test_basic_md5_vector() -> None:
    token = fmt(hashlib.md5(f"{KEY}/pathto/file.jpg{EXPIRES}".encode()).digest())
    assert sign_basic(KEY, "/pathto/file.jpg", EXPIRES) == token
    verifier = BunnyVerifier(KEY.encode())
    result = run(verifier, "/pathto/file.jpg", f"token={token}&expires={EXPIRES}")
    assert result is not None and result.ok, result
    assert (
        run(verifier, "/pathto/other.jpg", f"token={token}&expires={EXPIRES}").reason
        == "bad-signature"
    )


def test_basic_md5_with_ip_validation() -> None:
    token = fmt(hashlib.md5(f"{KEY}/pathto/file.jpg{EXPIRES}{CLIENT}".encode()).digest())
    verifier = BunnyVerifier(KEY.encode(), ip_validation=True)
    assert run(verifier, "/pathto/file.jpg", f"token={token}&expires={EXPIRES}").ok
    other = run(
        verifier, "/pathto/file.jpg", f"token={token}&expires={EXPIRES}", client="146.14.19.8"
    )
    assert other is not None and other.reason == "bad-signature"


@pytest.mark.parametrize(
    ("now", "ok"), [(EXPIRES - 1, True), (EXPIRES, True), (EXPIRES + 1, False)]
)
def test_expires_is_the_last_accessible_second(now: float, ok: bool) -> None:
    token = sign_basic(KEY, "/a.mp4", EXPIRES)
    result = run(BunnyVerifier(KEY.encode()), "/a.mp4", f"token={token}&expires={EXPIRES}", now=now)
    assert result is not None and result.ok is ok
    if not ok:
        assert result.reason == "expired"


def test_sha256_directory_token_vector() -> None:
    # SHA256(key + token_path + expires + "token_path=/videos/abc/"), params sorted.
    base = f"{KEY}/videos/abc/{EXPIRES}token_path=/videos/abc/"
    token = fmt(hashlib.sha256(base.encode()).digest())
    assert (
        sign_sha256(KEY, "/videos/abc/1.ts", EXPIRES, params={"token_path": "/videos/abc/"})
        == token
    )
    verifier = BunnyVerifier(KEY.encode())
    query = f"token={token}&token_path=%2Fvideos%2Fabc%2F&expires={EXPIRES}"
    for path in ("/videos/abc/1.ts", "/videos/abc/720p/2.ts"):
        result = run(verifier, path, query)
        assert result is not None and result.ok, (path, result)
    assert run(verifier, "/videos/abcd/1.ts", query).reason == "acl-mismatch"
    assert run(verifier, "/videos/abc/../x/1.ts", query).reason == "acl-mismatch"


def test_sha256_with_ip_countries_and_extra_parameters() -> None:
    params = "token_countries=CA,US&token_countries_blocked=&token_path=/v/&width=640"
    # Empty values are left out; the IP goes between expiry and parameters.
    data = "token_countries=CA,US&token_path=/v/&width=640"
    token = fmt(hashlib.sha256(f"{KEY}/v/{EXPIRES}{CLIENT}{data}".encode()).digest())
    verifier = BunnyVerifier(KEY.encode(), ip_validation=True)
    query = f"token={token}&expires={EXPIRES}&" + params.replace("/", "%2F")
    result = run(verifier, "/v/a.mp4", query, country="CA")
    assert result is not None and result.ok, result
    assert run(verifier, "/v/a.mp4", query, country="FR").reason == "ip-mismatch"
    assert run(verifier, "/v/a.mp4", query, country=None).reason == "ip-mismatch"
    assert (
        run(verifier, "/v/a.mp4", query.replace("640", "1280"), country="CA").reason
        == "bad-signature"
    )
    assert (
        run(verifier, "/v/a.mp4", query, country="CA", client="1.2.3.4").reason == "bad-signature"
    )


def test_blocked_countries() -> None:
    data = "token_countries_blocked=FR"
    token = fmt(hashlib.sha256(f"{KEY}/a.mp4{EXPIRES}{data}".encode()).digest())
    verifier = BunnyVerifier(KEY.encode())
    query = f"token={token}&expires={EXPIRES}&{data}"
    assert run(verifier, "/a.mp4", query, country="US").ok
    assert run(verifier, "/a.mp4", query, country="FR").reason == "ip-mismatch"


def test_hs256_form() -> None:
    message = f"/videos/abc/{EXPIRES}token_path=/videos/abc/"
    token = "HS256-" + fmt(hmac.new(KEY.encode(), message.encode(), hashlib.sha256).digest())
    verifier = BunnyVerifier(KEY.encode())
    query = f"token={token}&token_path=%2Fvideos%2Fabc%2F&expires={EXPIRES}"
    assert run(verifier, "/videos/abc/a.ts", query).ok
    assert (
        run(BunnyVerifier(KEY.encode(), forms=("md5", "sha256")), "/videos/abc/a.ts", query).reason
        == "bad-signature"
    )


def test_directory_path_form() -> None:
    data = "token_path=/videos/abc/"
    token = fmt(hashlib.sha256(f"{KEY}/videos/abc/{EXPIRES}{data}".encode()).digest())
    raw = (
        f"/bcdn_token={token}&token_path=%2Fvideos%2Fabc%2F&expires={EXPIRES}/videos/abc/720p/1.ts"
    )
    params, rest = split_bunny_path_token(raw)
    assert rest == "/videos/abc/720p/1.ts"
    assert params == f"token={token}&token_path=%2Fvideos%2Fabc%2F&expires={EXPIRES}"
    result = run(BunnyVerifier(KEY.encode()), rest, "", bunny_path=params)
    assert result is not None and result.ok, result
    assert split_bunny_path_token("/videos/a.ts") == (None, "/videos/a.ts")


def test_missing_and_malformed() -> None:
    verifier = BunnyVerifier(KEY.encode())
    assert run(verifier, "/a", "x=1") is None
    assert run(verifier, "/a", "token=abc").reason == "bad-signature"
    token = sign_basic(KEY, "/a", EXPIRES)
    repeated = f"token={token}&expires={EXPIRES}&expires={EXPIRES + 999}"
    assert run(verifier, "/a", repeated).reason == "bad-signature"


# -- HS256 as bunny.net's current signers make it (tests/support/bunny_signer.py) --------


def verify_url(
    url: str,
    *,
    client: str = CLIENT,
    now: float = NOW,
    country: str | None = None,
    ip_validation: bool = False,
) -> AuthResult:
    """A signed relative URL (query or directory form) through a BunnyVerifier."""
    raw_path, _, query = url.partition("?")
    params, rest = split_bunny_path_token(raw_path)
    verifier = BunnyVerifier(KEY.encode(), ip_validation=ip_validation)
    result = run(verifier, rest, query, now=now, client=client, country=country, bunny_path=params)
    return result or AuthResult(False, "missing", "bunny")  # no token at all


def test_hs256_current_form_plain_directory_and_countries() -> None:
    assert verify_url(bunny_signer.signed_url("/300kb.jpg", KEY, EXPIRES)).ok
    url = bunny_signer.signed_url(
        "/abc/a.ts", KEY, EXPIRES, token_path="/abc/", countries="CA,US", directory=True
    )
    assert url.startswith("/bcdn_token=HS256-")
    assert verify_url(url, country="CA").ok
    assert verify_url(url, country="FR").reason == "ip-mismatch"
    assert verify_url(url.replace("/abc/a.ts", "/abd/a.ts")).reason == "acl-mismatch"


@pytest.mark.parametrize(
    ("signed_for", "same_lock", "other"),
    [
        ("146.14.19.7", "146.14.19.7", "146.14.19.8"),
        # IPv6 locks to the /64: another interface identifier is the same client.
        (
            "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
            "2001:db8:85a3:0:ffff:ffff:ffff:1",
            "2001:db8:85a3:1::7334",
        ),
    ],
)
def test_hs256_ip_lock(signed_for: str, same_lock: str, other: str) -> None:
    url = bunny_signer.signed_url("/a.mp4", KEY, EXPIRES, ip=signed_for, params={"w": "640"})
    assert "token=HS256-1-" in url
    for ip_validation in (False, True):  # the flag says it is locked, whatever the zone
        assert verify_url(url, client=signed_for, ip_validation=ip_validation).ok
        assert verify_url(url, client=same_lock, ip_validation=ip_validation).ok
        result = verify_url(url, client=other, ip_validation=ip_validation)
        assert result.reason == "bad-signature"
    # An IPv4 client seen through a dual-stack socket is the same IPv4 address.
    if "." in signed_for:
        assert verify_url(url, client=f"::ffff:{signed_for}").ok
    # The flag cannot be dropped to unlock the token.
    assert verify_url(url.replace("HS256-1-", "HS256-"), client=other).reason == "bad-signature"


def test_hs256_ignore_params() -> None:
    url = bunny_signer.signed_url("/a.mp4", KEY, EXPIRES, ignore_params=True)
    assert "token_ignore_params=true" in url
    assert verify_url(url).ok
    assert verify_url(url + "&width=640&quality=hd").ok
    assert verify_url(url.replace("?", "?player=x&", 1)).ok
    # Without the flag every parameter is signed, and the flag cannot be added later.
    plain = bunny_signer.signed_url("/a.mp4", KEY, EXPIRES, params={"w": "640"})
    assert verify_url(plain).ok
    assert verify_url(plain + "&width=1").reason == "bad-signature"
    assert verify_url(plain + "&token_ignore_params=true&width=1").reason == "bad-signature"
    # bunny's own parameters stay signed under the flag: no country list can be added.
    assert verify_url(url + "&token_countries=US", country="US").reason == "bad-signature"


def test_ignore_params_in_the_sha256_form() -> None:
    data = "token_ignore_params=true"
    token = fmt(hashlib.sha256(f"{KEY}/a.mp4{EXPIRES}{data}".encode()).digest())
    query = f"token={token}&{data}&expires={EXPIRES}&w=640"
    assert run(BunnyVerifier(KEY.encode()), "/a.mp4", query).ok


def test_hs256_first_form_with_the_address_as_text_last() -> None:
    # The first HMAC signers (no flag): path + expires + parameters + client IP as text.
    message = f"/a.mp4{EXPIRES}w=640{CLIENT}"
    token = "HS256-" + fmt(hmac.new(KEY.encode(), message.encode(), hashlib.sha256).digest())
    query = f"token={token}&w=640&expires={EXPIRES}"
    assert run(BunnyVerifier(KEY.encode(), ip_validation=True), "/a.mp4", query).ok
    other = run(BunnyVerifier(KEY.encode(), ip_validation=True), "/a.mp4", query, client="1.1.1.1")
    assert other is not None and other.reason == "bad-signature"


def test_hs256_signed_path_raw_or_decoded() -> None:
    # Signers hash the path as given: Node's URL keeps "%20", others may decode it.
    for signed_path in ("/a%20b.mp4", "/a b.mp4"):
        url = bunny_signer.signed_url(signed_path, KEY, EXPIRES)
        query = url.partition("?")[2]
        assert verify_url(f"/a%20b.mp4?{query}").ok, signed_path


NAME = st.text(string.ascii_lowercase + "_", min_size=1, max_size=8).filter(
    lambda n: n not in ("token", "expires", "token_path", "token_ignore_params")
)
VALUE = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
# An IPv4-mapped IPv6 address is left out: the client it names connects over IPv4 and is
# packed as 4 bytes, so such a token cannot match (at bunny.net either).
ADDRESS = st.one_of(
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).filter(lambda a: a.ipv4_mapped is None).map(str),
    st.just(""),
)


@given(
    params=st.dictionaries(NAME, VALUE, max_size=4),
    ip=ADDRESS,
    directory=st.booleans(),
    token_path=st.sampled_from(["", "/v/", "/v"]),
)
def test_any_hs256_url_of_the_independent_signer_verifies(
    params: dict[str, str], ip: str, directory: bool, token_path: str
) -> None:
    params.pop("token_countries", None)
    params.pop("token_countries_blocked", None)
    url = bunny_signer.signed_url(
        "/v/a.mp4", KEY, EXPIRES, params=params, ip=ip, token_path=token_path, directory=directory
    )
    result = verify_url(url, client=ip or CLIENT)
    assert result.ok, (url, result)


@given(st.integers(0, 200), st.sampled_from("AQw-_%=&."))
def test_any_byte_of_an_ip_locked_hs256_url(index: int, char: str) -> None:
    url = bunny_signer.signed_url("/v/a.mp4", KEY, EXPIRES, ip=CLIENT, params={"q": "hd"})
    index %= len(url)
    if url[index] == char or index < len("/v/a.mp4?"):
        return
    mutated = url[:index] + char + url[index + 1 :]
    assert not verify_url(mutated).ok, mutated
