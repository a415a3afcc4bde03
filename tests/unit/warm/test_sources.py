"""The warm job's inputs: JSON bodies, sitemaps (hostile ones included), URL checks and
the URIs of HLS and DASH playlists; fuzzed so that any input is an answer or a
SourceError, never another exception and never more URLs than allowed."""

from __future__ import annotations

from xml.sax.saxutils import escape

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.warm.sources import (
    MAX_URL,
    SourceError,
    check_url,
    lines_of_urls,
    parse_body,
    parse_sitemap,
    playlist_uris,
)


def _sitemap(locs: list[str]) -> bytes:
    urls = "".join(f"<url><loc>{escape(loc)}</loc></url>" for loc in locs)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>'
    ).encode()


def test_a_sitemap_gives_its_locs_in_order() -> None:
    locs = ["http://a.test/1", "http://a.test/2?x=1&y=2", "http://a.test/3"]
    assert parse_sitemap(_sitemap(locs), 10) == locs
    prefixed = b'<s:urlset xmlns:s="x"><s:url><s:loc> http://a.test/p </s:loc></s:url></s:urlset>'
    assert parse_sitemap(prefixed, 10) == ["http://a.test/p"]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b'<!DOCTYPE x [<!ENTITY a "aaaa">]><urlset/>', "DOCTYPE"),
        (b'<!DOCTYPE urlset SYSTEM "http://evil.test/x.dtd"><urlset/>', "DOCTYPE"),
        (b"<sitemapindex><sitemap><loc>http://a/s.xml</loc></sitemap></sitemapindex>", "index"),
        (b"<html><body/></html>", "not a sitemap"),
        (b"<urlset><url><loc>http://a/</loc></url>", "well-formed"),
        (b"", "well-formed"),
    ],
)
def test_what_is_not_a_plain_sitemap_is_refused(body: bytes, words: str) -> None:
    with pytest.raises(SourceError) as refused:
        parse_sitemap(body, 10)
    assert words in refused.value.reason and refused.value.status == 400


def test_a_sitemap_beyond_the_bound_is_413_and_a_long_loc_400() -> None:
    with pytest.raises(SourceError) as many:
        parse_sitemap(_sitemap([f"http://a.test/{i}" for i in range(11)]), 10)
    assert many.value.status == 413
    with pytest.raises(SourceError) as long:
        parse_sitemap(_sitemap(["http://a.test/" + "x" * MAX_URL]), 10)
    assert "too long" in long.value.reason


@settings(max_examples=300)
@given(st.binary(max_size=400))
def test_any_bytes_are_a_list_or_a_refusal(body: bytes) -> None:
    try:
        urls = parse_sitemap(b"<urlset>" + body, 5)
    except SourceError:
        return
    assert len(urls) <= 5


@given(st.lists(st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=30), max_size=8))
def test_sitemap_locs_round_trip(paths: list[str]) -> None:
    locs = ["http://a.test/" + p.strip() for p in paths]
    assert parse_sitemap(_sitemap(locs), 8) == locs


def test_json_bodies() -> None:
    got = parse_body(b'{"urls": ["http://a/1", " ", "http://a/2"]}', "application/json", 10)
    assert (got.source, got.urls, got.playlists) == ("urls", ("http://a/1", "http://a/2"), ())
    one = parse_body(b'{"playlist": "http://a/m.m3u8"}', None, 10)
    assert (one.source, one.playlists) == ("playlist", ("http://a/m.m3u8",))
    xml = parse_body(_sitemap(["http://a/1"]), None, 10)
    assert (xml.source, xml.urls) == ("sitemap", ("http://a/1",))


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (b"{nope", 400, "JSON"),
        (b"[]", 400, "object"),
        (b'{"urls": "http://a/"}', 400, "list"),
        (b'{"urls": [1]}', 400, "list"),
        (b'{"url": ["http://a/"]}', 400, "unknown"),
        (b"{}", 400, "nothing"),
        (b'{"urls": ["http://a/1", "http://a/2", "http://a/3"]}', 413, "more than 2"),
    ],
)
def test_bad_json_bodies(body: bytes, status: int, words: str) -> None:
    with pytest.raises(SourceError) as refused:
        parse_body(body, "application/json", 2)
    assert refused.value.status == status and words in refused.value.reason


