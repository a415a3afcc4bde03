"""Hostile vendor tokens (issue 15's token work) against a real `edgeshield serve` with a
route per scheme: forged claims, empty or garbage HS256 bodies, oversized and
mis-encoded EdgeAuth tokens, control bytes in a secure_link hash. Each is a clean 403
with its reason, the origin is never asked, and a clean client afterwards gets the
right bytes."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support import native_signer
from tests.support.origin_server import OriginServer
from tests.support.proxy_server import ProxyServer, running_proxy
from tests.support.vendor_tokens import FAR, NATIVE_SECRET, vendor_config


@pytest.fixture(scope="module")
def vendor_proxy(origin_server: OriginServer) -> Iterator[ProxyServer]:
    with running_proxy(vendor_config(origin_server.url)) as proxy:
        yield proxy


def _script(origin: OriginServer, *paths: str) -> None:
    for path in paths:
        origin.script(path, body=f"body of {path}", headers={"cache-control": "max-age=600"})


def _refused(response: httpx.Response, reason: str) -> None:
    assert response.status_code == 403, response.text
    assert response.headers["edgeshield-auth-reason"] == reason
    assert response.text == f"forbidden: {reason}\n"


def _forged_native(claims: str) -> str:
    encode = base64.urlsafe_b64encode
    return (
        f"{encode(claims.encode()).rstrip(b'=').decode()}.{encode(bytes(32)).rstrip(b'=').decode()}"
    )


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        # Claims binding a non-ASCII parameter name used to raise while building the MAC.
        (
            f"/nt/x.mp4?%C3%A9=1&token={_forged_native(f'k=k7&e={FAR}&p=/nt/x.mp4&b=%C3%A9')}",
            "bad-signature",
        ),
        ("/bn/x.mp4?token=HS256-1-" + "A" * 43 + f"&expires={FAR}", "bad-signature"),
        ("/bn/x.mp4?token=HS256-1-&expires=1&token_ignore_params=true", "bad-signature"),
        ("/ak/x.mp4?__token__=" + "exp%3D1%7E" * 400 + "hmac%3D00", "bad-signature"),
        (
            "/ak/x.mp4?__token__=exp%3D9999999999%7Eacl%3D%2F%2A+%7Ehmac%3D" + "0" * 64,
            "bad-signature",
        ),
        ("/s/x.mp4?MD5=" + "%00" * 30 + "&expires=1", "bad-signature"),
    ],
)
def test_hostile_tokens_are_refused_cleanly(
    origin: OriginServer, vendor_proxy: ProxyServer, url: str, reason: str
) -> None:
    path = url.partition("?")[0]
    _script(origin, path)
    with httpx.Client(base_url=vendor_proxy.url) as client:
        hostile = client.get(url)
        _refused(hostile, reason)
        assert origin.requests(path) == 0
        # A clean client afterwards gets the right bytes (a valid native token).
        token = native_signer.sign(
            NATIVE_SECRET.encode(), "k7", int(time.time()) + 600, path="/nt/clean.mp4"
        )
        _script(origin, "/nt/clean.mp4")
        clean = client.get(f"/nt/clean.mp4?token={token}")
    assert clean.status_code == 200 and clean.text == "body of /nt/clean.mp4"
