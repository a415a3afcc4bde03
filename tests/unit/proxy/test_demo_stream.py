"""The demo stream's pure parts: the ffmpeg command, playlist tidying (fuzzed), the key
and the page's signed URL. The encode itself runs in test_demo.py, and real players
read it in tests/e2e/test_demo_stream.py."""

from __future__ import annotations

import base64
import stat
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from hypothesis import given
from hypothesis import strategies as st

from config.defaults import DEMO_KEY_FILE, DEMO_ROOT, DEMO_STREAM_PREFIX, default_config
from proxy.auth.keys import KeyRing
from proxy.auth.native import verify_token
from proxy.demo import stream

VOD = """#EXTM3U
#EXT-X-VERSION:6
#EXT-X-TARGETDURATION:2
#EXT-X-MEDIA-SEQUENCE:1
#EXT-X-MAP:URI="init-0.m4s"
#EXTINF:2.000000,
#EXT-X-PROGRAM-DATE-TIME:2026-12-06T03:42:00.000+0000
seg-0-1.m4s
#EXT-X-ENDLIST
"""


def test_tidy_playlist_drops_wall_clock_and_marks_vod() -> None:
    tidy = stream.tidy_playlist(VOD)
    assert "PROGRAM-DATE-TIME" not in tidy
    lines = tidy.splitlines()
    assert lines[lines.index("#EXT-X-TARGETDURATION:2") + 1] == "#EXT-X-PLAYLIST-TYPE:VOD"
    assert stream.tidy_playlist(tidy) == tidy


def test_tidy_playlist_leaves_master_and_live_playlists_alone() -> None:
    master = '#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1,CODECS="avc1"\nmedia_0.m3u8\n'
    assert stream.tidy_playlist(master) == master
    live = VOD.replace("#EXT-X-ENDLIST\n", "")
    assert "PLAYLIST-TYPE" not in stream.tidy_playlist(live)


TAGS = [
    "#EXT-X-TARGETDURATION:2", "#EXT-X-ENDLIST", "#EXT-X-PLAYLIST-TYPE:VOD",
    "#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:00Z", "seg.m4s", "", "#EXTINF:2,",
]  # fmt: skip


@given(st.lists(st.sampled_from(TAGS) | st.text(max_size=40), max_size=30))
def test_tidy_playlist_fuzz(lines: list[str]) -> None:
    """Any text: no error, no wall-clock line left, every other line kept in order, at
    most one line added, and tidying twice changes nothing more."""
    text = "\n".join(["#EXTM3U", *lines])
    tidy = stream.tidy_playlist(text)
    out = tidy.splitlines()
    assert not any(ln.startswith("#EXT-X-PROGRAM-DATE-TIME") for ln in out)
    kept = [ln for ln in text.splitlines() if not ln.startswith("#EXT-X-PROGRAM-DATE-TIME")]
    assert len(out) - len(kept) in (0, 1)
    if len(out) > len(kept):
        out.remove("#EXT-X-PLAYLIST-TYPE:VOD")
    assert out == kept
    assert stream.tidy_playlist(tidy) == tidy


def test_ffmpeg_command_aligns_keyframes_and_names_segments(tmp_path: Path) -> None:
    cmd = stream.ffmpeg_command("ffmpeg", tmp_path, "libx264", audio=True)
    assert cmd[-1] == str(tmp_path / "manifest.mpd")
    joined = " ".join(cmd)
    assert f"-g {stream.FPS * stream.SEGMENT_SECONDS}" in joined
    assert "-hls_playlist 1" in joined and "streams=a" in joined
    # A width format (%05d) would not survive as a URL path in a template.
    assert "seg-$RepresentationID$-$Number$.m4s" in cmd
    assert cmd.count("-map") == len(stream.RENDITIONS) + 1
    silent = stream.ffmpeg_command("ffmpeg", tmp_path, "mpeg4", audio=False)
    assert "1:a" not in silent and "streams=a" not in " ".join(silent)


def test_key_is_made_once_beside_the_folder(tmp_path: Path) -> None:
    out = tmp_path / "var" / "demo"
    key = stream.load_or_make_key(out)
    assert len(key) == 32
    path = stream.key_path(out)
    assert path == tmp_path / "var" / "demo.key" and not path.is_relative_to(out)
    assert base64.b64decode(path.read_text()) == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert stream.load_or_make_key(out) == key


def test_embedded_config_names_the_key_and_stream_the_generator_makes() -> None:
    assert stream.key_path(Path(DEMO_ROOT)) == Path(DEMO_KEY_FILE)
    assert DEMO_STREAM_PREFIX == "/" + stream.STREAM_DIR
    config = default_config()
    assert stream.KEY_ID in config["auth"]["keys"]
    assert config["auth"]["keys"][stream.KEY_ID]["encoding"] == "base64"


def test_signed_urls_verify_for_the_whole_stream_directory(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    now = 1_800_000_000.0
    signed = stream.sign_stream(out, now=now)
    assert signed.expires == int(now) + stream.TOKEN_TTL_S
    keys = KeyRing({stream.KEY_ID: stream.load_or_make_key(out)})
    for url in (signed.master, signed.mpd):
        parts = urlsplit(url)
        assert parts.path in (stream.MASTER_PATH, stream.MPD_PATH)
        token = dict(parse_qsl(parts.query))["token"]
        # A prefix token: good for any file of the stream, not beyond it.
        for path, ok in ((f"/{stream.STREAM_DIR}/seg-0-1.m4s", True), ("/hello.txt", False)):
            got = verify_token(token, keys, path=path, pairs=[], client_ip="127.0.0.1", now=now)
            assert got.ok is ok, (path, got)
        late = now + stream.TOKEN_TTL_S + 1
        expired = verify_token(
            token, keys, path="/" + parts.path, pairs=[], client_ip="127.0.0.1", now=late
        )
        assert not expired.ok


def test_signature_renewed_before_expiry(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    assert not stream.signature_fresh(out, 2_000_000_000, now=0)  # no key yet
    stream.load_or_make_key(out)
    now = 1_800_000_000
    assert stream.signature_fresh(out, now + stream.TOKEN_TTL_S, now=now)
    assert not stream.signature_fresh(out, now + stream.TOKEN_RENEW_S, now=now)
