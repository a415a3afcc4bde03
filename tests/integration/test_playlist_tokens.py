"""Tokenized playlists through a real `edgeshield serve`: a playlist signed by the
vendors' own generators (Akamai's akamai-edgeauth, botocore's CloudFrontSigner,
bunny.net's documented HS256 form, the project's native signer) comes back with a child
token in every same-origin URI, and edgeshield accepts each child URL with it and
refuses the same token outside its scope. The cache keeps one untokenized copy; the
rewritten answer is whole, private, without validators, compressed after the rewrite;
path-style and cookie tokens get the playlist as stored; malformed and oversized
playlists are relayed untouched."""

from __future__ import annotations

import datetime
import re
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest
from botocore.signers import CloudFrontSigner
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from proxy.auth.common import cloudfront_b64_encode
from proxy.auth.keys import KeyRing
from proxy.auth.native import sign_url
from tests.support import bunny_signer
from tests.support.edgeauth import EdgeAuth
from tests.support.origin_server import OriginServer
from tests.support.proxy_server import ProxyServer, running_proxy

NATIVE_SECRET = "playlist tokens native secret"
AKAMAI_KEY = "7d1f9a4b2c3e5f60718293a4b5c6d7e8"
BUNNY_KEY = "229248f0-f007-4bf9-ba1f-bbf1b4ad9d40"
KID = "K2PLAYLISTS"

MASTER = """#EXTM3U
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="en",URI="audio/index.m3u8"
#EXT-X-STREAM-INF:BANDWIDTH=800000,AUDIO="aud"
720p/index.m3u8
http://other.example/v/720p/index.m3u8
"""

MEDIA = """#EXTM3U
#EXT-X-TARGETDURATION:4
#EXT-X-KEY:METHOD=AES-128,URI="../../keys/a.key"
#EXT-X-MAP:URI="init.mp4"
#EXTINF:4.0,
seg-1.m4s
#EXTINF:4.0,
seg-2.m4s
#EXT-X-ENDLIST
"""


@pytest.fixture(scope="module")
def cf_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _config(origin_url: str, key: rsa.RSAPrivateKey, tmp: Path) -> str:
    (tmp / "cf-public.pem").write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    (tmp / "cf-private.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    routes = "".join(
        f"""
[[routes]]
path_prefix = "/{prefix}"
origin = "main"
[routes.auth]
schemes = ["{scheme}"]
[routes.auth.playlists]
ttl = 600
{extra}
"""
        for prefix, scheme, extra in (
            ("nt", "native", ""),
            ("ak", "akamai", ""),
            ("cf", "cloudfront", ""),
            ("bn", "bunny", ""),
            ("small", "native", "max_bytes = 1024"),
        )
    )
    return f"""
[server]
access_log = "off"
[auth]
clock_skew = 0
signing_kid = "k7"
[auth.keys.k7]
secret = "{NATIVE_SECRET}"
[auth.keys.akamai]
secret = "{AKAMAI_KEY}"
[auth.keys.bunny]
secret = "{BUNNY_KEY}"
[auth.akamai]
key = "akamai"
token_name = "hdnts"
[auth.bunny]
key = "bunny"
[auth.cloudfront]
signing_key_pair_id = "{KID}"
private_key_file = "{tmp / "cf-private.pem"}"
[auth.cloudfront.public_keys.{KID}]
public_key_file = "{tmp / "cf-public.pem"}"
[origins.main]
kind = "http"
url = "{origin_url}"
{routes}
"""


@pytest.fixture(scope="module")
def proxy(
    origin_server: OriginServer, cf_key: rsa.RSAPrivateKey, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProxyServer]:
    config = _config(origin_server.url, cf_key, tmp_path_factory.mktemp("cf"))
    with running_proxy(config) as server:
        yield server


