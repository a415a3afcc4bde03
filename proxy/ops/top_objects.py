"""The most requested objects, for the admin page (`proxy/ops/status.py`).

Two sources, merged when the page asks:

- fast-path hits (`proxy/fastpath.py`) bump `Plan.hits`, one integer on a plan the hit
  already holds, so the hot path pays nothing more;
- every other routed GET/HEAD goes through `observe.record`, which calls `TopObjects.note`
  here with the request's cache key: a dict increment, plus a prune now and then.

Both count by the cache key (host + normalised path + query without auth tokens), so a
miss and the hits that follow it add up. Keys are shown through the redactor
(`proxy/auth/redact.py`), so a token a key still holds (a route with `strip_tokens =
false`) is never shown either.

The table is bounded: when it holds `2 * cap` keys, only the `cap` most requested are
kept (one `heapq.nlargest` per `cap` new keys, so amortised O(log cap) per request). The
counts are therefore lower bounds: a key is counted from when it last entered the table.
Exact while there are at most `2 * cap` distinct keys; a key that stays among the `cap`
most requested is never dropped."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable

DEFAULT_CAP = 512
# Keys longer than this are cut (fast-path keys the same way when merged): a flood of
# long random URLs then costs at most 2 * cap * MAX_KEY characters.
MAX_KEY = 512
COUNTED_METHODS = frozenset({"GET", "HEAD"})


class TopObjects:
    __slots__ = ("cap", "counts", "pruned")

    def __init__(self, cap: int = DEFAULT_CAP) -> None:
        if cap < 1:
            raise ValueError("cap must be at least 1")
        self.cap = cap
        self.counts: dict[str, int] = {}
        # Keys dropped so far: the page says the counts are approximate once this is > 0.
        self.pruned = 0

    def add(self, key: str, n: int = 1) -> None:
        key = key[:MAX_KEY]
        counts = self.counts
        if key in counts:
            counts[key] += n
            return
        if len(counts) >= 2 * self.cap:
            self._prune()
        counts[key] = n

    def _prune(self) -> None:
        counts = self.counts
        kept = heapq.nlargest(self.cap, counts.items(), key=_count)
        self.pruned += len(counts) - len(kept)
        self.counts = dict(kept)

    def note(self, key: str | None, method: str, outcome: str) -> None:
        """One request through the full pipeline (called by `observe.record` with the
        cache key the request looked up; None when it was refused before that)."""
        if key is not None and outcome not in ("ops", "deny") and method in COUNTED_METHODS:
            self.add(key)

    def top(
        self,
        n: int,
        fast: Iterable[tuple[str, int]] = (),
        shown: Callable[[str], str] = str,
    ) -> list[tuple[str, int]]:
        """The n most requested keys, with the fast path's (key, hits) pairs added in;
        keys as ``shown`` makes them (the page passes the redactor), merged again when
        that makes two the same."""
        merged: dict[str, int] = {}
        for key, hits in (*self.counts.items(), *fast):
            if hits:
                cut = shown(key[:MAX_KEY])
                merged[cut] = merged.get(cut, 0) + hits
        return heapq.nlargest(n, merged.items(), key=_count)


def _count(item: tuple[str, int]) -> int:
    return item[1]
