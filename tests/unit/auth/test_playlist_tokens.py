"""Child tokens of tokenized playlists: for each scheme, every rewritten URI of an HLS
master, an HLS media playlist and a DASH manifest verifies with the route's own
verifier for exactly that URL, is refused outside its scope, and URIs of other hosts
or schemes are left alone."""

from __future__ import annotations

from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from config.auth import (
    AuthSettings,
    PlaylistTokenSettings,
    RouteAuthSettings,
    auth_reference_errors,
)
from proxy.auth.common import AuthInput
from proxy.auth.playlist_tokens import ChildSigner, Scope, Tokenizer, add_params, child_ip
from proxy.auth.policy import AuthContext, AuthPolicy, build_policy
from proxy.http.playlist_uris import rewrite_dash, rewrite_hls

NOW = 1_700_000_000.0
HOST = "cdn.example:8443"
CLIENT = "198.51.100.7"

MASTER = """#EXTM3U
#EXT-X-SESSION-KEY:METHOD=SAMPLE-AES,URI="keys/session.key",KEYFORMAT="identity"
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="en",URI="audio/en.m3u8"
#EXT-X-STREAM-INF:BANDWIDTH=800000,AUDIO="aud"
720p/index.m3u8
#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=90000,URI="720p/iframes.m3u8"
https://cdn.example:8443/videos/abc/1080p/index.m3u8
https://other.example/videos/abc/1080p/index.m3u8
/elsewhere/480p/index.m3u8
"""

MEDIA = """#EXTM3U
#EXT-X-VERSION:9
#EXT-X-TARGETDURATION:4
#EXT-X-KEY:METHOD=AES-128,URI="../keys/k1.key",IV=0x00000000000000000000000000000001
#EXT-X-MAP:URI="init.mp4"
#EXTINF:4.0,
seg-1.m4s
#EXT-X-PART:DURATION=1.0,URI="seg-2.part1.m4s"
#EXT-X-PRELOAD-HINT:TYPE=PART,URI="seg-2.part2.m4s"
#EXT-X-RENDITION-REPORT:URI="../480p/index.m3u8",LAST-MSN=2
#EXTINF:4.0,
seg-3.m4s?quality=hd#t=1
#EXTINF:4.0,
skd://key-id
"""

MPD = """<?xml version="1.0" encoding="UTF-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static">
  <Period>
    <AdaptationSet mimeType="video/mp4">
      <Representation id="v1" bandwidth="800000">
        <BaseURL>v1/</BaseURL>
        <SegmentTemplate media="seg-$Number$.m4s?a=1&amp;b=2" initialization="init.mp4"/>
      </Representation>
      <Representation id="v2" bandwidth="100000">
        <BaseURL>https://other.example/v2/</BaseURL>
        <SegmentTemplate media="seg-$Number$.m4s" initialization="init.mp4"/>
      </Representation>
      <Representation id="v3" bandwidth="100000">
        <BaseURL>progressive.mp4</BaseURL>
        <SegmentList><SegmentURL media="part1.m4s"/></SegmentList>
      </Representation>
    </AdaptationSet>
  </Period>
</MPD>
"""


def _keys(tmp_path: Any) -> tuple[AuthSettings, rsa.RSAPrivateKey]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    settings = AuthSettings.model_validate(
        {
            "clock_skew": 0,
            "keys": {
                "k1": {"secret": "native secret"},
                "aka": {"secret": "0a0b0c0d0e0f1a1b"},
                "bn": {"secret": "bunny-key"},
            },
            "signing_kid": "k1",
            "akamai": {"key": "aka", "token_name": "hdnts"},
            "bunny": {"key": "bn"},
            "cloudfront": {
                "public_keys": {"KCF": {"public_key": public_pem}},
                "signing_key_pair_id": "KCF",
                "private_key": private_pem,
            },
        }
    )
    return settings, private


@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory) -> AuthContext:
    settings, _ = _keys(tmp_path_factory.mktemp("keys"))
    return AuthContext.from_settings(settings)


def _route(scheme: str, **playlists: Any) -> RouteAuthSettings:
    return RouteAuthSettings(schemes=(scheme,), playlists=PlaylistTokenSettings(**playlists))


def _tokenizer(
    ctx: AuthContext, scheme: str, path: str, *, ip: str | None = None, **kw: Any
) -> tuple[Tokenizer, AuthPolicy]:
    route = _route(scheme, **kw)
    assert route.playlists is not None
    signer = ChildSigner(route.playlists, ctx, native_param="token", schemes=route.schemes)
    tokenizer = Tokenizer(signer, scheme, host=HOST, url_scheme="https", path=path, ip=ip, now=NOW)
    return tokenizer, build_policy(route, ctx)


def _child_uris(text: str) -> list[str]:
    found = []
    for line in text.splitlines():
        if line.startswith("#") and 'URI="' in line:
            found.append(line.split('URI="', 1)[1].split('"', 1)[0])
        elif line and not line.startswith("#"):
            found.append(line)
    return found


