"""In-process micro benchmark: verification cost per request for each auth scheme.

    .venv/bin/python -m loadtests.bench.auth_bench [--seconds 0.3]

Each figure is the best of 5 timeit runs of building the request view (AuthInput) and
verifying one valid token through the route's AuthPolicy, in microseconds per request.
Bounded: each run is sized to about --seconds.
"""

from __future__ import annotations

import argparse
import timeit
from collections.abc import Callable
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import rsa

from proxy.auth.akamai import AkamaiVerifier, generate_token
from proxy.auth.bunny import BunnyVerifier, sign_basic, sign_sha256
from proxy.auth.cloudfront import (
    CloudFrontVerifier,
    custom_policy,
    signed_url_params,
)
from proxy.auth.common import AuthInput
from proxy.auth.keys import KeyRing
from proxy.auth.native import NativeVerifier, sign_url, signed_cookie, split_path_token
from proxy.auth.nginx import NginxVerifier, sign
from proxy.auth.policy import OPEN, AuthPolicy

NOW = 1_700_000_000.0
CLIENT = "198.51.100.7"
HOST = "cdn.example"
PATH = "/videos/abc/720p/seg-00042.ts"


def case(policy: AuthPolicy, url: str, cookie: str | None = None) -> Callable[[], None]:
    parts = urlsplit(url)
    token, path = split_path_token(parts.path)
    headers = {"host": HOST, "user-agent": "bench"}
    if cookie:
        headers["cookie"] = cookie
    query = parts.query
    result = policy.verify(
        AuthInput(
            path=path,
            query=query,
            headers=headers,
            client_ip=CLIENT,
            now=NOW,
            scheme="https",
            host=HOST,
            path_token=token,
        )
    )
    if not result.ok:
        raise SystemExit(f"benchmark case does not verify: {url} -> {result}")

    def run() -> None:
        policy.verify(
            AuthInput(
                path=path,
                query=query,
                headers=headers,
                client_ip=CLIENT,
                now=NOW,
                scheme="https",
                host=HOST,
                path_token=token,
            )
        )

    return run


def cases() -> dict[str, Callable[[], None]]:
    ring = KeyRing({"k1": b"bench secret key one", "k2": b"bench secret key two"})
    native = AuthPolicy([NativeVerifier(ring)])
    exp = int(NOW) + 3600
    out: dict[str, Callable[[], None]] = {
        "none (no auth, baseline)": case(OPEN, PATH),
        "native query, exact path": case(native, sign_url(PATH, ring, expires=exp, kid="k1")),
        "native path /_t/, prefix": case(
            native, sign_url(PATH, ring, expires=exp, kid="k1", style="path", prefix="/videos/abc/")
        ),
        "native cookie, prefix": case(
            native,
            PATH,
            cookie=signed_cookie(ring, prefix="/videos/abc/", expires=exp, kid="k1").split(";")[0],
        ),
        "native query, prefix+ip+bound": case(
            native,
            sign_url(
                PATH + "?q=hd",
                ring,
                expires=exp,
                kid="k2",
                prefix="/videos/abc/",
                ip="198.51.100.0/24",
                bind=["q"],
            ),
        ),
    }
    key_hex = "52a152a152a152a152a152a152a152a1"
    akamai = AuthPolicy([AkamaiVerifier(bytes.fromhex(key_hex))])
    token = generate_token(key_hex, exp=exp, acl="/videos/abc/*")
    out["akamai acl token (sha256)"] = case(akamai, f"{PATH}?__token__={token}")
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cloudfront = AuthPolicy([CloudFrontVerifier({"K1": private.public_key()})])
    params = signed_url_params(private, "K1", resource=f"https://{HOST}{PATH}", expires=exp)
    out["cloudfront canned (RSA-2048 SHA1)"] = case(
        cloudfront, PATH + "?" + "&".join(f"{k}={v}" for k, v in params.items())
    )
    policy = custom_policy(f"https://{HOST}/videos/abc/*", expires=exp, ip="198.51.100.0/24")
    params = signed_url_params(
        private, "K1", resource="", expires=exp, policy=policy, algorithm="SHA256"
    )
    out["cloudfront custom (RSA-2048 SHA256)"] = case(
        cloudfront, PATH + "?" + "&".join(f"{k}={v}" for k, v in params.items())
    )
    bunny = AuthPolicy([BunnyVerifier(b"bunny-key")])
    out["bunny basic md5"] = case(
        bunny, f"{PATH}?token={sign_basic('bunny-key', PATH, exp)}&expires={exp}"
    )
    sha = sign_sha256("bunny-key", PATH, exp, params={"token_path": "/videos/abc/"})
    out["bunny sha256 directory token"] = case(
        bunny, f"{PATH}?token={sha}&token_path=%2Fvideos%2Fabc%2F&expires={exp}"
    )
    nginx = AuthPolicy([NginxVerifier(secret=b"secret")])
    digest = sign(
        "$secure_link_expires$uri$remote_addr $secret",
        uri=PATH,
        expires=exp,
        remote_addr=CLIENT,
        secret=b"secret",
    )
    out["nginx secure_link md5"] = case(nginx, f"{PATH}?md5={digest}&expires={exp}")
    out["strip_token (cache key)"] = _strip(native)
    return out


def _strip(policy: AuthPolicy) -> Callable[[], None]:
    query = "q=hd&token=az1rMSZlPTE3MDAwMDM2MDAmcD0vYQ.abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"

    def run() -> None:
        policy.strip_token(query)

    return run


def measure(fn: Callable[[], None], seconds: float) -> float:
    timer = timeit.Timer(fn)
    number, _ = timer.autorange()
    number = max(1, int(number * seconds / 0.2))
    best = min(timer.repeat(repeat=5, number=number))
    return best / number * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=0.3, help="length of each timed run")
    args = parser.parse_args(argv)
    print(f"{'scheme':40} {'us/request':>10}")
    for name, fn in cases().items():
        print(f"{name:40} {measure(fn, args.seconds):10.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
