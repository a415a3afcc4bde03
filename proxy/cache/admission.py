"""W-TinyLFU bounded in bytes: which entries the memory tier keeps.

A small LRU window (1 % of the budget) takes every new entry, so a burst of new objects
still gets its hits. An entry leaving the window, or a new one larger than the window,
must win a place in the main space (an SLRU: probation, then protected after a second
hit) against the entries it would push out: it is kept only when a frequency sketch says
it was asked for more often than the most requested of those victims. A one-time scan
therefore passes through the window without evicting the hot set. Everything is
byte-weighted: a large candidate faces as many victims as it needs room for.

Requests for absent keys are counted in a count-min sketch (`FrequencySketch`: 4 rows of
byte counters capped at 15, all halved every 10 x width increments so that popularity
ages). A kept entry counts its own hits on its node, starting from the sketch's count
when it was stored and aged with the sketch (an epoch number), and gives the count back
to the sketch when it is evicted. So a hit, the fast path's case, costs a dict lookup,
an integer increment and one move in an ordered dict; nothing here locks, sleeps or
does I/O: one event loop owns it.

Reference: Einziger, Friedman, Manes, "TinyLFU: A Highly Efficient Cache Admission
Policy" (2017); Caffeine's weighted W-TinyLFU. Ties go to the resident entries, as in
Caffeine, so a sketch collision cannot push hot entries out for an unknown one.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

MAX_COUNT = 15
# Counter halving, one table lookup per counter (bytes.translate runs in C).
_HALVE = bytes(i >> 1 for i in range(256))
_MIX = 0x9E3779B97F4A7C15
_M64 = (1 << 64) - 1
# Window share of the byte budget, and protected share of the main space (Caffeine's).
WINDOW_SHARE = 0.01
PROTECTED_SHARE = 0.8
# The bytes per entry assumed to size the sketch, and its bounds (counters per row).
SKETCH_BYTES_PER_ENTRY = 4096
MIN_WIDTH = 256
MAX_WIDTH = 1 << 20
# Yeses of `admits` remembered until their `put` (responses streaming at once, at most).
MAX_PROMISED = 4096


class FrequencySketch:
    """How often each key was asked for, approximately and recently (see module doc)."""

    __slots__ = ("_additions", "_mask", "_sample", "_table", "_width", "epoch")

    def __init__(self, width: int) -> None:
        width = max(MIN_WIDTH, min(MAX_WIDTH, width))
        width = 1 << (width - 1).bit_length()  # a power of two: indexes are masks
        self._width = width
        self._mask = width - 1
        self._table = bytearray(4 * width)
        self._sample = 10 * width
        self._additions = 0
        self.epoch = 0  # times halved: resident counts age by it (`WTinyLFU`)

    def _indexes(self, key: Hashable) -> tuple[int, int, int, int]:
        # One hash, mixed, split in two halves; rows by double hashing (Kirsch-Mitzenmacher).
        h = (hash(key) * _MIX) & _M64
        lo, hi = h & 0xFFFFFFFF, (h >> 32) | 1
        m, w = self._mask, self._width
        return (
            lo & m,
            ((lo + hi) & m) + w,
            ((lo + 2 * hi) & m) + 2 * w,
            ((lo + 3 * hi) & m) + 3 * w,
        )

    def increment(self, key: Hashable) -> None:
        """Count one request for `key` (conservative update: only the lowest counters
        grow, which keeps collisions from inflating the estimate)."""
        i0, i1, i2, i3 = self._indexes(key)
        t = self._table
        a, b, c, d = t[i0], t[i1], t[i2], t[i3]
        low = min(a, b, c, d)
        if low < MAX_COUNT:
            if a == low:
                t[i0] = low + 1
            if b == low:
                t[i1] = low + 1
            if c == low:
                t[i2] = low + 1
            if d == low:
                t[i3] = low + 1
        self._additions += 1
        if self._additions >= self._sample:
            self.age()

    def frequency(self, key: Hashable) -> int:
        i0, i1, i2, i3 = self._indexes(key)
        t = self._table
        return min(t[i0], t[i1], t[i2], t[i3])

    def raise_to(self, key: Hashable, count: int) -> None:
        """Make the estimate for `key` at least `count` (an evicted entry's own count)."""
        count = min(count, MAX_COUNT)
        t = self._table
        for i in self._indexes(key):
            if t[i] < count:
                t[i] = count

    def age(self) -> None:
        """Halve every counter: what was popular long ago weighs half as much."""
        self._table = bytearray(self._table.translate(_HALVE))
        self._additions //= 2
        self.epoch += 1

    def clear(self) -> None:
        self._table = bytearray(len(self._table))
        self._additions = 0


class _Node(Generic[V]):
    __slots__ = ("epoch", "hits", "segment", "size", "value")

    def __init__(self, value: V, size: int, segment: int, hits: int, epoch: int) -> None:
        self.value = value
        self.size = size
        self.segment = segment
        self.hits = hits  # requests counted, as of `epoch` (uncapped between agings)
        self.epoch = epoch


WINDOW, PROBATION, PROTECTED = 0, 1, 2


class WTinyLFU(Generic[K, V]):
    """A byte-bounded mapping with W-TinyLFU eviction and admission.

    `get` counts the request and refreshes the entry; `peek` does neither. `put` of a new
    entry returns False when it is refused at once (larger than the window and losing
    to the entries it would push out); `admits` answers that question before the value
    exists (counting a no as a rejection), and a key it said yes to is then taken by
    `put`, so an answer sent before its body arrived never claims a store that did not
    happen."""

    def __init__(self, max_bytes: int, getsizeof: Callable[[V], int]) -> None:
        self.max_bytes = max(1, max_bytes)
        self.window_max = max(1, int(self.max_bytes * WINDOW_SHARE))
        self.protected_max = int((self.max_bytes - self.window_max) * PROTECTED_SHARE)
        self.sketch = FrequencySketch(self.max_bytes // SKETCH_BYTES_PER_ENTRY)
        self._sizeof = getsizeof
        self._nodes: dict[K, _Node[V]] = {}
        # Recency order per segment, least recent first; the value is unused.
        self._segments: tuple[OrderedDict[K, None], ...] = (
            OrderedDict(),
            OrderedDict(),
            OrderedDict(),
        )
        self._bytes = [0, 0, 0]
        # Keys `admits` said yes to, honoured by `put` (bounded, oldest dropped first).
        self._promised: OrderedDict[K, None] = OrderedDict()
        self.evictions = 0
        self.rejections = 0

    # -- reads ---------------------------------------------------------------------------

    def get(self, key: K) -> V | None:
        """The value, counting the request (present or not) and refreshing its place."""
        node = self._nodes.get(key)
        if node is None:
            self.sketch.increment(key)
            return None
        if node.epoch != self.sketch.epoch:
            self._age(node)
        node.hits += 1
        segment = node.segment
        if segment == PROBATION:
            self._promote(key, node)
        else:
            self._segments[segment].move_to_end(key)
        return node.value

    def peek(self, key: K) -> V | None:
        node = self._nodes.get(key)
        return None if node is None else node.value

    def __contains__(self, key: object) -> bool:
        return key in self._nodes

    def __len__(self) -> int:
        return len(self._nodes)

    def __iter__(self) -> Iterator[K]:
        return iter(self._nodes)

    @property
    def currsize(self) -> int:
        return sum(self._bytes)

    # -- writes --------------------------------------------------------------------------

    def admits(self, key: K, size: int) -> bool:
        """Would `put` keep a value of `size` bytes (0: not known yet) under `key` now?
        A yes is binding: the next `put` of the key takes it without a contest."""
        if size > self.max_bytes:
            return False
        if key in self._nodes or key in self._promised or 0 < size <= self.window_max:
            return True
        if size and not self._wins(key, size):
            self.rejections += 1  # the response is not kept: nothing will be `put`
            return False
        self.promise(key)
        return True

    def promise(self, key: K) -> None:
        """The next `put` of `key` takes it without a contest (bounded: the oldest
        promises are forgotten first)."""
        promised = self._promised
        promised[key] = None
        if len(promised) > MAX_PROMISED:
            promised.popitem(last=False)

    def put(self, key: K, value: V) -> bool:
        """Keep `value` under `key`; False when it is not kept (too large, or refused)."""
        size = self._sizeof(value)
        promised = key in self._promised
        if promised:
            del self._promised[key]
        if size > self.max_bytes:
            self.pop(key)
            return False
        node = self._nodes.get(key)
        if node is not None:  # a new value for a kept key keeps its place
            self._bytes[node.segment] += size - node.size
            node.value, node.size = value, size
            self._segments[node.segment].move_to_end(key)
            self._rebalance(keep=key)
            return key in self._nodes
        if size > self.window_max:
            if not promised and not self._wins(key, size):
                self.rejections += 1
                return False
            self._enter_main(key, self._new_node(key, value, size, PROBATION))
            self._rebalance(keep=key)  # a promised one may need the window's room too
            return True
        self._link(key, self._new_node(key, value, size, WINDOW))
        self._rebalance(keep=key)
        return True

    def pop(self, key: K) -> V | None:
        node = self._nodes.pop(key, None)
        if node is None:
            return None
        del self._segments[node.segment][key]
        self._bytes[node.segment] -= node.size
        return node.value

    def clear(self) -> None:
        self._nodes.clear()
        for segment in self._segments:
            segment.clear()
        self._bytes = [0, 0, 0]
        self._promised.clear()
        self.sketch.clear()

    # -- policy --------------------------------------------------------------------------

    def _age(self, node: _Node[V]) -> None:
        """Bring a node's count to the sketch's epoch: capped, then halved per epoch."""
        epoch = self.sketch.epoch
        node.hits = min(node.hits, MAX_COUNT) >> min(8, epoch - node.epoch)
        node.epoch = epoch

    def frequency(self, key: K) -> int:
        """How often `key` was asked for lately (0-15)."""
        node = self._nodes.get(key)
        if node is None:
            return self.sketch.frequency(key)
        if node.epoch != self.sketch.epoch:
            self._age(node)
        return min(node.hits, MAX_COUNT)

    def _new_node(self, key: K, value: V, size: int, segment: int) -> _Node[V]:
        sketch = self.sketch
        return _Node(value, size, segment, sketch.frequency(key), sketch.epoch)

    def _evict(self, key: K) -> None:
        """Out for space; its count goes back to the sketch, so it is not forgotten."""
        count = self.frequency(key)
        self.pop(key)
        self.sketch.raise_to(key, count)

    def _link(self, key: K, node: _Node[V]) -> None:
        self._nodes[key] = node
        self._segments[node.segment][key] = None
        self._bytes[node.segment] += node.size

    def _promote(self, key: K, node: _Node[V]) -> None:
        """A second hit in probation: into protected, its least recent back to probation
        while protected is over its share."""
        del self._segments[PROBATION][key]
        self._bytes[PROBATION] -= node.size
        node.segment = PROTECTED
        self._segments[PROTECTED][key] = None
        self._bytes[PROTECTED] += node.size
        protected = self._segments[PROTECTED]
        while self._bytes[PROTECTED] > self.protected_max and len(protected) > 1:
            old = next(iter(protected))
            old_node = self._nodes[old]
            del protected[old]
            self._bytes[PROTECTED] -= old_node.size
            old_node.segment = PROBATION
            self._segments[PROBATION][old] = None
            self._bytes[PROBATION] += old_node.size

    def _rebalance(self, keep: K) -> None:
        """Move what overflows the window into the main space, each by a contest; then
        evict from main while the whole is over budget (a grown value, `keep` last)."""
        window = self._segments[WINDOW]
        while self._bytes[WINDOW] > self.window_max and window:
            key = next(iter(window))
            freq = self.frequency(key)
            node = self._nodes.pop(key)
            del window[key]
            self._bytes[WINDOW] -= node.size
            if key == keep or self._wins(key, node.size, freq):  # kept keys stay kept
                node.segment = PROBATION
                self._enter_main(key, node)
            else:
                self.sketch.raise_to(key, freq)
                self.rejections += 1
        while self.currsize > self.max_bytes:
            victim = self._next_victim(keep)
            if victim is None:
                break
            self._evict(victim)
            self.evictions += 1

    def _next_victim(self, keep: K) -> K | None:
        for segment in (PROBATION, PROTECTED, WINDOW):
            for key in self._segments[segment]:
                if key != keep:
                    return key
        return None

    def _victims(self, size: int) -> Iterator[K]:
        """The main-space entries that would make room for `size` bytes: probation's
        least recent first, then protected's."""
        need = self.currsize + size - self.max_bytes
        if need <= 0:
            return
        for segment in (PROBATION, PROTECTED):
            for key in self._segments[segment]:
                yield key
                need -= self._nodes[key].size
                if need <= 0:
                    return

    def _wins(self, key: K, size: int, freq: int | None = None) -> bool:
        """The candidate (asked for `freq` times, else as the sketch says) was asked for
        more often than every entry it would push out."""
        if freq is None:
            freq = self.sketch.frequency(key)
        frequency = self.frequency
        freed = 0
        need = self.currsize + size - self.max_bytes
        for victim in self._victims(size):
            if frequency(victim) >= freq:
                return False
            freed += self._nodes[victim].size
        return freed >= need

    def _enter_main(self, key: K, node: _Node[V]) -> None:
        for victim in list(self._victims(node.size)):
            self._evict(victim)
            self.evictions += 1
        self._link(key, node)
