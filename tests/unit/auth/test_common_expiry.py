"""The expiry second, scheme by scheme, with clock_skew = 0, tokens from each vendor's
own generator where one is installable: a token is refused exactly when its scheme's
specification says it has expired. bunny.net ("the last second the file is accessible")
and nginx secure_link (expired when expires < now) keep the whole second ``expires``
valid; native tokens (valid while now < e), Akamai EdgeAuth (exp exclusive) and
CloudFront (DateLessThan) end at its start. ``now`` is a float, as time.time() gives."""

from __future__ import annotations

import base64
import datetime
import hashlib
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest
from botocore.signers import CloudFrontSigner
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from proxy.auth.akamai import AkamaiVerifier
from proxy.auth.bunny import BunnyVerifier
from proxy.auth.cloudfront import CloudFrontVerifier, load_public_key
from proxy.auth.common import AuthInput
from proxy.auth.keys import KeyRing
from proxy.auth.native import NativeVerifier
from proxy.auth.nginx import NginxVerifier
from tests.support import bunny_signer, native_signer
from tests.support.edgeauth import EdgeAuth

EXP = 1_700_000_600
CLIENT = "198.51.100.7"
HOST = "media.example.com"
AKAMAI_KEY = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
BUNNY_KEY = "229248f0-f007-4bf9-ba1f-bbf1b4ad9d40"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)

Check = Callable[[float], str]  # now -> "" (accepted) or the reason


def _reason(verifier: object, url: str, now: float) -> str:
    parts = urlsplit(url)
    inp = AuthInput(
        path=parts.path, query=parts.query, client_ip=CLIENT, now=now, scheme="https", host=HOST
    )
    result = verifier.verify(inp)  # type: ignore[attr-defined]
    assert result is not None
    return str(result.reason)


def native() -> Check:
    token = native_signer.sign(b"native secret", "k1", EXP, path="/a.mp4")
    verifier = NativeVerifier(KeyRing({"k1": b"native secret"}))
    return lambda now: _reason(verifier, f"/a.mp4?token={token}", now)


def akamai() -> Check:
    token = EdgeAuth(key=AKAMAI_KEY, end_time=EXP).generate_acl_token("/a.mp4")
    verifier = AkamaiVerifier(bytes.fromhex(AKAMAI_KEY))
    return lambda now: _reason(verifier, f"/a.mp4?__token__={token}", now)


def cloudfront() -> Check:
    def rsa_signer(message: bytes) -> bytes:
        return RSA_KEY.sign(message, padding.PKCS1v15(), hashes.SHA1())

    expires = datetime.datetime.fromtimestamp(EXP, tz=datetime.UTC)
    url = CloudFrontSigner("KID", rsa_signer).generate_presigned_url(
        f"https://{HOST}/a.mp4", date_less_than=expires
    )
    pem = RSA_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    verifier = CloudFrontVerifier({"KID": load_public_key(pem)})
    return lambda now: _reason(verifier, url, now)


def bunny() -> Check:
    url = bunny_signer.signed_url("/a.mp4", BUNNY_KEY, EXP)
    verifier = BunnyVerifier(BUNNY_KEY.encode())
    return lambda now: _reason(verifier, url, now)


def nginx() -> Check:
    # What `echo -n "$expires$uri secret" | openssl md5 -binary | base64url` prints.
    digest = hashlib.md5(f"{EXP}/a.mp4 secret".encode()).digest()
    md5 = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    verifier = NginxVerifier("$arg_md5,$arg_expires", "$secure_link_expires$uri secret")
    return lambda now: _reason(verifier, f"/a.mp4?md5={md5}&expires={EXP}", now)


EXCLUSIVE = {-1.0: "", -0.5: "", 0.0: "expired", 0.5: "expired", 1.0: "expired"}
THROUGH_THE_SECOND = {-1.0: "", 0.0: "", 0.5: "", 0.999: "", 1.0: "expired", 1.5: "expired"}


@pytest.mark.parametrize(
    ("scheme", "table"),
    [
        (native, EXCLUSIVE),
        (akamai, EXCLUSIVE),
        (cloudfront, EXCLUSIVE),
        (bunny, THROUGH_THE_SECOND),
        (nginx, THROUGH_THE_SECOND),
    ],
    ids=["native", "akamai", "cloudfront", "bunny", "nginx"],
)
def test_expiry_second(scheme: Callable[[], Check], table: dict[float, str]) -> None:
    check = scheme()
    got = {offset: check(EXP + offset) for offset in table}
    assert got == table


def test_skew_widens_the_inclusive_second_by_whole_seconds() -> None:
    url = bunny_signer.signed_url("/a.mp4", BUNNY_KEY, EXP)
    verifier = BunnyVerifier(BUNNY_KEY.encode(), skew=2)
    assert _reason(verifier, url, EXP + 2.999) == ""
    assert _reason(verifier, url, EXP + 3) == "expired"
