"""In-process micro benchmark: the per-request cost of tokenized playlists.

    .venv/bin/python -m loadtests.bench.playlist_rewrite_bench [--seconds 0.3]

For an HLS media playlist of 10 and of 1,000 segments (one rendition directory) and a
DASH manifest, the best of 5 timeit runs of one response's rewrite (a new Tokenizer,
child tokens reused from the route's signer as they are between requests, decode,
rewrite, encode), in microseconds per playlist; the first column mints afresh on every
request (the cost after a token's reuse window, CloudFront's RSA signature included).
Beside them, in the same run: gzip and brotli of the rewritten body at the configured
levels (what compressing after the rewrite adds), and as the reference a plain copy of
the stored body (what relaying it costs here). Bounded: each run is sized to about
--seconds.
"""

from __future__ import annotations

import argparse
import timeit
from collections.abc import Callable
from functools import partial

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from config.auth import AuthSettings, PlaylistTokenSettings
from config.compression import CompressionSettings
from proxy.auth.playlist_tokens import ChildSigner, Tokenizer
from proxy.auth.policy import AuthContext
from proxy.compress import encode

NOW = 1_700_000_000.0
HOST = "cdn.example"
PATH = "/videos/abc/720p/index.m3u8"


def media_playlist(segments: int) -> bytes:
    head = (
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:0\n"
        '#EXT-X-KEY:METHOD=AES-128,URI="../keys/k1.key"\n#EXT-X-MAP:URI="init.mp4"\n'
    )
    body = "".join(f"#EXTINF:4.000,\nseg-{i:05d}.m4s\n" for i in range(segments))
    return (head + body + "#EXT-X-ENDLIST\n").encode()


DASH = (
    b"""<?xml version="1.0"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT1H">
<Period><AdaptationSet mimeType="video/mp4">
"""
    + b"".join(
        f"""<Representation id="v{i}" bandwidth="{i}00000"><BaseURL>v{i}/</BaseURL>
<SegmentTemplate media="seg-$Number$.m4s" initialization="init.mp4" duration="4"/>
</Representation>
""".encode()
        for i in range(1, 5)
    )
    + b"</AdaptationSet></Period></MPD>\n"
)


def context() -> AuthContext:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    settings = AuthSettings.model_validate(
        {
            "keys": {"k1": {"secret": "bench"}, "aka": {"secret": "0a0b0c0d"}},
            "signing_kid": "k1",
            "akamai": {"key": "aka"},
            "cloudfront": {
                "public_keys": {"K": {"public_key": public}},
                "signing_key_pair_id": "K",
                "private_key": pem,
            },
        }
    )
    return AuthContext.from_settings(settings)


def rewrite_case(
    ctx: AuthContext, scheme: str, body: bytes, kind: str, *, fresh: bool
) -> Callable[[], bytes]:
    signer = ChildSigner(
        PlaylistTokenSettings(ttl=3600), ctx, native_param="token", schemes=(scheme,)
    )
    path = PATH if kind == "hls" else "/videos/abc/manifest.mpd"

    def run() -> bytes:
        if fresh:
            signer._memo.clear()  # every request mints
        tokenizer = Tokenizer(
            signer, scheme, host=HOST, url_scheme="https", path=path, ip=None, now=NOW
        )
        out = tokenizer.rewrite(kind, body.decode("utf-8"))
        assert out is not None
        return out.encode("utf-8")

    run()
    return run


def best_us(fn: Callable[[], object], seconds: float) -> float:
    number = max(1, int(seconds / max(timeit.timeit(fn, number=1), 1e-7)))
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0.3)
    args = parser.parse_args()
    ctx = context()
    compression = CompressionSettings()
    bodies = [
        ("HLS, 10 segments", media_playlist(10), "hls"),
        ("HLS, 1,000 segments", media_playlist(1000), "hls"),
        ("DASH, 4 representations", DASH, "dash"),
    ]
    print(
        f"{'playlist':<25} {'scheme':<11} {'bytes':>7} {'out':>8} "
        f"{'minting':>9} {'reused':>8} {'copy':>6} {'gzip':>7} {'br':>7}  µs"
    )
    for label, body, kind in bodies:
        for scheme in ("native", "akamai", "cloudfront"):
            fresh = rewrite_case(ctx, scheme, body, kind, fresh=True)
            reused = rewrite_case(ctx, scheme, body, kind, fresh=False)
            out = reused()
            copy_us = best_us(partial(bytearray, body), args.seconds)
            gzip_us = best_us(partial(encode, out, "gzip", compression), args.seconds)
            br_us = best_us(partial(encode, out, "br", compression), args.seconds)
            print(
                f"{label:<25} {scheme:<11} {len(body):>7} {len(out):>8} "
                f"{best_us(fresh, args.seconds):>9.1f} {best_us(reused, args.seconds):>8.1f} "
                f"{copy_us:>6.1f} {gzip_us:>7.1f} {br_us:>7.1f}"
            )


if __name__ == "__main__":
    main()
