"""Size-aware W-TinyLFU bounded in bytes: which entries the memory tier keeps.

A small LRU window (1 % of the budget) takes every new entry, so a burst of new objects
still gets its hits. An entry leaving the window, or a new one larger than the window,
must win a place in the main space against the entries it would push out: it is kept
only when it was asked for more often *per byte* than each of them (ties go to the
residents). Object hit ratio rewards keeping many small objects: a 4 KiB object asked
for 3 times earns more hits per byte of memory than a 60 KiB one asked for 30 times. A
one-time scan therefore passes through the window without evicting the hot set, and a
large candidate faces as many victims as it needs room for.

The main space has no order to keep: its victims are found by sampling (as Redis does),
the weakest per byte of `SAMPLE` entries in a row from a random slot of an array of its
keys, one such draw per victim, at most `MAX_VICTIMS` victims per contest. So a hit in
the main space costs a dict lookup and an integer increment, and an insert's work is
bounded whatever the tier holds.

Requests for absent keys are counted in a count-min sketch (`FrequencySketch`: 4 rows of
byte counters capped at 15, all halved every 10 x width increments so that popularity
ages). A kept entry counts its own hits on its node (not capped), starting from the
sketch's count when it was stored and halved with the sketch (an epoch number), and
gives the count back to the sketch when it is evicted. Nothing here locks, sleeps or
does I/O: one event loop owns it.

The rule (`outweighs`) and the contest over a run of victims (`contest`) are the disk
tier's too (proxy/cache/disk.py): its victims are its least recently used files, and the
counts are this sketch's, since the memory tier is asked first for every request.

References: Einziger, Friedman, Manes, "TinyLFU: A Highly Efficient Cache Admission
Policy" (2017); Einziger, Eytan, Friedman, Manes, "Lightweight Robust Size Aware Cache
Management" (2022); Caffeine's weighted W-TinyLFU; Redis's sampled eviction.
"""

from __future__ import annotations

import random
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
# Window share of the byte budget (Caffeine's).
WINDOW_SHARE = 0.01
# Entries looked at per victim (16: within 0.003 of a full scan on the benchmark),
# and the most victims one contest may name (its work bound).
SAMPLE = 16
MAX_VICTIMS = 256
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


IN_WINDOW = -1  # a node's slot while in the window


def size_class(size: int) -> int:
    """`size` rounded down to 4 significant bits (steps of 6-12 %), as sizes are weighed:
    near-equal sizes tie (to the residents), so entries asked for as often do not
    displace each other over a few bytes of headers, and a size told before the body
    (its Content-Length) weighs as the stored entry will."""
    shift = max(0, size.bit_length() - 4)
    return size >> shift << shift


def outweighs(count: int, size: int, resident_count: int, resident_size: int) -> bool:
    """The admission rule both tiers apply: a candidate asked for `count` times, of `size`
    bytes, takes the place of a resident asked for `resident_count` times, of
    `resident_size` bytes, only when it was asked for more often per byte (sizes by
    `size_class`; a tie goes to the resident)."""
    return count * size_class(resident_size) > resident_count * size_class(size)


def contest(
    count: int,
    size: int,
    need: int,
    residents: Iterator[tuple[K, int]],
    frequency: Callable[[K], int],
) -> list[K] | None:
    """The residents (key, size) a candidate (`count` requests, weighed at `size` bytes)
    pushes out to free `need` bytes, taken in the order `residents` offers them; None when
    it loses to one of them (`outweighs`), or more than `MAX_VICTIMS` (or more than there
    are) would have to go."""
    victims: list[K] = []
    while need > 0:
        # Checked before asking: a resident may cost a draw (memory samples them).
        if len(victims) == MAX_VICTIMS:
            return None
        resident = next(residents, None)
        if resident is None:
            return None
        key, resident_size = resident
        if not outweighs(count, size, frequency(key), resident_size):
            return None
        victims.append(key)
        need -= resident_size
    return victims


class Promises(Generic[K]):
    """Keys whose next store was said yes to before its value existed (an answer's head
    went out claiming `stored`): that store takes them without a contest. Bounded to
    `MAX_PROMISED` (responses streaming at once, at most), the oldest forgotten first."""

    __slots__ = ("_keys",)

    def __init__(self) -> None:
        self._keys: OrderedDict[K, int] = OrderedDict()

    def add(self, key: K, size: int = 0) -> None:
        """Promise `key` a place; `size`: the size that yes was weighed at (0: none)."""
        keys = self._keys
        keys[key] = size
        keys.move_to_end(key)
        if len(keys) > MAX_PROMISED:
            keys.popitem(last=False)

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def size(self, key: K) -> int | None:
        """The size `key`'s promise was weighed at, None without one."""
        return self._keys.get(key)

    def take(self, key: K) -> bool:
        """Whether `key` was promised; the promise is used up."""
        keys = self._keys
        if key not in keys:
            return False
        del keys[key]
        return True

    def clear(self) -> None:
        self._keys.clear()


