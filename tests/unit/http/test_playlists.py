"""The playlist scanner on ffmpeg's real HLS and DASH output, on hand-made edge cases,
and fuzzed: it never raises, reads a bounded prefix and tail, and says None (unknown)
for anything it cannot read with certainty."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.http.playlists import HEAD_BYTES, Playlist, classify_playlist, iso_duration
from tests.support import streams


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("streams")


def test_ffmpeg_hls_vod(made: Path) -> None:
    assert classify_playlist(streams.hls_vod(made).read_bytes()) == Playlist("hls", "vod", 2.0)


def test_ffmpeg_hls_live(made: Path) -> None:
    body = streams.hls_live(made).read_bytes()
    assert b"#EXT-X-ENDLIST" not in body
    assert classify_playlist(body) == Playlist("hls", "live", 2.0)


def test_ffmpeg_hls_master_and_its_renditions(made: Path) -> None:
    master = streams.hls_master(made)
    assert classify_playlist(master.read_bytes()) == Playlist("hls", "master", None)
    rendition = master.parent / "v0.m3u8"
    assert classify_playlist(rendition.read_bytes()) == Playlist("hls", "vod", 2.0)


def test_ffmpeg_dash_static(made: Path) -> None:
    assert classify_playlist(streams.dash_static(made).read_bytes()) == Playlist(
        "dash", "vod", None
    )


def test_ffmpeg_dash_dynamic(made: Path) -> None:
    body = streams.dash_dynamic(made).read_bytes()
    assert classify_playlist(body) == Playlist("dash", "live", 4.0)  # -update_period 4


LIVE = b"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:6\n#EXTINF:6.0,\ns1.ts\n"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (LIVE, Playlist("hls", "live", 6.0)),
        (b"\xef\xbb\xbf" + LIVE.replace(b"\n", b"\r\n"), Playlist("hls", "live", 6.0)),
        (LIVE + b"#EXT-X-ENDLIST\n", Playlist("hls", "vod", 6.0)),
        (
            LIVE.replace(b"#EXT-X-VERSION:3", b"#EXT-X-PLAYLIST-TYPE:VOD"),
            Playlist("hls", "vod", 6.0),
        ),
        (
            LIVE.replace(b"#EXT-X-VERSION:3", b"#EXT-X-PLAYLIST-TYPE:EVENT"),
            Playlist("hls", "live", 6.0),
        ),
        (b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nlow.m3u8\n", Playlist("hls", "master", None)),
        (b'#EXTM3U\n#EXT-X-I-FRAME-STREAM-INF:URI="i.m3u8"\n', Playlist("hls", "master", None)),
        (b'<MPD type="dynamic" minimumUpdatePeriod="PT1M30.5S"/>', Playlist("dash", "live", 90.5)),
        (b'<MPD xmlns="urn:mpeg:dash:schema:mpd:2011"/>', Playlist("dash", "vod", None)),
        (b'<mpd:MPD xmlns:mpd="u" type="dynamic"/>', Playlist("dash", "live", None)),
    ],
)
def test_kinds(body: bytes, expected: Playlist) -> None:
    assert classify_playlist(body) == expected


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"garbage",
        b"#EXTM3Ux\n#EXT-X-TARGETDURATION:6\n",  # not the EXTM3U line
        b"#EXTM3U\n#EXT-X-TARGETDURATION:abc\n",
        b"#EXTM3U\n#EXT-X-TARGETDURATION:-1\n",
        b"#EXTM3U\n#EXT-X-TARGETDURATION:99999999999\n",
        b"#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXT-X-TARGETDURATION:2\n",
        b"#EXTM3U\n#EXT-X-PLAYLIST-TYPE:LIVE\n#EXT-X-TARGETDURATION:6\n",
        b"#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXT-X-STREAM-INF:BANDWIDTH=1\nx.m3u8\n",
        b"#EXTM3U\n#EXTINF:6.0,\nseg.ts\n",  # a media playlist without its target
        b'<MPD type="live"/>',
        b'<MPD type="dynamic" minimumUpdatePeriod="P1Y"/>',
        b'<MPD type="dynamic" minimumUpdatePeriod="soon"/>',
        b"<html><body>not found</body></html>",
        b"<MPD",
        b'<?xml version="1.0"?><!DOCTYPE MPD [<!ENTITY a "dynamic">]><MPD type="&a;"/>',
        b"<MPD type='static'",  # the root never finishes
    ],
)
def test_unreadable_is_unknown(body: bytes) -> None:
    assert classify_playlist(body) is None


def test_endlist_after_a_long_playlist_is_found_in_the_tail() -> None:
    segments = b"#EXTINF:2.0,\nseg.ts\n" * 50_000  # ~1 MB: far past the scanned head
    assert classify_playlist(LIVE + segments + b"#EXT-X-ENDLIST\n").kind == "vod"  # type: ignore[union-attr]
    assert classify_playlist(LIVE + segments).kind == "live"  # type: ignore[union-attr]


def test_a_million_lines_cost_what_the_scanned_bytes_cost() -> None:
    """Bounded by HEAD_BYTES + TAIL_BYTES: the result only depends on them. (The figure
    is printed, never asserted: the machine is shared.)"""
    huge = LIVE + b"#EXTINF:2.0,\nseg.ts\n" * 500_000  # a million lines, ~10 MB
    started = time.perf_counter()
    assert classify_playlist(huge) == Playlist("hls", "live", 6.0)
    print(f"million-line playlist classified in {(time.perf_counter() - started) * 1e3:.2f} ms")
    assert classify_playlist(memoryview(huge)) == classify_playlist(
        huge[:HEAD_BYTES] + huge[-4096:]
    )


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("PT2S", 2.0),
        ("PT0.5S", 0.5),
        ("PT1M", 60.0),
        ("P1DT1H", 90000.0),
        ("P0Y0M0DT0H0M2.000S", 2.0),
    ],
)
def test_iso_durations(value: str, seconds: float) -> None:
    assert iso_duration(value) == seconds


@pytest.mark.parametrize("value", ["", "P", "PT", "2S", "PT-1S", "P1M", "PT1.S", "PTS", "PT1e3S"])
def test_iso_durations_refused(value: str) -> None:
    assert iso_duration(value) is None


_TAGS = st.sampled_from(
    [
        b"#EXTM3U",
        b"#EXT-X-TARGETDURATION:",
        b"#EXT-X-ENDLIST",
        b"#EXT-X-PLAYLIST-TYPE:",
        b"#EXT-X-STREAM-INF:",
        b"VOD",
        b"6",
        b"\n",
        b"\r\n",
        b"<MPD ",
        b'type="dynamic" ',
        b'minimumUpdatePeriod="PT',
        b"<!DOCTYPE",
        b"/>",
    ]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(_TAGS, st.binary(max_size=12)), max_size=40))
def test_fuzz_never_raises(parts: list[bytes]) -> None:
    result = classify_playlist(b"".join(parts))
    assert result is None or result.kind in ("master", "vod", "live")
    if result is not None and result.update_seconds is not None:
        assert result.update_seconds >= 0


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_fuzz_durations(value: str) -> None:
    seconds = iso_duration(value)
    assert seconds is None or seconds >= 0