def _script(origin: OriginServer, prefix: str) -> None:
    playlist = {
        "cache-control": "public, max-age=60",
        "etag": '"v1"',
        "last-modified": "Mon, 01 Jan 2024 00:00:00 GMT",
    }
    hls = {**playlist, "content-type": "application/vnd.apple.mpegurl"}
    origin.script(f"{prefix}/v/master.m3u8", body=MASTER, headers=hls)
    origin.script(f"{prefix}/v/720p/index.m3u8", body=MEDIA, headers=hls)
    origin.script(f"{prefix}/v/audio/index.m3u8", body=MEDIA, headers=hls)
    for name in (
        "720p/init.mp4",
        "720p/seg-1.m4s",
        "720p/seg-2.m4s",
        "audio/init.mp4",
        "audio/seg-1.m4s",
        "audio/seg-2.m4s",
        "720p/other.m4s",
    ):
        origin.script(
            f"{prefix}/v/{name}", body=f"bytes of {name}", headers={"cache-control": "max-age=600"}
        )
    origin.script(
        f"{prefix}/keys/a.key", body="0123456789abcdef", headers={"cache-control": "max-age=600"}
    )
    origin.script(
        f"{prefix}/keys/b.key", body="fedcba9876543210", headers={"cache-control": "max-age=600"}
    )


def _signed_master(scheme: str, base: str, key: rsa.RSAPrivateKey) -> str:
    """The master playlist's URL signed by the scheme's own generator."""
    expires = int(time.time()) + 600
    if scheme == "native":
        keys = KeyRing({"k7": NATIVE_SECRET.encode()})
        return base + sign_url("/nt/v/master.m3u8", keys, ttl=600, prefix="/nt/v/")
    if scheme == "akamai":
        token = EdgeAuth(key=AKAMAI_KEY, window_seconds=600).generate_acl_token("/ak/v/*")
        return f"{base}/ak/v/master.m3u8?hdnts={token}"
    if scheme == "cloudfront":

        def rsa_signer(message: bytes) -> bytes:
            return key.sign(message, padding.PKCS1v15(), hashes.SHA1())

        signer = CloudFrontSigner(KID, rsa_signer)
        until = datetime.datetime.fromtimestamp(expires, tz=datetime.UTC)
        return signer.generate_presigned_url(f"{base}/cf/v/master.m3u8", date_less_than=until)
    return base + bunny_signer.signed_url(
        "/bn/v/master.m3u8", BUNNY_KEY, expires, token_path="/bn/v/"
    )


def _uris(text: str) -> list[str]:
    found = re.findall(r'URI="([^"]+)"', text)
    found += [line for line in text.splitlines() if line and not line.startswith("#")]
    return found


@pytest.mark.parametrize("scheme", ["native", "akamai", "cloudfront", "bunny"])
def test_vendor_signed_playlists_hand_out_child_tokens_that_verify(
    origin: OriginServer, proxy: ProxyServer, cf_key: rsa.RSAPrivateKey, scheme: str
) -> None:
    prefix = {"native": "/nt", "akamai": "/ak", "cloudfront": "/cf", "bunny": "/bn"}[scheme]
    _script(origin, prefix)
    master_url = _signed_master(scheme, proxy.url, cf_key)
    with httpx.Client(headers={"accept-encoding": "identity"}) as client:
        master = client.get(master_url)
        assert master.status_code == 200, master.text
        assert "etag" not in master.headers and "last-modified" not in master.headers
        assert master.headers["cache-control"] == "private, max-age=60"
        assert int(master.headers["content-length"]) == len(master.content)
        uris = _uris(master.text)
        assert "http://other.example/v/720p/index.m3u8" in uris  # another host: untouched
        fetched = 0
        for uri in uris:
            if uri.startswith("http://other.example"):
                continue
            child = client.get(urljoin(master_url, uri))
            assert child.status_code == 200, (uri, child.text)
            for grand in _uris(child.text):  # the media playlist is rewritten in turn
                answer = client.get(urljoin(str(child.url), grand))
                assert answer.status_code == 200, (grand, answer.text)
                fetched += 1
        assert fetched == 2 * 4  # key, init, two segments; in both renditions
        # The same child token outside its scope is refused.
        media = client.get(urljoin(master_url, next(u for u in uris if u.startswith("720p/"))))
        seg = next(u for u in _uris(media.text) if u.startswith("seg-1"))
        query = seg.partition("?")[2]
        inside = client.get(f"{proxy.url}{prefix}/v/720p/other.m4s?{query}")
        outside = client.get(f"{proxy.url}{prefix}/keys/b.key?{query}")
        assert inside.status_code == 200
        assert outside.status_code == 403
        again = client.get(master_url)
    # One untokenized copy: the origin saw each playlist once, without a token.
    assert origin.requests(f"{prefix}/v/master.m3u8") == 1
    assert origin.stats()["last_target"][f"{prefix}/v/master.m3u8"] == f"{prefix}/v/master.m3u8"
    assert again.status_code == 200 and "hit" in again.headers["cache-status"]
    assert _uris(again.text) == uris