class _Node(Generic[V]):
    __slots__ = ("epoch", "hits", "size", "slot", "value")

    def __init__(self, value: V, size: int, hits: int, epoch: int) -> None:
        self.value = value
        self.size = size
        self.slot = IN_WINDOW  # else its index in the main space's key array
        self.hits = hits  # requests counted, as of `epoch`
        self.epoch = epoch


class WTinyLFU(Generic[K, V]):
    """A byte-bounded mapping with size-aware W-TinyLFU admission and eviction.

    `get` counts the request (and refreshes a window entry); `peek` does neither. `put`
    of a new entry returns False when it is refused at once (larger than the window and
    losing to the entries it would push out); `admits` answers that question before the
    value exists (counting a no as a rejection), and a key it said yes to is then taken
    by `put`, so an answer sent before its body arrived never claims a store that did
    not happen."""

    def __init__(self, max_bytes: int, getsizeof: Callable[[V], int]) -> None:
        self.max_bytes = max(1, max_bytes)
        self.window_max = max(1, int(self.max_bytes * WINDOW_SHARE))
        self.sketch = FrequencySketch(self.max_bytes // SKETCH_BYTES_PER_ENTRY)
        self._sizeof = getsizeof
        self._nodes: dict[K, _Node[V]] = {}
        self._window: OrderedDict[K, None] = OrderedDict()  # least recent first
        self._main: list[K] = []  # any order: victims are sampled from it
        self._window_bytes = 0
        self._main_bytes = 0
        # Keys `admits` said yes to, honoured by `put`.
        self._promised: Promises[K] = Promises()
        # Where victims are sampled (seeded: the same requests make the same choices).
        self._random = random.Random(0).randrange
        self.evictions = 0
        self.rejections = 0

    # -- reads ---------------------------------------------------------------------------

    def get(self, key: K) -> V | None:
        """The value, counting the request (present or not); a window entry is refreshed."""
        node = self._nodes.get(key)
        if node is None:
            self.sketch.increment(key)
            return None
        if node.epoch != self.sketch.epoch:
            self._age(node)
        node.hits += 1
        if node.slot == IN_WINDOW:
            self._window.move_to_end(key)
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
        return self._window_bytes + self._main_bytes

    # -- writes --------------------------------------------------------------------------

    def admits(self, key: K, size: int, weight: int = 0) -> bool:
        """Would `put` keep a value of `size` bytes (0: not known yet) under `key` now?
        A yes is binding: the next `put` of the key takes it without a contest. `weight`:
        the size its requests are weighed by, when it is known to be more than `size`."""
        if size > self.max_bytes:
            return False
        if key in self._nodes or key in self._promised or 0 < size <= self.window_max:
            return True
        if size and self._contest(self.sketch.frequency(key), size, weight) is None:
            self.rejections += 1  # the response is not kept: nothing will be `put`
            return False
        self._promised.add(key, size)
        return True

    def promise(self, key: K) -> None:
        """The next `put` of `key` takes it without a contest, whatever its size
        (bounded: the oldest promises are forgotten first)."""
        self._promised.add(key, self.max_bytes)

    def put(self, key: K, value: V) -> bool:
        """Keep `value` under `key`; False when it is not kept (too large, or refused)."""
        size = self._sizeof(value)
        # A yes covers at most twice the size it was weighed at: one told no size (a
        # chunked body) or less than it turned out to be still has to win its place, so
        # a crawl of large objects of unknown length cannot push the hot set out.
        judged = self._promised.size(key)
        self._promised.take(key)
        covered = judged is not None and size <= 2 * judged
        if size > self.max_bytes:
            self.pop(key)
            return False
        node = self._nodes.get(key)
        if node is not None:  # a new value for a kept key keeps its place
            if node.slot == IN_WINDOW:
                self._window_bytes += size - node.size
                self._window.move_to_end(key)
            else:
                self._main_bytes += size - node.size
            node.value, node.size = value, size
            self._rebalance(keep=key)
            return key in self._nodes
        sketch = self.sketch
        node = _Node(value, size, sketch.frequency(key), sketch.epoch)
        if size > self.window_max:
            victims = self._make_room(size, key) if covered else self._contest(node.hits, size)
            if victims is None:
                self.rejections += 1
                return False
            self._enter_main(key, node, victims)
            self._rebalance(keep=key)  # a promised one may need the window's room too
            return True
        self._nodes[key] = node
        self._window[key] = None
        self._window_bytes += size
        self._rebalance(keep=key)
        return True

    def pop(self, key: K) -> V | None:
        node = self._nodes.pop(key, None)
        if node is None:
            return None
        if node.slot == IN_WINDOW:
            del self._window[key]
            self._window_bytes -= node.size
            return node.value
        main = self._main
        last = main.pop()
        if last != key:  # the last key fills the hole: the array stays dense
            main[node.slot] = last
            self._nodes[last].slot = node.slot
        self._main_bytes -= node.size
        return node.value

    def clear(self) -> None:
        self._nodes.clear()
        self._window.clear()
        self._main.clear()
        self._window_bytes = self._main_bytes = 0
        self._promised.clear()
        self.sketch.clear()

    # -- policy --------------------------------------------------------------------------

    def _age(self, node: _Node[V]) -> None:
        """Bring a node's count to the sketch's epoch: halved once per epoch."""
        epoch = self.sketch.epoch
        node.hits >>= min(64, epoch - node.epoch)
        node.epoch = epoch

    def frequency(self, key: K) -> int:
        """How often `key` was asked for lately (the sketch's 0-15 when it is not kept,
        the entry's own count when it is)."""
        node = self._nodes.get(key)
        if node is None:
            return self.sketch.frequency(key)
        if node.epoch != self.sketch.epoch:
            self._age(node)
        return node.hits

    def _evict(self, key: K) -> None:
        """Out for space; its count goes back to the sketch, so it is not forgotten."""
        count = self.frequency(key)
        self.pop(key)
        self.sketch.raise_to(key, count)
        self.evictions += 1

    def _weakest(self, skip: set[K]) -> K | None:
        """The main-space entry asked for least per byte among `SAMPLE` in a row from a
        random slot (all of them when few), leaving out `skip`."""
        main = self._main
        n = len(main)
        start = self._random(n) if n > SAMPLE else 0
        best: K | None = None
        best_count = best_size = 0
        seen = 0
        for i in range(n):
            key = main[(start + i) % n]
            if key in skip:
                continue
            count, size = self.frequency(key), size_class(self._nodes[key].size)
            if best is None or count * best_size < best_count * size:
                best, best_count, best_size = key, count, size
            seen += 1
            if seen == SAMPLE:
                break
        return best

    def _contest(self, count: int, size: int, weight: int = 0) -> list[K] | None:
        """The main-space entries a candidate of `size` bytes asked for `count` times would
        push out, or None when it loses: one of them was asked for as often per byte, or
        more than `MAX_VICTIMS` (or more than the main space holds) would have to go."""
        need = self.currsize + size - self.max_bytes
        return contest(count, max(size, weight), need, self._sampled(), self.frequency)

    def _sampled(self) -> Iterator[tuple[K, int]]:
        """Main-space entries, the weakest of a fresh sample each (none twice), and sizes."""
        chosen: set[K] = set()
        while (victim := self._weakest(chosen)) is not None:
            chosen.add(victim)
            yield victim, self._nodes[victim].size

    def _make_room(self, size: int, keep: K) -> list[K]:
        """The weakest main-space entries whose bytes make room for `size`, no contest
        (a promised entry; what the main space cannot free, `_rebalance` takes after)."""
        need = self.currsize + size - self.max_bytes
        victims: list[K] = []
        chosen = {keep}
        while need > 0 and (victim := self._weakest(chosen)) is not None:
            victims.append(victim)
            chosen.add(victim)
            need -= self._nodes[victim].size
        return victims

    def _enter_main(self, key: K, node: _Node[V], victims: list[K]) -> None:
        for victim in victims:
            self._evict(victim)
        self._nodes[key] = node
        node.slot = len(self._main)
        self._main.append(key)
        self._main_bytes += node.size

    def _rebalance(self, keep: K) -> None:
        """Move what overflows the window into the main space, each by a contest; then
        evict while the whole is over budget (a grown value: `keep` last)."""
        window = self._window
        while self._window_bytes > self.window_max and window:
            key = next(iter(window))
            count = self.frequency(key)
            node = self._nodes.pop(key)
            del window[key]
            self._window_bytes -= node.size
            if key == keep:  # kept keys stay kept
                victims: list[K] | None = self._make_room(node.size, key)
            else:
                victims = self._contest(count, node.size)
            if victims is None:
                self.sketch.raise_to(key, count)
                self.rejections += 1
            else:
                self._enter_main(key, node, victims)
        while self.currsize > self.max_bytes:
            victim = self._weakest({keep})
            if victim is None:
                victim = next((k for k in window if k != keep), None)
                if victim is None:
                    break
            self._evict(victim)
