"""CloudFront signed URLs and cookies. Each signature is made here following the
CloudFront Developer Guide step by step (policy statement without whitespace, RSA-SHA1
sign with the private key, base64, then '+' -> '-', '=' -> '_', '/' -> '~'), with an
RSA key pair generated for the test."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from proxy.auth.cloudfront import (
    CloudFrontVerifier,
    canned_policy,
    custom_policy,
    load_public_key,
    resource_matches,
    signed_url_params,
)
from proxy.auth.common import AuthInput, AuthResult

NOW = 1_700_000_000
CLIENT = "192.0.2.10"
HOST = "d111111abcdef8.cloudfront.net"
KID = "K2JCJMDEHXQW5F"


@pytest.fixture(scope="module")
def private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def verifier(private_key: rsa.RSAPrivateKey) -> CloudFrontVerifier:
    pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return CloudFrontVerifier({"K2JCJMDEHXQW5F": load_public_key(pem)})


def url_safe(data: bytes) -> str:
    """Step: base64-encode, then replace the characters invalid in a query string."""
    return base64.b64encode(data).decode().replace("+", "-").replace("=", "_").replace("/", "~")


def rsa_sha1(
    key: rsa.RSAPrivateKey, policy: str, digest: hashes.HashAlgorithm | None = None
) -> str:
    return url_safe(key.sign(policy.encode(), padding.PKCS1v15(), digest or hashes.SHA1()))


def custom_query(key: rsa.RSAPrivateKey, policy: str, kid: str = KID) -> str:
    """Policy=, Signature= and Key-Pair-Id= for a custom policy, per the guide's steps."""
    return f"Policy={url_safe(policy.encode())}&Signature={rsa_sha1(key, policy)}&Key-Pair-Id={kid}"


def run(
    verifier: CloudFrontVerifier,
    path: str,
    query: str = "",
    *,
    cookie: str | None = None,
    now: float = NOW,
    client: str = CLIENT,
) -> AuthResult | None:
    inp = AuthInput(
        path=path,
        query=query,
        headers={"cookie": cookie} if cookie else {},
        client_ip=client,
        now=now,
        scheme="https",
        host=HOST,
    )
    return verifier.verify(inp)


def test_canned_policy_signed_url(
    private_key: rsa.RSAPrivateKey, verifier: CloudFrontVerifier
) -> None:
    resource = f"https://{HOST}/images/image.jpg?color=red&size=medium"
    policy = (
        '{"Statement":[{"Resource":"' + resource + '","Condition":{"DateLessThan":'
        '{"AWS:EpochTime":' + str(NOW + 3600) + "}}}]}"
    )
    assert canned_policy(resource, NOW + 3600) == policy
    signature = rsa_sha1(private_key, policy)
    query = f"color=red&size=medium&Expires={NOW + 3600}&Signature={signature}&Key-Pair-Id={KID}"
    result = run(verifier, "/images/image.jpg", query)
    assert result is not None and result.ok, result
    assert result.claims["policy"] == "canned"
    # Another object, another query, or a later expiry: the rebuilt policy differs.
    assert run(verifier, "/images/other.jpg", query).reason == "bad-signature"
    assert (
        run(verifier, "/images/image.jpg", query.replace("red", "blue")).reason == "bad-signature"
    )
    later = query.replace(f"Expires={NOW + 3600}", f"Expires={NOW + 7200}")
    assert run(verifier, "/images/image.jpg", later).reason == "bad-signature"


def test_canned_expiry(private_key: rsa.RSAPrivateKey, verifier: CloudFrontVerifier) -> None:
    params = signed_url_params(
        private_key, "K2JCJMDEHXQW5F", resource=f"https://{HOST}/a.mp4", expires=NOW + 10
    )
    query = "&".join(f"{k}={v}" for k, v in params.items())
    assert run(verifier, "/a.mp4", query, now=NOW + 9).ok
    assert run(verifier, "/a.mp4", query, now=NOW + 10).reason == "expired"


def test_custom_policy_signed_url_with_wildcard_ip_and_start(
    private_key: rsa.RSAPrivateKey, verifier: CloudFrontVerifier
) -> None:
    statement = {
        "Statement": [
            {
                "Resource": f"https://{HOST}/training/*",
                "Condition": {
                    "IpAddress": {"AWS:SourceIp": "192.0.2.0/24"},
                    "DateGreaterThan": {"AWS:EpochTime": NOW - 60},
                    "DateLessThan": {"AWS:EpochTime": NOW + 3600},
                },
            }
        ]
    }
    policy = json.dumps(statement, separators=(",", ":"))  # whitespace removed
    query = (
        f"Policy={url_safe(policy.encode())}&Signature={rsa_sha1(private_key, policy)}"
        "&Key-Pair-Id=K2JCJMDEHXQW5F"
    )
    result = run(verifier, "/training/orientation.pdf", query)
    assert result is not None and result.ok, result
    assert result.claims["resource"] == f"https://{HOST}/training/*"
    assert run(verifier, "/training/a/b.pdf", query).ok
    assert run(verifier, "/other/orientation.pdf", query).reason == "acl-mismatch"
    assert run(verifier, "/training/x", query, client="198.51.100.1").reason == "ip-mismatch"
    assert run(verifier, "/training/x", query, now=NOW - 60).reason == "not-yet-valid"
    assert run(verifier, "/training/x", query, now=NOW - 59).ok
    assert run(verifier, "/training/x", query, now=NOW + 3600).reason == "expired"


