"""What segment prefetch remembers: recently served HLS media playlists (and static
DASH manifests, one listing per Representation) and their segments in order, and the
segments it fetched ahead, until they are used or given up.

Pure bookkeeping, kept in `AppState` (proxy/prefetch.py does the fetching). Bounded
throughout: at most `MAX_PLAYLISTS` playlists and `MAX_SEGMENTS` segment URIs in all
(the least recently asked playlist goes first), a playlist with more URIs than
`MAX_URIS` or larger than `MAX_PLAYLIST_BYTES` is not remembered, and at most
`MAX_PENDING` prefetched segments wait to be found used or wasted.

A playlist is known by its key without LL-HLS blocking-reload parameters (`_HLS_msn`,
`_HLS_part`, `_HLS_skip`), so every reload of one rendition updates one listing."""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

from proxy.cache.keys import BadKey, url_key, valid_query
from proxy.http.dash_segments import dash_segments
from proxy.http.paths import BadPath
from proxy.http.playlist_uris import decode_text, kind_by_path, rewrite_hls
from proxy.http.playlists import classify_playlist
from proxy.http.streaming import Kind, kind_of

MAX_PLAYLISTS = 256
MAX_SEGMENTS = 65536
MAX_URIS = 4096
MAX_PLAYLIST_BYTES = 1024 * 1024
MAX_PENDING = 4096
# Prefetches waiting per stream; older ones are dropped first (a player moved on).
MAX_QUEUE = 16
# A rendition nobody asked for (its playlist or a segment) for this long is not
# prefetched: its viewers left.
RECENT_SECONDS = 30.0
# A prefetched segment not requested within this long counts as wasted.
WASTE_AFTER_SECONDS = 120.0
BLOCKING_PARAMS = ("_HLS_msn=", "_HLS_part=", "_HLS_skip=")


@dataclass(frozen=True, slots=True)
class Target:
    """One URI of a playlist, resolved: the path and query to fetch and its cache key."""

    path: str
    query: str
    key: str


@dataclass(slots=True)
class Listing:
    """One media playlist as last read: its segments in order, and its prefetch queue."""

    targets: tuple[Target, ...]
    position: dict[str, int]  # segment key -> index in targets
    version: float  # the response time of the entry it was read from
    live: bool
    asked: float  # when a viewer last asked for the playlist or one of its segments
    queue: deque[Target] = field(default_factory=lambda: deque(maxlen=MAX_QUEUE))
    running: int = 0


@dataclass(slots=True)
class Pending:
    version: float  # the stored entry's response time
    size: int
    at: float


def listing_key(key: str) -> str:
    """A playlist's key without blocking-reload parameters."""
    base, sep, query = key.partition("?")
    if not sep:
        return key
    kept = [p for p in query.split("&") if not p.startswith(BLOCKING_PARAMS)]
    return f"{base}?{'&'.join(kept)}" if kept else base


def media_playlist(body: bytes) -> bool | None:
    """True for a live HLS media playlist, False for a VOD one, None for anything else
    (a master playlist, DASH, unknown or malformed)."""
    playlist = classify_playlist(body)
    if playlist is None or playlist.format != "hls" or playlist.kind == "master":
        return None
    return playlist.kind == "live"


def segment_targets(
    body: bytes, host: str, path: str, normalize: Callable[[str], str]
) -> tuple[Target, ...] | None:
    """The segments (and parts, init segments, keys, preload hints) a media playlist
    at `host` + `path` lists, in order, each once; None when the playlist is malformed
    or too long. URIs on another host or port, playlists (rendition reports) and
    anything that is not a streaming segment by its extension are left out."""
    if len(body) > MAX_PLAYLIST_BYTES:
        return None
    text = decode_text(body)
    if text is None:
        return None
    found: dict[str, Target] = {}
    seen = 0

    def collect(uri: str, _base: str | None, _template: bool) -> None:
        nonlocal seen
        seen += 1
        target = resolve(host, path, uri, normalize) if seen <= MAX_URIS else None
        if target is not None:
            found.setdefault(target.key, target)

    # (the scan is bounded by MAX_PLAYLIST_BYTES; nothing is replaced)
    if rewrite_hls(text, collect) is None or seen > MAX_URIS:
        return None
    return tuple(found.values())


def dash_targets(
    body: bytes, host: str, path: str, normalize: Callable[[str], str]
) -> list[tuple[Target, ...]] | None:
    """The media segments of a static DASH manifest at `host` + `path`, one tuple per
    Representation in play order (same-host segments only); None when it is not one
    proxy/http/dash_segments.py reads, or too long."""
    if len(body) > MAX_PLAYLIST_BYTES:
        return None
    text = decode_text(body)
    found = dash_segments(text, f"http://{host}{path}", MAX_URIS) if text else None
    if found is None:
        return None
    out = []
    for urls in found:
        targets = [t for url in urls if (t := resolve(host, path, url, normalize)) is not None]
        if targets:
            out.append(tuple(targets))
    return out