def _native(path: str, prefix: str, **kw: object) -> str:
    keys = KeyRing({"k7": NATIVE_SECRET.encode()})
    return sign_url(path, keys, ttl=600, prefix=prefix, **kw)  # type: ignore[arg-type]


def test_ranges_preconditions_and_compression(origin: OriginServer, proxy: ProxyServer) -> None:
    hls = {
        "content-type": "application/vnd.apple.mpegurl",
        "cache-control": "max-age=60",
        "etag": '"v1"',
    }
    long = "#EXTM3U\n" + "".join(f"#EXTINF:4,\nseg-{i}.m4s\n" for i in range(100))
    origin.script("/nt/v/720p/long.m3u8", body=long, headers=hls)
    url = proxy.url + _native("/nt/v/720p/long.m3u8", "/nt/v/")
    with httpx.Client() as client:
        whole = client.get(url, headers={"accept-encoding": "identity"})
        ranged = client.get(url, headers={"range": "bytes=0-9", "accept-encoding": "identity"})
        conditional = client.get(
            url, headers={"if-none-match": '"v1"', "accept-encoding": "identity"}
        )
        zipped = client.get(url, headers={"accept-encoding": "gzip"})
        head = client.head(url)
    assert whole.status_code == 200 and "token=" in whole.text
    assert ranged.status_code == 200 and ranged.text == whole.text
    assert "accept-ranges" not in ranged.headers
    assert conditional.status_code == 200 and conditional.text == whole.text
    assert zipped.headers["content-encoding"] == "gzip"
    assert "accept-encoding" in zipped.headers["vary"].lower()
    assert zipped.text == whole.text  # httpx decoded it: the rewrite came first
    assert head.status_code == 200 and "etag" not in head.headers
    assert head.headers["cache-control"].startswith("private")
    # The origin was asked once, for the identity form, without range or validators.
    assert origin.requests("/nt/v/720p/long.m3u8") == 1
    assert "range" not in origin.stats()["last_headers"]["/nt/v/720p/long.m3u8"]


def test_path_and_cookie_tokens_get_the_stored_playlist(
    origin: OriginServer, proxy: ProxyServer, cf_key: rsa.RSAPrivateKey
) -> None:
    _script(origin, "/nt")
    _script(origin, "/cf")
    path_style = _native("/nt/v/720p/index.m3u8", "/nt/v/", style="path")
    assert path_style.startswith("/_t/")
    expires = int(time.time()) + 600
    policy = (
        '{"Statement":[{"Resource":"' + proxy.url + '/cf/v/*","Condition":'
        '{"DateLessThan":{"AWS:EpochTime":' + str(expires) + "}}}]}"
    )
    signature = cf_key.sign(policy.encode(), padding.PKCS1v15(), hashes.SHA1())
    cookies = {
        "CloudFront-Policy": cloudfront_b64_encode(policy.encode()),
        "CloudFront-Signature": cloudfront_b64_encode(signature),
        "CloudFront-Key-Pair-Id": KID,
    }
    with httpx.Client(base_url=proxy.url) as client:
        by_path = client.get(path_style)
        no_cookie = client.get("/cf/v/720p/seg-1.m4s")
    with httpx.Client(base_url=proxy.url, cookies=cookies) as client:
        with_cookies = client.get("/cf/v/720p/index.m3u8")
        segment = client.get("/cf/v/720p/seg-1.m4s")
    assert by_path.status_code == 200 and by_path.text == MEDIA
    assert by_path.headers["etag"] == '"v1"'
    assert with_cookies.status_code == 200 and with_cookies.text == MEDIA
    assert segment.status_code == 200 and segment.text == "bytes of 720p/seg-1.m4s"
    assert no_cookie.status_code == 403