def test_custom_policy_question_mark_wildcard_and_no_resource(
    private_key: rsa.RSAPrivateKey, verifier: CloudFrontVerifier
) -> None:
    policy = custom_policy(f"http*://{HOST}/v/seg-?.ts", expires=NOW + 60)
    query = custom_query(private_key, policy)
    assert run(verifier, "/v/seg-1.ts", query).ok
    assert run(verifier, "/v/seg-10.ts", query).reason == "acl-mismatch"
    anything = custom_policy(None, expires=NOW + 60)
    assert '"Resource"' not in anything
    query = custom_query(private_key, anything)
    assert run(verifier, "/any/thing", query).ok


def test_signed_cookies_canned_and_custom(
    private_key: rsa.RSAPrivateKey, verifier: CloudFrontVerifier
) -> None:
    policy = custom_policy(f"https://{HOST}/videos/abc/*", expires=NOW + 60)
    cookie = (
        f"CloudFront-Policy={url_safe(policy.encode())}; "
        f"CloudFront-Signature={rsa_sha1(private_key, policy)}; "
        "CloudFront-Key-Pair-Id=K2JCJMDEHXQW5F"
    )
    assert run(verifier, "/videos/abc/master.m3u8", cookie=cookie).ok
    assert run(verifier, "/videos/abd/master.m3u8", cookie=cookie).reason == "acl-mismatch"
    canned = canned_policy(f"https://{HOST}/a.mp4", NOW + 60)
    cookie = (
        f"CloudFront-Expires={NOW + 60}; CloudFront-Signature={rsa_sha1(private_key, canned)}; "
        "CloudFront-Key-Pair-Id=K2JCJMDEHXQW5F"
    )
    assert run(verifier, "/a.mp4", cookie=cookie).ok
    assert run(verifier, "/b.mp4", cookie=cookie).reason == "bad-signature"


def test_sha256_with_hash_algorithm(
    private_key: rsa.RSAPrivateKey, verifier: CloudFrontVerifier
) -> None:
    canned = canned_policy(f"https://{HOST}/a.mp4", NOW + 60)
    sig256 = rsa_sha1(private_key, canned, hashes.SHA256())
    query = f"Expires={NOW + 60}&Signature={sig256}&Key-Pair-Id=K2JCJMDEHXQW5F"
    assert run(verifier, "/a.mp4", query + "&Hash-Algorithm=SHA256").ok
    assert run(verifier, "/a.mp4", query).reason == "bad-signature"
    assert run(verifier, "/a.mp4", query + "&Hash-Algorithm=MD5").reason == "bad-signature"


def test_unknown_key_pair_id_and_missing(
    private_key: rsa.RSAPrivateKey, verifier: CloudFrontVerifier
) -> None:
    canned = canned_policy(f"https://{HOST}/a.mp4", NOW + 60)
    query = f"Expires={NOW + 60}&Signature={rsa_sha1(private_key, canned)}&Key-Pair-Id=KNOTKNOWN"
    result = run(verifier, "/a.mp4", query)
    assert result is not None and result.reason == "unknown-kid"
    assert result.claims["key_pair_id"] == "KNOTKNOWN"
    assert run(verifier, "/a.mp4", "color=red") is None
    assert (
        run(verifier, "/a.mp4", f"Signature=x&Expires={NOW}&Key-Pair-Id=K2JCJMDEHXQW5F").reason
        == "bad-signature"
    )
    signature = rsa_sha1(private_key, canned)
    both = f"Expires={NOW + 60}&Policy=e30_&Signature={signature}&Key-Pair-Id={KID}"
    assert run(verifier, "/a.mp4", both).reason == "bad-signature"


def test_another_key_cannot_sign(verifier: CloudFrontVerifier) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    canned = canned_policy(f"https://{HOST}/a.mp4", NOW + 60)
    query = f"Expires={NOW + 60}&Signature={rsa_sha1(other, canned)}&Key-Pair-Id=K2JCJMDEHXQW5F"
    assert run(verifier, "/a.mp4", query).reason == "bad-signature"


def test_resource_base_override(private_key: rsa.RSAPrivateKey) -> None:
    verifier = CloudFrontVerifier(
        {"K1": private_key.public_key()}, resource_base="https://media.example.com"
    )
    canned = canned_policy("https://media.example.com/a.mp4", NOW + 60)
    query = f"Expires={NOW + 60}&Signature={rsa_sha1(private_key, canned)}&Key-Pair-Id=K1"
    assert run(verifier, "/a.mp4", query).ok


@pytest.mark.parametrize(
    "policy",
    [
        '{"Statement":[]}',
        '{"Statement":[{"Resource":"*"}]}',  # no DateLessThan
        '{"Statement":[{"Condition":{"DateLessThan":{"AWS:EpochTime":"1"}}}]}',
        '{"Statement":[{"Condition":{"DateLessThan":{"AWS:EpochTime":9999999999},"Foo":{}}}]}',
        '{"Statement":[{"Condition":{"DateLessThan":{"AWS:EpochTime":9999999999},'
        '"IpAddress":{"AWS:SourceIp":"not-an-ip"}}}]}',
        "not json",
    ],
)
def test_malformed_custom_policies_are_refused_even_when_signed(
    private_key: rsa.RSAPrivateKey, verifier: CloudFrontVerifier, policy: str
) -> None:
    query = custom_query(private_key, policy)
    assert run(verifier, "/a", query).reason == "bad-signature"


def test_resource_matches() -> None:
    assert resource_matches(
        "http*://h/*game_download.zip*", "https://h/x_game_download.zip?license=yes"
    )
    assert not resource_matches("https://h/a.b", "https://h/axb")
    assert resource_matches("https://h/a?b", "https://h/axb")