def _check(policy: AuthPolicy, url: str, *, client: str = CLIENT) -> str:
    parts = urlsplit(url)
    result = policy.verify(
        AuthInput(
            path=parts.path,
            query=parts.query,
            client_ip=client,
            now=NOW + 10,
            scheme="https",
            host=HOST,
        )
    )
    return "ok" if result.ok else result.reason


SCHEMES = ("native", "akamai", "cloudfront", "bunny")


@pytest.mark.parametrize("scheme", SCHEMES)
def test_every_same_origin_uri_of_a_media_playlist_verifies(ctx: AuthContext, scheme: str) -> None:
    tokenizer, policy = _tokenizer(ctx, scheme, "/videos/abc/720p/index.m3u8")
    out = tokenizer.rewrite("hls", MEDIA)
    assert out is not None
    base = f"https://{HOST}/videos/abc/720p/index.m3u8"
    uris = _child_uris(out)
    assert uris[-1] == "skd://key-id"  # another scheme: untouched
    for uri in uris[:-1]:
        assert _check(policy, urljoin(base, uri.partition("#")[0])) == "ok", uri
    # The player's own parameter and the fragment stay; the token goes before "#".
    seg3 = next(u for u in uris if u.startswith("seg-3"))
    assert seg3.startswith("seg-3.m4s?quality=hd&") and seg3.endswith("#t=1")
    # The directory token of the rendition covers the rendition, nothing beside it.
    seg1 = next(u for u in uris if u.startswith("seg-1"))
    query = seg1.partition("?")[2]
    assert _check(policy, f"https://{HOST}/videos/abc/720p/seg-99.m4s?{query}") == "ok"
    assert _check(policy, f"https://{HOST}/videos/abc/1080p/seg-1.m4s?{query}") in (
        "acl-mismatch",
        "bad-signature",  # CloudFront and bunny sign the resource itself
    )
    # The key outside the directory got a token for its own path only.
    key = next(u for u in uris if "k1.key" in u)
    key_query = key.partition("?")[2]
    assert _check(policy, f"https://{HOST}/videos/abc/keys/k1.key?{key_query}") == "ok"
    assert _check(policy, f"https://{HOST}/videos/abc/keys/k2.key?{key_query}") != "ok"


@pytest.mark.parametrize("scheme", SCHEMES)
def test_master_playlist_other_hosts_untouched(ctx: AuthContext, scheme: str) -> None:
    tokenizer, policy = _tokenizer(ctx, scheme, "/videos/abc/master.m3u8")
    out = tokenizer.rewrite("hls", MASTER)
    assert out is not None
    uris = _child_uris(out)
    assert "https://other.example/videos/abc/1080p/index.m3u8" in uris
    base = f"https://{HOST}/videos/abc/master.m3u8"
    signed = [u for u in uris if not u.startswith("https://other.example")]
    assert len(signed) == 6
    for uri in signed:
        assert "?" in uri
        assert _check(policy, urljoin(base, uri)) == "ok", uri
    # Lines that are not URIs are byte for byte what they were.
    tags = [line for line in out.splitlines() if line.startswith("#") and "URI=" not in line]
    assert tags == [
        line for line in MASTER.splitlines() if line.startswith("#") and "URI=" not in line
    ]


