"""bunny.net tokens, expected values computed here from bunny.net's docs: basic
"MD5(token_security_key + url_path + expiration)" in base64 with '+' -> '-', '/' -> '_'
and '=' removed; the SHA-256 form over key + signature path + expiration [+ IP] +
sorted parameters; and the HS256 form of bunny's current signing libraries."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from proxy.auth.bunny import BunnyVerifier, sign_basic, sign_sha256, split_bunny_path_token
from proxy.auth.common import AuthInput, AuthResult

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
