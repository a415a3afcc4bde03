"""Finding and replacing the URIs of HLS playlists and DASH manifests: every URI-bearing
tag, byte-for-byte preservation of everything else, refusal of what does not parse, and
hypothesis fuzzing (never raises, the output parses again, non-URI lines untouched)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.http.playlist_uris import (
    kind_by_path,
    playlist_kind,
    rewrite_dash,
    rewrite_hls,
)

TAGGED = """#EXTM3U
#EXT-X-SESSION-KEY:METHOD=SAMPLE-AES,URI="s.key"
#EXT-X-SESSION-DATA:DATA-ID="com.example",URI="data.json"
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",NAME="en",URI="en.m3u8"
#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=1,URI="if.m3u8"
#EXT-X-KEY:METHOD=AES-128,URI="k.key",IV=0x1
#EXT-X-KEY:METHOD=NONE
#EXT-X-MAP:URI="init.mp4",BYTERANGE="100@0"
#EXT-X-PART:DURATION=1,URI="p.m4s",INDEPENDENT=YES
#EXT-X-PRELOAD-HINT:TYPE=PART,URI="h.m4s"
#EXT-X-RENDITION-REPORT:URI="../r.m3u8",LAST-MSN=1
#EXT-X-STREAM-INF:BANDWIDTH=1,CODECS="a,b"
v.m3u8
#EXTINF:4,title, with comma
seg.ts
"""


def mark(uri: str, base: str | None, template: bool) -> str:
    return uri + "?t=1"


def test_every_uri_bearing_tag_and_uri_line() -> None:
    out = rewrite_hls(TAGGED, mark)
    assert out is not None
    for uri in (
        "s.key",
        "data.json",
        "en.m3u8",
        "if.m3u8",
        "k.key",
        "init.mp4",
        "p.m4s",
        "h.m4s",
        "../r.m3u8",
    ):
        assert f'URI="{uri}?t=1"' in out
    assert "\nv.m3u8?t=1\n" in out and "\nseg.ts?t=1\n" in out
    assert "#EXT-X-KEY:METHOD=NONE\n" in out
    assert '#EXT-X-STREAM-INF:BANDWIDTH=1,CODECS="a,b"\n' in out
    assert 'BYTERANGE="100@0"' in out and "#EXTINF:4,title, with comma\n" in out


def test_line_endings_bom_and_whitespace_are_kept() -> None:
    text = "\ufeff#EXTM3U\r\n#EXTINF:4,\r\n  seg.ts \r\n\r\nlast.ts"
    assert (
        rewrite_hls(text, mark) == "\ufeff#EXTM3U\r\n#EXTINF:4,\r\n  seg.ts?t=1 \r\n\r\nlast.ts?t=1"
    )


def test_unreadable_hls_is_refused_whole() -> None:
    assert rewrite_hls("seg.ts\n", mark) is None  # no #EXTM3U
    assert rewrite_hls('#EXTM3U\n#EXT-X-MAP:URI="a",URI="b"\n', mark) is None
    assert rewrite_hls('#EXTM3U\n#EXT-X-MAP:URI="a\n', mark) is None
    assert rewrite_hls("#EXTM3U\n#EXT-X-MAP\n", mark) is None
    assert rewrite_hls('#EXTM3U\n#EXT-X-MAP:URI="a"junk\n', mark) is None


def test_dash_attributes_text_and_bases() -> None:
    seen: list[tuple[str, str | None, bool]] = []

    def record(uri: str, base: str | None, template: bool) -> str:
        seen.append((uri, base, template))
        return uri + "?t=1&x"

    text = """<?xml version="1.0"?><!-- a comment with <tags> -->
