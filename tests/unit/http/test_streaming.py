"""The streaming cache policy: kinds by extension and type, rules by playlist kind, and
how a rule layers with RFC 9111 freshness (the origin wins downward, never upward)."""

from __future__ import annotations

import pytest

from proxy.http.freshness import FreshnessPolicy, response_freshness
from proxy.http.streaming import (
    UNKNOWN_PLAYLIST_TTL,
    Kind,
    Rule,
    StreamingPolicy,
    kind_of,
    rule_for,
)

POLICY = StreamingPolicy(vod_playlist_ttl=1000.0, master_playlist_ttl=30.0, segment_ttl=5000.0)
LIVE = b"#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXTINF:6.0,\ns1.ts\n"
VOD = LIVE + b"#EXT-X-ENDLIST\n"
MASTER = b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nlow.m3u8\n"


@pytest.mark.parametrize(
    ("path", "ctype", "kind"),
    [
        ("/v/index.m3u8", None, Kind.PLAYLIST),
        ("/v/INDEX.M3U8", "text/plain", Kind.PLAYLIST),
        ("/v/manifest.mpd", "application/dash+xml", Kind.PLAYLIST),
        ("/live/stream", "application/vnd.apple.mpegURL; charset=utf-8", Kind.PLAYLIST),
        ("/v/seg1.ts", "video/mp2t", Kind.SEGMENT),
        ("/v/seg1.m4s", None, Kind.SEGMENT),
        ("/v/init.mp4", None, Kind.SEGMENT),
        ("/v/a.cmfv", None, Kind.SEGMENT),
        ("/v/a.cmfa", None, Kind.SEGMENT),
        ("/v/a.aac", None, Kind.SEGMENT),
        ("/v/subs.vtt", None, Kind.SEGMENT),
        ("/keys/k1.key", None, Kind.SEGMENT),
        ("/seg", "video/iso.segment", Kind.SEGMENT),
        ("/v/seg1.ts", "application/x-mpegURL", Kind.PLAYLIST),  # disagreeing: the shorter
        ("/a.jpg", "image/jpeg", None),
        ("/v.dir/file", None, None),
        ("/", None, None),
    ],
)
def test_kind_of(path: str, ctype: str | None, kind: Kind | None) -> None:
    assert kind_of(path, ctype) is kind


@pytest.mark.parametrize(
    ("body", "rule"),
    [
        (LIVE, Rule(3.0, 3.0)),
        (VOD, Rule(1000.0)),
        (MASTER, Rule(30.0)),
        (b"not a playlist", Rule(UNKNOWN_PLAYLIST_TTL)),
        (None, Rule(UNKNOWN_PLAYLIST_TTL)),  # before the body is in
        (b'<MPD type="dynamic" minimumUpdatePeriod="PT10S"/>', Rule(5.0, 5.0)),
        (b'<MPD type="static"/>', Rule(1000.0)),
    ],
)
def test_playlist_rules(body: bytes | None, rule: Rule) -> None:
    assert rule_for(POLICY, "/x.m3u8", None, body) == rule


def test_segments_and_others() -> None:
    assert rule_for(POLICY, "/a/1.ts", None, None) == Rule(5000.0)
    assert rule_for(POLICY, "/a.jpg", "image/jpeg", None) is None
    assert rule_for(None, "/a/1.ts", None, None) is None


T0 = 1_700_000_000.0
DATE = "Tue, 14 Nov 2023 22:13:20 GMT"  # T0


def lifetime(
    headers: dict[str, str],
    rule: Rule | None,
    *,
    status: int = 200,
    policy: FreshnessPolicy | None = None,
) -> float | None:
    f = response_freshness(
        status,
        {"date": DATE, **headers},
        request_time=T0,
        response_time=T0,
        has_authorization=False,
        policy=policy or FreshnessPolicy(default_ttl=7.0),
        rule=rule,
    )
    return f.lifetime if f.storable else None


LIVE_RULE = Rule(3.0, 3.0)


def test_rule_default_replaces_default_ttl_and_heuristic() -> None:
    assert lifetime({}, None) == 7.0
    assert lifetime({}, Rule(1000.0)) == 1000.0
    no_default = FreshnessPolicy()
    assert lifetime({}, None, policy=no_default) is None  # no freshness: not storable
    assert lifetime({}, Rule(1000.0), policy=no_default) == 1000.0


def test_origin_wins_downward_never_upward() -> None:
    assert lifetime({"cache-control": "max-age=1"}, LIVE_RULE) == 1.0
    assert lifetime({"cache-control": "max-age=60"}, LIVE_RULE) == 3.0
    assert lifetime({"cache-control": "s-maxage=60"}, LIVE_RULE) == 3.0
    assert lifetime({"cache-control": "max-age=60"}, Rule(1000.0)) == 60.0
    assert lifetime({"cache-control": "max-age=0"}, Rule(1000.0)) == 0.0
    assert lifetime({"cache-control": "no-cache"}, Rule(1000.0)) == 0.0
    assert lifetime({"cache-control": "no-store"}, Rule(1000.0)) is None
    assert lifetime({"cache-control": "private"}, LIVE_RULE) is None


def test_the_live_ceiling_holds_under_override_ttl() -> None:
    override = FreshnessPolicy(override_ttl=3600.0)
    assert lifetime({}, LIVE_RULE, policy=override) == 3.0
    assert lifetime({}, Rule(1000.0), policy=override) == 3600.0


def test_error_answers_take_no_rule() -> None:
    policy = FreshnessPolicy(negative_ttl=10.0)
    assert lifetime({}, Rule(1000.0), status=404, policy=policy) == 10.0
    assert lifetime({"cache-control": "max-age=60"}, LIVE_RULE, status=404) == 60.0
    assert lifetime({}, Rule(1000.0), status=206) == 1000.0