def resolve(host: str, path: str, uri: str, normalize: Callable[[str], str]) -> Target | None:
    """A playlist URI as a same-host segment target, or None."""
    base = f"http://{host}"
    try:
        parts = urlsplit(urljoin(base + path, uri))
        if parts.netloc != urlsplit(base).netloc:
            return None  # another host (or port, or user info): never followed
        seg_path = normalize(parts.path)
        if kind_by_path(seg_path) is not None or kind_of(seg_path, None) is not Kind.SEGMENT:
            return None
        if not valid_query(parts.query):
            return None
        return Target(seg_path, parts.query, url_key(host, seg_path, parts.query))
    except (BadPath, BadKey, ValueError):
        return None


class StreamIndex:
    """Recently served media playlists, and where each of their segments sits."""

    def __init__(self) -> None:
        self.playlists: OrderedDict[str, Listing] = OrderedDict()
        self.where: dict[str, str] = {}  # segment key -> playlist listing key
        self.segments = 0
        self.running = 0  # prefetches under way, all streams
        self.fetching: dict[str, bool] = {}  # segment key under prefetch -> requested since
        self.pending: OrderedDict[str, Pending] = OrderedDict()

    def known(self, key: str, version: float) -> Listing | None:
        """The listing of playlist `key` if it was read from the entry of `version`."""
        listing = self.playlists.get(listing_key(key))
        return listing if listing is not None and listing.version == version else None

    def remember(
        self, key: str, targets: tuple[Target, ...], version: float, *, live: bool, now: float
    ) -> list[Target]:
        """Store a (re)read playlist; the targets new since its last reading (none on a
        first reading: viewers fetch the current ones themselves)."""
        lkey = listing_key(key)
        position = {t.key: i for i, t in enumerate(targets)}
        listing = self.playlists.pop(lkey, None)
        new: list[Target] = []
        if listing is None:
            listing = Listing(targets, position, version, live, now)
        else:  # updated in place: its prefetch workers hold it
            self._forget(lkey, listing)
            new = [t for t in targets if t.key not in listing.position]
            listing.targets, listing.position, listing.version = targets, position, version
            listing.live, listing.asked = live, now
        self.playlists[lkey] = listing
        for t in targets:
            self.where[t.key] = lkey
        self.segments += len(targets)
        while self.segments > MAX_SEGMENTS or len(self.playlists) > MAX_PLAYLISTS:
            oldest, dropped = self.playlists.popitem(last=False)
            self._forget(oldest, dropped)
        return new

    def asked(self, key: str, now: float) -> None:
        """A viewer asked for playlist `key`: its rendition is being watched."""
        listing = self.playlists.get(listing_key(key))
        if listing is not None:
            listing.asked = now
            self.playlists.move_to_end(listing_key(key))

    def following(self, key: str, count: int, now: float) -> tuple[Listing, list[Target]] | None:
        """Segment `key` was requested: its playlist's listing and the `count` segments
        after it, or None when no remembered playlist lists it."""
        lkey = self.where.get(key)
        listing = self.playlists.get(lkey) if lkey is not None else None
        if listing is None or lkey is None:
            return None
        listing.asked = now
        self.playlists.move_to_end(lkey)
        i = listing.position[key]
        return listing, list(listing.targets[i + 1 : i + 1 + count])

    def after(self, key: str, count: int) -> tuple[Target, ...]:
        """The `count` segments a remembered playlist lists after segment `key` (none
        when no playlist lists it); nothing is updated."""
        lkey = self.where.get(key)
        listing = self.playlists.get(lkey) if lkey is not None else None
        if listing is None:
            return ()
        i = listing.position[key]
        return listing.targets[i + 1 : i + 1 + count]

    def listing_of(self, key: str) -> Listing | None:
        return self.playlists.get(listing_key(key))

    def requested(self, key: str) -> bool:
        """A viewer asked for segment `key`: True when it was prefetched (now used)."""
        if key in self.fetching:
            self.fetching[key] = True
            return False  # counted when the prefetch completes
        return self.pending.pop(key, None) is not None

    def stored(self, key: str, version: float, size: int, now: float) -> None:
        self.pending[key] = Pending(version, size, now)
        self.pending.move_to_end(key)

    def settle(
        self, used: Callable[[str, Pending], bool | None], now: float, limit: int = 8
    ) -> Iterable[tuple[bool, int]]:
        """Up to `limit` of the oldest prefetched segments settled: (used, size) for each
        `used` says was used (True) or is gone (False, wasted); one neither used nor gone
        stays until WASTE_AFTER_SECONDS (or the bound) makes it wasted."""
        out: list[tuple[bool, int]] = []
        for key in list(self.pending)[:limit]:
            item = self.pending[key]
            verdict = used(key, item)
            if verdict is None:
                if now - item.at < WASTE_AFTER_SECONDS and len(self.pending) <= MAX_PENDING:
                    continue
                verdict = False
            del self.pending[key]
            out.append((verdict, item.size))
        return out

    def _forget(self, lkey: str, listing: Listing) -> None:
        for t in listing.targets:
            if self.where.get(t.key) == lkey:
                del self.where[t.key]
        self.segments -= len(listing.targets)
