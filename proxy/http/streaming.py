"""The streaming cache policy: how long HLS/DASH objects stay fresh, by what they are.

Players fetch a master playlist once, a media playlist every target duration while it is
live, and segments once each. So, by kind of object (from the path's extension, the
Content-Type, and for playlists their first and last bytes, `proxy/http/playlists.py`):

    segments, init segments, subtitles, keys   segment_ttl (long: immutable under their URL)
    VOD media playlists, static MPDs           vod_playlist_ttl (long)
    master playlists                           master_playlist_ttl (moderate)
    live media playlists, dynamic MPDs         half the target duration (or of
                                               minimumUpdatePeriod), at most
    playlists this cannot read                 UNKNOWN_PLAYLIST_TTL

The result is a `Rule` that RFC 9111 freshness takes (`proxy/http/freshness.py`): its
`default` stands in for the route's default TTL and the heuristic when the origin gives
no freshness; its `ceiling` caps whatever lifetime was computed, so an origin's max-age,
no-cache or no-store still wins downward, never upward.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from proxy.http.playlists import Playlist, classify_playlist

__all__ = ["UNKNOWN_PLAYLIST_TTL", "Kind", "Rule", "StreamingPolicy", "kind_of", "rule_for"]

# A playlist whose kind is not known yet (before its body is in) or cannot be read: as
# volatile as the shortest live playlists, so a player never sees one go out of date.
UNKNOWN_PLAYLIST_TTL = 1.0
# A live playlist is fresh for at most this fraction of its update interval.
LIVE_FRACTION = 0.5


class Kind(Enum):
    PLAYLIST = "playlist"  # HLS or DASH: the body says which kind
    SEGMENT = "segment"  # media segments, init segments, subtitles, keys


@dataclass(frozen=True, slots=True)
class StreamingPolicy:
    """A route's lifetimes by kind (`[routes.cache]`, config/schema.py)."""

    vod_playlist_ttl: float = 86400.0
    master_playlist_ttl: float = 60.0
    segment_ttl: float = 31536000.0


@dataclass(frozen=True, slots=True)
class Rule:
    default: float  # lifetime when the origin gives none
    ceiling: float | None = None  # never fresh longer, whatever was computed


_EXTENSIONS = {
    "m3u8": Kind.PLAYLIST,
    "m3u": Kind.PLAYLIST,
    "mpd": Kind.PLAYLIST,
    "ts": Kind.SEGMENT,
    "m4s": Kind.SEGMENT,
    "mp4": Kind.SEGMENT,
    "m4v": Kind.SEGMENT,
    "m4a": Kind.SEGMENT,
    "cmfv": Kind.SEGMENT,
    "cmfa": Kind.SEGMENT,
    "cmft": Kind.SEGMENT,
    "aac": Kind.SEGMENT,
    "vtt": Kind.SEGMENT,
    "webvtt": Kind.SEGMENT,
    "key": Kind.SEGMENT,
}
_TYPES = {
    "application/vnd.apple.mpegurl": Kind.PLAYLIST,
    "application/x-mpegurl": Kind.PLAYLIST,
    "audio/mpegurl": Kind.PLAYLIST,
    "audio/x-mpegurl": Kind.PLAYLIST,
    "application/dash+xml": Kind.PLAYLIST,
    "video/mp2t": Kind.SEGMENT,
    "video/iso.segment": Kind.SEGMENT,
    "audio/iso.segment": Kind.SEGMENT,
    "video/mp4": Kind.SEGMENT,
    "audio/mp4": Kind.SEGMENT,
    "audio/aac": Kind.SEGMENT,
    "text/vtt": Kind.SEGMENT,
}


def kind_of(path: str, content_type: str | None) -> Kind | None:
    """What the object is by its extension and its media type; when they disagree the
    playlist wins (the shorter lifetime). None: not a streaming object."""
    name = path.rpartition("/")[2]
    ext = name.rpartition(".")[2].lower() if "." in name else ""
    by_ext = _EXTENSIONS.get(ext)
    by_type = None
    if content_type:
        by_type = _TYPES.get(content_type.partition(";")[0].strip().lower())
    if Kind.PLAYLIST in (by_ext, by_type):
        return Kind.PLAYLIST
    return by_ext or by_type


def rule_for(
    policy: StreamingPolicy | None,
    path: str,
    content_type: str | None,
    body: bytes | memoryview | None,
) -> Rule | None:
    """The rule for an object, or None (no policy, or not a streaming object). `body` is
    None until the body is in: a playlist then gets the unknown playlist's rule."""
    if policy is None:
        return None
    kind = kind_of(path, content_type)
    if kind is None:
        return None
    if kind is Kind.SEGMENT:
        return Rule(policy.segment_ttl)
    playlist = classify_playlist(body) if body is not None else None
    return playlist_rule(policy, playlist)


def playlist_rule(policy: StreamingPolicy, playlist: Playlist | None) -> Rule:
    if playlist is None:  # the origin's own freshness, if it gave one, still holds
        return Rule(UNKNOWN_PLAYLIST_TTL)
    if playlist.kind == "master":
        return Rule(policy.master_playlist_ttl)
    if playlist.kind == "vod":
        return Rule(policy.vod_playlist_ttl)
    if playlist.update_seconds is None:  # live without a known interval
        return Rule(UNKNOWN_PLAYLIST_TTL)
    live = playlist.update_seconds * LIVE_FRACTION
    return Rule(live, live)
