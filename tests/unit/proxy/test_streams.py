from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.http.paths import normalize_path
from proxy.streams import (
    MAX_SEGMENTS,
    MAX_URIS,
    Pending,
    StreamIndex,
    listing_key,
    media_playlist,
    segment_targets,
)

HOST = "media.test"


def live(first: int, last: int, extra: str = "") -> bytes:
    lines = ["#EXTM3U", "#EXT-X-TARGETDURATION:2", f"#EXT-X-MEDIA-SEQUENCE:{first}", extra]
    for n in range(first, last + 1):
        lines += ["#EXTINF:2.0,", f"seg{n}.ts"]
    return ("\n".join(lines) + "\n").encode()


def targets(body: bytes, path: str = "/v/720p/index.m3u8") -> list[str]:
    found = segment_targets(body, HOST, path, normalize_path)
    assert found is not None
    return [t.key for t in found]


def test_segments_resolve_against_the_playlist_in_order() -> None:
    assert targets(live(3, 5)) == [f"{HOST}/v/720p/seg{n}.ts" for n in (3, 4, 5)]


def test_parts_hints_and_init_are_kept_other_hosts_and_playlists_never() -> None:
    extra = "\n".join(
        [
            '#EXT-X-MAP:URI="init.mp4"',
            '#EXT-X-PART:DURATION=0.5,URI="part7.0.m4s"',
            '#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part7.1.m4s"',
            '#EXT-X-RENDITION-REPORT:URI="../480p/index.m3u8",LAST-MSN=7',
        ]
    )
    body = (
        live(1, 1, extra) + b"http://evil.test/x.ts\n//evil.test/y.ts\nhttp://media.test:81/z.ts\n"
    )
    body += b"http://media.test/v/abs.ts?k=1\n../../up.ts\n"
    assert targets(body) == [
        f"{HOST}/v/720p/init.mp4",
        f"{HOST}/v/720p/part7.0.m4s",
        f"{HOST}/v/720p/part7.1.m4s",
        f"{HOST}/v/720p/seg1.ts",
        f"{HOST}/v/abs.ts?k=1",
        f"{HOST}/up.ts",
    ]


def test_malformed_or_too_long_playlists_are_not_listed() -> None:
    assert segment_targets(b"garbage", HOST, "/a.m3u8", normalize_path) is None
    assert segment_targets(b"\xff\xfe", HOST, "/a.m3u8", normalize_path) is None
    many = live(0, MAX_URIS + 1)
    assert segment_targets(many, HOST, "/a.m3u8", normalize_path) is None


def test_only_hls_media_playlists_count() -> None:
    assert media_playlist(live(0, 2)) is True
    assert media_playlist(live(0, 2) + b"#EXT-X-ENDLIST\n") is False
    master = b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nlow.m3u8\n"
    assert media_playlist(master) is None
    assert media_playlist(b"<MPD type='static'/>") is None


def test_blocking_reload_parameters_are_one_listing() -> None:
    assert listing_key("h/a.m3u8?_HLS_msn=5&_HLS_part=1") == "h/a.m3u8"
    assert listing_key("h/a.m3u8?x=1&_HLS_skip=YES") == "h/a.m3u8?x=1"
    assert listing_key("h/a.m3u8") == "h/a.m3u8"


def _remember(index: StreamIndex, key: str, body: bytes, version: float) -> list[str]:
    found = segment_targets(body, HOST, "/v/index.m3u8", normalize_path)
    assert found is not None
    return [t.key for t in index.remember(key, found, version, live=True, now=version)]


def test_a_refresh_yields_only_new_segments_and_following_finds_the_next() -> None:
    index = StreamIndex()
    key = f"{HOST}/v/index.m3u8"
    assert _remember(index, key, live(0, 4), 1.0) == []  # first reading: none
    assert index.known(key, 1.0) is not None and index.known(key, 2.0) is None
    assert _remember(index, key + "?_HLS_msn=6", live(2, 6), 2.0) == [
        f"{HOST}/v/seg5.ts",
        f"{HOST}/v/seg6.ts",
    ]
    found = index.following(f"{HOST}/v/seg3.ts", 2, 3.0)
    assert found is not None
    assert [t.key for t in found[1]] == [f"{HOST}/v/seg4.ts", f"{HOST}/v/seg5.ts"]
    assert index.following(f"{HOST}/v/seg0.ts", 2, 3.0) is None  # left the window
    assert [t.key for t in index.following(f"{HOST}/v/seg6.ts", 2, 3.0)[1]] == []  # type: ignore[index]


def test_the_index_is_bounded_by_segments() -> None:
    index = StreamIndex()
    per = 2000
    for i in range(MAX_SEGMENTS // per + 5):
        _remember(index, f"{HOST}/v{i}/index.m3u8", live(i * per, i * per + per - 1), 1.0)
    assert index.segments <= MAX_SEGMENTS
    assert len(index.where) == index.segments
    assert index.listing_of(f"{HOST}/v0/index.m3u8") is None  # the oldest went first


def test_prefetched_segments_settle_as_used_or_wasted() -> None:
    index = StreamIndex()
    index.stored("a", 1.0, 100, now=0.0)
    index.stored("b", 1.0, 200, now=0.0)
    index.stored("c", 1.0, 300, now=0.0)
    assert index.requested("a") is True and index.requested("a") is False

    def verdict(key: str, _item: Pending) -> bool | None:
        return {"b": None, "c": False}.get(key)

    assert list(index.settle(verdict, now=1.0)) == [(False, 300)]  # c gone, b undecided
    assert list(index.settle(verdict, now=1000.0)) == [(False, 200)]  # b never asked for
    index.fetching["d"] = False
    assert index.requested("d") is False and index.fetching["d"] is True


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet=st.characters(codec="utf-8"), max_size=40), max_size=30))
def test_fuzzed_playlists_never_raise_and_never_leave_the_host(lines: list[str]) -> None:
    body = ("#EXTM3U\n#EXT-X-TARGETDURATION:2\n" + "\n".join(lines)).encode()
    found = segment_targets(body, HOST, "/v/index.m3u8", normalize_path)
    for target in found or ():
        assert target.key.startswith(HOST + "/")
        assert target.path.startswith("/")