@given(st.binary(max_size=300), st.sampled_from([None, "application/json", "text/xml"]))
def test_any_body_is_a_request_or_a_refusal(body: bytes, content_type: str | None) -> None:
    try:
        got = parse_body(body, content_type, 3)
    except SourceError:
        return
    assert 0 < len(got.urls) + len(got.playlists) <= 3 or got.source == "sitemap"


def test_urls_are_checked() -> None:
    target = check_url("https://Media.Test:8443/a%20b/c.jpg?x=1#frag")
    assert (target.scheme, target.authority, target.host) == (
        "https",
        "Media.Test:8443",
        "media.test",
    )
    assert (target.path, target.query) == ("/a%20b/c.jpg", "x=1")
    assert check_url("http://a.test").path == "/"
    for bad in [
        "ftp://a.test/x",
        "/relative",
        "http://user:pw@a.test/",
        "http://a.test/é",
        "http://a b/",
        "http://a.test/\x00",
        "http://[::1/",
        "http:///x",
    ]:
        with pytest.raises(SourceError):
            check_url(bad)


@given(st.text(max_size=60))
def test_any_text_is_a_target_or_a_refusal(url: str) -> None:
    try:
        target = check_url(url)
    except SourceError:
        return
    assert target.scheme in ("http", "https") and target.path.startswith("/")


MASTER = b"""#EXTM3U
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",NAME="en",URI="audio/en.m3u8"
#EXT-X-STREAM-INF:BANDWIDTH=400000
low/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=800000
/abs/high.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=800000
low/index.m3u8
"""


def test_hls_uris_resolve_against_the_playlist() -> None:
    uris = playlist_uris(MASTER, "http://a.test/v/master.m3u8", None, 100)
    assert uris == [
        "http://a.test/v/audio/en.m3u8",
        "http://a.test/v/low/index.m3u8",
        "http://a.test/abs/high.m3u8",
    ]
    media = b'#EXTM3U\n#EXT-X-KEY:METHOD=AES-128,URI="k.key"\n#EXTINF:4,\ns1.ts\n#EXT-X-ENDLIST\n'
    got = playlist_uris(media, "http://a.test/v/low/index.m3u8", None, 100)
    assert got == ["http://a.test/v/low/k.key", "http://a.test/v/low/s1.ts"]


def test_dash_uris_skip_templates_with_identifiers() -> None:
    mpd = b"""<?xml version="1.0"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static">
 <BaseURL>media/</BaseURL>
 <Period><AdaptationSet><Representation id="v1" bandwidth="1">
  <SegmentTemplate initialization="init-$RepresentationID$.mp4" media="s-$Number$.m4s"/>
 </Representation><Representation id="v2" bandwidth="2">
  <SegmentList><Initialization sourceURL="v2/init.mp4"/>
   <SegmentURL media="v2/1.m4s"/><SegmentURL media="v2/2.m4s"/></SegmentList>
 </Representation></AdaptationSet></Period></MPD>"""
    uris = playlist_uris(mpd, "http://a.test/d/manifest.mpd", "application/dash+xml", 100)
    assert uris == [
        "http://a.test/d/media/v2/init.mp4",
        "http://a.test/d/media/v2/1.m4s",
        "http://a.test/d/media/v2/2.m4s",
    ]


def test_what_is_not_a_playlist_is_none_and_a_long_one_is_cut() -> None:
    assert playlist_uris(b"<html/>", "http://a.test/x.m3u8", None, 10) is None
    assert playlist_uris(b"#EXTM3U\n", "http://a.test/x.jpg", "image/jpeg", 10) is None
    assert playlist_uris(b"\xff\xfe", "http://a.test/x.m3u8", None, 10) is None
    many = b"#EXTM3U\n" + b"".join(b"#EXTINF:1,\ns%d.ts\n" % i for i in range(11))
    assert playlist_uris(many, "http://a.test/x.m3u8", None, 10) == [
        f"http://a.test/s{i}.ts" for i in range(10)
    ]


@given(st.binary(max_size=300), st.sampled_from(["x.m3u8", "x.mpd"]))
def test_any_playlist_bytes_give_bounded_uris_or_none(body: bytes, name: str) -> None:
    uris = playlist_uris(body, "http://a.test/" + name, None, 5)
    assert uris is None or len(uris) <= 5


def test_url_files() -> None:
    assert lines_of_urls(["# c", "", " http://a/1 ", "http://a/2"]) == ["http://a/1", "http://a/2"]