@pytest.mark.parametrize("scheme", SCHEMES)
def test_dash_templates_segment_urls_and_file_base_urls(ctx: AuthContext, scheme: str) -> None:
    tokenizer, policy = _tokenizer(ctx, scheme, "/dash/abc/manifest.mpd")
    out = tokenizer.rewrite("dash", MPD)
    assert out is not None
    assert "<BaseURL>v1/</BaseURL>" in out  # a directory: left for players to join
    assert 'media="seg-$Number$.m4s?a=1&amp;b=2&amp;' in out
    assert '<SegmentTemplate media="seg-$Number$.m4s" initialization="init.mp4"/>' in out
    template = out.split('media="seg-$Number$.m4s?a=1&amp;b=2&amp;', 1)[1].split('"', 1)[0]
    query = template.replace("&amp;", "&")
    base = f"https://{HOST}/dash/abc/v1/"
    assert _check(policy, f"{base}seg-7.m4s?a=1&b=2&{query}") == "ok"
    init = out.split('initialization="init.mp4?', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    assert _check(policy, f"{base}init.mp4?{init}") == "ok"
    progressive = out.split("<BaseURL>progressive.mp4?", 1)[1].split("<", 1)[0]
    assert (
        _check(
            policy, f"https://{HOST}/dash/abc/progressive.mp4?{progressive.replace('&amp;', '&')}"
        )
        == "ok"
    )


def test_templates_outside_the_manifest_directory_get_their_own_directory(
    ctx: AuthContext,
) -> None:
    tokenizer, _ = _tokenizer(ctx, "native", "/dash/abc/manifest.mpd")
    assert tokenizer.scope("/media/v1/seg-$Number$.m4s", "", True) == Scope(True, "/media/v1/")
    assert tokenizer.scope("/dash/abc/v1/$RepresentationID$/s.m4s", "", True) == Scope(
        True, "/dash/abc/"
    )
    assert tokenizer.scope("/media/x.mp4", "q=1", False) == Scope(False, "/media/x.mp4", "q=1")


@pytest.mark.parametrize("scheme", SCHEMES)
def test_a_template_with_a_width_format_gets_a_token(ctx: AuthContext, scheme: str) -> None:
    """ffmpeg's default `$Number%05d$`: the `%05` is a format, not an escape to refuse."""
    tokenizer, policy = _tokenizer(ctx, scheme, "/dash/abc/manifest.mpd")
    mpd = MPD.replace('media="seg-$Number$.m4s?a=1&amp;b=2"', 'media="chunk-$Number%05d$.m4s"')
    out = tokenizer.rewrite("dash", mpd)
    assert out is not None
    query = out.split('media="chunk-$Number%05d$.m4s?', 1)[1].split('"', 1)[0]
    url = f"https://{HOST}/dash/abc/v1/chunk-00007.m4s?{query.replace('&amp;', '&')}"
    assert _check(policy, url) == "ok"


def test_ip_bound_parent_binds_the_children(ctx: AuthContext) -> None:
    tokenizer, policy = _tokenizer(
        ctx, "native", "/v/a/index.m3u8", ip=child_ip("native", {"ip": "198.51.100.0/24"}, CLIENT)
    )
    out = tokenizer.rewrite("hls", "#EXTM3U\n#EXTINF:4,\nseg.ts\n")
    assert out is not None
    url = f"https://{HOST}/v/a/" + _child_uris(out)[0]
    assert _check(policy, url) == "ok"
    assert _check(policy, url, client="203.0.113.9") == "ip-mismatch"
    assert child_ip("akamai", {"ip": "198.51.100.0/24"}, CLIENT) == CLIENT
    assert child_ip("akamai", {}, CLIENT) is None


def test_child_tokens_expire_after_the_route_ttl(ctx: AuthContext) -> None:
    tokenizer, policy = _tokenizer(ctx, "native", "/v/a/index.m3u8", ttl=60)
    out = tokenizer.rewrite("hls", "#EXTM3U\n#EXTINF:4,\nseg.ts\n")
    assert out is not None
    query = _child_uris(out)[0].partition("?")[2]
    late = AuthInput(path="/v/a/seg.ts", query=query, client_ip=CLIENT, now=NOW + 61)
    assert policy.verify(late).reason == "expired"


def test_minted_tokens_are_reused_for_a_tenth_of_their_life(ctx: AuthContext) -> None:
    route = _route("cloudfront", ttl=600)
    assert route.playlists is not None
    signer = ChildSigner(route.playlists, ctx, native_param="token", schemes=route.schemes)
    scope = Scope(True, "/v/a/")
    first = signer.params("cloudfront", scope, None, "https://h", NOW)
    assert signer.params("cloudfront", scope, None, "https://h", NOW + 59) == first
    assert signer.params("cloudfront", scope, None, "https://h", NOW + 61) != first


def test_add_params_replaces_a_stale_token() -> None:
    names = frozenset({"token"})
    assert add_params("a.ts", "token=T", names) == "a.ts?token=T"
    assert add_params("a.ts?token=old&q=1#f", "token=T", names) == "a.ts?q=1&token=T#f"


def test_unreadable_input_is_none(ctx: AuthContext) -> None:
    tokenizer, _ = _tokenizer(ctx, "native", "/v/a/index.m3u8")
    assert tokenizer.rewrite("hls", "<html>not a playlist</html>") is None
    assert tokenizer.rewrite("hls", "#EXTM3U\n#EXT-X-KEY:METHOD=AES-128,URI=k.key\n") is None
    assert tokenizer.rewrite("dash", "<MPD><Period></MPD>") is None
    assert tokenizer.rewrite("hls", "#EXTM3U\n" + "s.ts\n" * 11, max_uris=10) is None
    assert rewrite_hls("#EXTM3U\n#EXTINF:1,\n", lambda u, b, t: "x") == "#EXTM3U\n#EXTINF:1,\n"
    assert rewrite_dash("<MPD/>", "https://h/m.mpd", lambda u, b, t: "x") == "<MPD/>"


def test_settings_refuse_what_cannot_be_minted() -> None:
    auth = AuthSettings.model_validate(
        {
            "keys": {"bn": {"secret": "k"}, "k1": {"secret": "k1"}},
            "bunny": {"key": "bn", "forms": ["md5"]},
            "cloudfront": {"public_keys": {}},
        }
    )
    errors = auth_reference_errors(
        auth,
        [
            _route("bunny"),
            _route("cloudfront"),
            RouteAuthSettings(schemes=("bunny",), playlists=PlaylistTokenSettings(scheme="native")),
            _route("native"),
        ],
    )
    reasons = " | ".join(reason for _, reason in errors)
    assert "signing_kid" in reasons and "hs256" in reasons and "signing_key_pair_id" in reasons
    assert "not one of this route's schemes" in reasons