def test_bad_input_is_relayed_untouched_or_refused(
    origin: OriginServer, proxy: ProxyServer
) -> None:
    hls = {"content-type": "application/vnd.apple.mpegurl", "cache-control": "max-age=60"}
    broken = "#EXTM3U\n#EXT-X-KEY:METHOD=AES-128,URI=unquoted.key\nseg.ts\n"
    origin.script("/nt/bad/index.m3u8", body=broken, headers=hls)
    origin.script("/nt/bad/not.m3u8", body="<html>oops</html>", headers=hls)
    origin.script("/nt/bad/binary.m3u8", body_base64="//79/A==", headers=hls)
    big = "#EXTM3U\n" + "#EXTINF:4,\nseg.ts\n" * 200
    origin.script("/small/v/big.m3u8", body=big, headers=hls)
    origin.script("/small/v/chunked.m3u8", body=big, headers=hls, mode="chunked")
    origin.script(
        "/nt/bad/gone.m3u8", status=404, body="nope", headers={"cache-control": "max-age=5"}
    )
    mpd = {"content-type": "application/dash+xml", "cache-control": "max-age=60"}
    origin.script("/nt/bad/manifest.mpd", body="<MPD><Period></MPD>", headers=mpd)
    with httpx.Client(base_url=proxy.url) as client:
        for path, body in (
            ("/nt/bad/index.m3u8", broken),
            ("/nt/bad/not.m3u8", "<html>oops</html>"),
            ("/nt/bad/manifest.mpd", "<MPD><Period></MPD>"),
        ):
            answer = client.get(_native(path, "/nt/bad/"))
            assert answer.status_code == 200 and answer.text == body, path
        binary = client.get(_native("/nt/bad/binary.m3u8", "/nt/bad/"))
        assert binary.status_code == 200 and binary.content == bytes.fromhex("fffefdfc")
        for path in ("/small/v/big.m3u8", "/small/v/chunked.m3u8"):
            answer = client.get(_native(path, "/small/v/"), headers={"accept-encoding": "identity"})
            assert answer.status_code == 200 and answer.text == big, path
        gone = client.get(_native("/nt/bad/gone.m3u8", "/nt/bad/"))
        assert gone.status_code == 404 and gone.text == "nope"
        forged = client.get("/nt/bad/index.m3u8?token=abc.def")
        assert forged.status_code == 403
        assert forged.headers["edgeshield-auth-reason"] == "bad-signature"
        other_scope = _native("/nt/v/index.m3u8", "/nt/v/").partition("?")[2]
        elsewhere = client.get(f"/nt/bad/index.m3u8?{other_scope}")
        assert elsewhere.status_code == 403
        assert elsewhere.headers["edgeshield-auth-reason"] == "acl-mismatch"


def test_dash_manifest_children_verify(origin: OriginServer, proxy: ProxyServer) -> None:
    mpd = """<?xml version="1.0"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static"><Period><AdaptationSet>
<Representation id="v1"><BaseURL>v1/</BaseURL>
<SegmentTemplate media="seg-$Number$.m4s" initialization="init.mp4" startNumber="1"/>
</Representation></AdaptationSet></Period></MPD>
"""
    origin.script("/nt/d/manifest.mpd", body=mpd, headers={"content-type": "application/dash+xml"})
    origin.script("/nt/d/v1/seg-7.m4s", body="seg 7", headers={"cache-control": "max-age=60"})
    with httpx.Client(base_url=proxy.url) as client:
        manifest = client.get(_native("/nt/d/manifest.mpd", "/nt/d/"))
        media = re.search(r'media="([^"]+)"', manifest.text)
        assert media is not None
        query = media.group(1).replace("&amp;", "&").partition("?")[2]
        segment = client.get(f"/nt/d/v1/seg-7.m4s?{query}")
    assert segment.status_code == 200 and segment.text == "seg 7"
    assert "<BaseURL>v1/</BaseURL>" in manifest.text
    assert manifest.headers["content-type"] == "application/dash+xml"