<mpd:MPD xmlns:mpd="urn:mpeg:dash:schema:mpd:2011">
<mpd:BaseURL>https://h/base/</mpd:BaseURL>
<mpd:Period><mpd:AdaptationSet><mpd:Representation>
<mpd:BaseURL>r1/</mpd:BaseURL><mpd:BaseURL>alt/</mpd:BaseURL>
<mpd:SegmentList><mpd:Initialization sourceURL="i.mp4"/>
<mpd:SegmentURL media='s1.m4s' index="x.sidx"/></mpd:SegmentList>
<mpd:SegmentBase><mpd:RepresentationIndex sourceURL="ri.sidx"/></mpd:SegmentBase>
</mpd:Representation></mpd:AdaptationSet></mpd:Period></mpd:MPD>
"""
    out = rewrite_dash(text, "https://h/m/x.mpd", record)
    assert out is not None
    assert seen == [
        ("i.mp4", "https://h/base/r1/", False),
        ("s1.m4s", "https://h/base/r1/", False),
        ("x.sidx", "https://h/base/r1/", False),
        ("ri.sidx", "https://h/base/r1/", False),
    ]
    assert "media='s1.m4s?t=1&amp;x'" in out
    assert "<!-- a comment with <tags> -->" in out


def test_unreadable_dash_is_refused_whole() -> None:
    for text in (
        "<MPD><Period></MPD>",
        "<MPD></MPD><MPD></MPD>",
        "<Other/>",
        '<MPD><SegmentURL media="a&b"/></MPD>',
        "<MPD><BaseURL><x/></BaseURL></MPD>",
        "text<MPD/>",
        "<MPD><Period>",
    ):
        assert rewrite_dash(text, "https://h/m.mpd", mark) is None, text


def test_kind() -> None:
    assert playlist_kind("application/vnd.apple.mpegurl; charset=utf-8", "/x") == "hls"
    assert playlist_kind("application/dash+xml", "/x") == "dash"
    assert playlist_kind("application/octet-stream", "/a/b.M3U8") == "hls"
    assert kind_by_path("/a.mpd") == "dash" and kind_by_path("/a.ts") is None


# -- fuzzing --------------------------------------------------------------------------------

_URI = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters='"\r\n'),
    min_size=1,
    max_size=20,
).filter(lambda s: not s.startswith("#") and s.strip() == s)
_TAG = st.sampled_from(
    [
        "#EXT-X-KEY",
        "#EXT-X-MAP",
        "#EXT-X-PART",
        "#EXT-X-MEDIA",
        "#EXTINF",
        "#EXT-X-TARGETDURATION",
        "#EXT-X-PRELOAD-HINT",
        "#EXT-X-RENDITION-REPORT",
        "# comment",
    ]
)


@st.composite
def hls_lines(draw: st.DrawFn) -> str:
    lines = ["#EXTM3U"]
    for _ in range(draw(st.integers(0, 12))):
        choice = draw(st.integers(0, 3))
        if choice == 0:
            lines.append(draw(_URI))
        elif choice == 1:
            tag = draw(_TAG)
            lines.append(f'{tag}:METHOD=AES-128,URI="{draw(_URI)}",IV=0x1')
        elif choice == 2:
            lines.append(f"{draw(_TAG)}:{draw(st.text(max_size=15))}")
        else:
            lines.append("")
    ending = draw(st.sampled_from(["\n", "\r\n"]))
    return ending.join(lines) + draw(st.sampled_from(["", ending]))


def _lines(text: str) -> list[str]:
    return [line.removesuffix("\r") for line in text.split("\n")]


def _non_uri_lines(text: str) -> list[str]:
    return [line for line in _lines(text) if line.startswith("#") and "URI=" not in line]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hls_lines())
def test_fuzz_hls_structured(text: str) -> None:
    out = rewrite_hls(text, mark)
    if out is None:
        return
    assert rewrite_hls(out, lambda u, b, t: None) == out  # the output parses
    assert _non_uri_lines(out) == _non_uri_lines(text)
    assert len(_lines(out)) == len(_lines(text))
    assert out.count("?t=1") >= sum(
        1 for line in _lines(text) if line.strip() and not line.startswith("#")
    )


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_fuzz_hls_never_raises(text: str) -> None:
    for candidate in (text, "#EXTM3U\n" + text):
        out = rewrite_hls(candidate, mark)
        assert out is None or rewrite_hls(out, lambda u, b, t: None) == out


_XML_PIECES = st.sampled_from(
    [
        "<MPD>",
        "</MPD>",
        "<Period>",
        "</Period>",
        "<BaseURL>",
        "</BaseURL>",
        "v/",
        "a.mp4",
        '<SegmentTemplate media="s-$Number$.m4s" initialization="i.mp4"/>',
        '<SegmentURL media="a&amp;b.m4s"/>',
        "<!-- c -->",
        "<![CDATA[x]]>",
        "&amp;",
        "&bogus;",
        "<",
        ">",
        '"',
        " ",
        "\n",
    ]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_XML_PIECES, max_size=25), st.text(max_size=30))
def test_fuzz_dash_never_raises(pieces: list[str], noise: str) -> None:
    for text in ("".join(pieces), "".join(pieces) + noise, noise):
        out = rewrite_dash(text, "https://h/d/m.mpd", mark)
        if out is not None:
            # The output parses, and only URI values changed.
            assert rewrite_dash(out, "https://h/d/m.mpd", lambda u, b, t: None) == out
            assert out.replace("?t=1", "") == text
