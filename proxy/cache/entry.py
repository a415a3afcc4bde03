"""A stored response and the absolute times that decide how it may be reused."""

from __future__ import annotations

from dataclasses import dataclass, field

from proxy.http.freshness import Freshness

# Fixed overhead charged per entry on top of body and headers, so that the byte budget
# of the memory tier also bounds the number of tiny entries.
ENTRY_OVERHEAD = 512


@dataclass(slots=True)
class Entry:
    status: int
    # Headers as sent to clients (lower-case names, hop-by-hop and per-hop fields removed,
    # no content-length / age / cache-status: those are computed per response).
    headers: list[tuple[bytes, bytes]]
    # The origin's fields as received: what a 304 updates and freshness is computed from.
    origin_headers: list[tuple[str, str]]
    body: bytes
    etag: str | None
    last_modified: float | None
    content_type: str | None
    response_time: float
    freshness: Freshness
    vary: tuple[str, ...] = ()
    # The Cache-Status an upstream cache sent with this response (RFC 9211 2).
    upstream_status: bytes | None = None
    # When the origin request was sent: a purge (ban) at or after it covers this entry,
    # even when the response arrived after the purge. 0 = response_time.
    request_time: float = 0.0
    # Surrogate keys from the origin (Surrogate-Key, Cache-Tag, xkey, Edge-Cache-Tag).
    tags: frozenset[str] = frozenset()
    # The ban generation this entry has been checked against (proxy/cache/bans.py):
    # the hot path compares it with the list's, one integer, and checks nothing twice.
    ban_gen: int = 0
    # Absolute wall-clock times, derived once so a hit compares one float.
    fresh_until: float = 0.0
    stale_while_revalidate_until: float = 0.0
    stale_if_error_until: float = 0.0
    size: int = 0
    # Headers of a full 200/other response, built once for the hot path.
    full_headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    # proxy/fastpath.py: (age, ttl, full headers with Age and Cache-Status) for the
    # current second; lives and dies with the entry.
    hit_head: tuple[int, int, list[tuple[bytes, bytes]]] | None = None

    def __post_init__(self) -> None:
        if not self.request_time:
            self.request_time = self.response_time
        f = self.freshness
        # no-cache: stored, but every reuse needs validation, so it is never fresh here
        # (the hit path compares fresh_until alone).
        lifetime = 0.0 if f.no_cache else f.lifetime
        self.fresh_until = self.response_time + lifetime - f.initial_age
        self.stale_while_revalidate_until = self.fresh_until + f.stale_while_revalidate
        self.stale_if_error_until = self.fresh_until + f.stale_if_error
        self.size = len(self.body) + sum(len(k) + len(v) for k, v in self.headers) + ENTRY_OVERHEAD
        self.full_headers = [
            *self.headers,
            (b"content-length", str(len(self.body)).encode()),
        ]
        if self.status == 200:
            self.full_headers.append((b"accept-ranges", b"bytes"))

    def make_stale(self, now: float) -> None:
        """Soft purge: stale from `now` on, its stale windows counted from `now`."""
        if self.fresh_until > now:
            f = self.freshness
            self.fresh_until = now
            self.stale_while_revalidate_until = now + f.stale_while_revalidate
            self.stale_if_error_until = now + f.stale_if_error
            self.hit_head = None

    def age(self, now: float) -> int:
        return int(self.freshness.initial_age + max(0.0, now - self.response_time))


@dataclass(slots=True)
class VaryIndex:
    """Stored under a URL's primary key when its responses vary: which request fields
    select a variant, and the variant keys stored so far (bounded by max_variants)."""

    names: tuple[str, ...]
    variants: set[str] = field(default_factory=set)
    size: int = 256


@dataclass(slots=True)
class Uncacheable:
    """Hit-for-miss marker (Varnish): the last response for this key was not storable,
    so requests until `until` go straight to the origin instead of queueing to collapse."""

    until: float
    size: int = 128
