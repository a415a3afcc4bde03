"""proxy/cache/admission.py: the W-TinyLFU policy and its frequency sketch."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.cache.admission import MAX_COUNT, PROBATION, PROTECTED, WINDOW, FrequencySketch, WTinyLFU


def _policy(max_bytes: int) -> WTinyLFU[str, int]:
    return WTinyLFU(max_bytes, getsizeof=lambda size: size)


def _check_books(cache: WTinyLFU[str, int]) -> None:
    """Every kept key is in exactly the segment its node names, and the byte counts add up."""
    nodes = cache._nodes
    segments = cache._segments
    assert sum(len(s) for s in segments) == len(nodes)
    for number, segment in enumerate(segments):
        assert all(nodes[key].segment == number for key in segment)
        assert cache._bytes[number] == sum(nodes[key].size for key in segment)
    assert cache.currsize <= cache.max_bytes


OPS = st.lists(
    st.tuples(
        st.sampled_from(["get", "put", "pop", "admits"]),
        st.integers(0, 40),  # key
        st.integers(1, 3000),  # size
    ),
    max_size=300,
)


@settings(max_examples=150, deadline=None)
@given(max_bytes=st.integers(1, 20_000), ops=OPS)
def test_never_over_its_byte_budget(max_bytes: int, ops: list[tuple[str, int, int]]) -> None:
    cache = _policy(max_bytes)
    for op, k, size in ops:
        key = f"k{k}"
        if op == "get":
            value = cache.get(key)
            assert value is None or value == cache.peek(key)
        elif op == "put":
            kept = cache.put(key, size)
            assert kept == (cache.peek(key) == size)
            assert not kept or size <= max_bytes
        elif op == "pop":
            cache.pop(key)
            assert key not in cache
        elif cache.admits(key, size):
            assert cache.put(key, size), "a yes from admits is binding"
        _check_books(cache)


@settings(max_examples=100, deadline=None)
@given(keys=st.lists(st.integers(0, 5000), max_size=400))
def test_sketch_never_counts_less_than_asked_until_it_ages(keys: list[int]) -> None:
    sketch = FrequencySketch(256)  # few counters: collisions happen, underestimates must not
    for key in keys:
        sketch.increment(key)
    for key, count in Counter(keys).items():
        assert sketch.frequency(key) >= min(count, MAX_COUNT)


def test_sketch_counts_saturate_and_age_by_halving() -> None:
    sketch = FrequencySketch(1024)
    for _ in range(40):
        sketch.increment("hot")
    for _ in range(6):
        sketch.increment("warm")
    assert sketch.frequency("hot") == MAX_COUNT and sketch.frequency("warm") == 6
    sketch.age()
    assert sketch.frequency("hot") == MAX_COUNT // 2 and sketch.frequency("warm") == 3
    assert sketch.frequency("never") == 0


def test_sketch_ages_by_itself_after_ten_increments_per_counter() -> None:
    sketch = FrequencySketch(256)
    for _ in range(10):
        sketch.increment("old")
    assert sketch.frequency("old") == 10
    for i in range(10 * 256 - 10):  # the sample: 10 x width increments in all
        sketch.increment(("other", i))
    assert sketch.frequency("old") <= 5  # halved once (collisions may have added a little)


def test_a_one_time_scan_does_not_evict_the_hot_set() -> None:
    cache = _policy(100 * 1000)
    hot = [f"hot{i}" for i in range(60)]
    for _ in range(5):  # a cache's way: ask, and store what was missing
        for key in hot:
            if cache.get(key) is None:
                cache.put(key, 1000)
    assert all(key in cache for key in hot)
    for i in range(5000):  # 50 times the budget, each object asked for once...
        key = f"scan{i}"
        assert cache.get(key) is None
        cache.put(key, 1000)
        assert cache.get(hot[i % len(hot)]) is not None  # ...amid the usual requests
    assert all(key in cache for key in hot)
    assert cache.rejections > 4000
    _check_books(cache)


def test_a_new_object_asked_for_more_often_takes_the_place_of_a_cold_one() -> None:
    cache = _policy(10 * 1000)  # the window (1 %) is smaller than any object here
    for i in range(10):
        cache.get(f"old{i}")
        assert cache.put(f"old{i}", 1000)
    cache.get("new")
    assert not cache.put("new", 1000)  # as popular as the victim: residents win ties
    cache.get("new")
    assert cache.put("new", 1000)
    assert "new" in cache and len(cache) == 10 and cache.evictions == 1


def test_a_large_candidate_must_beat_every_entry_it_pushes_out() -> None:
    cache = _policy(10 * 1000)
    for i in range(10):
        for _ in range(1 + (i == 3) * 5):  # old3 asked for six times, the others once
            cache.get(f"old{i}")
        cache.put(f"old{i}", 1000)
    for _ in range(3):
        cache.get("big")
    # 3000 bytes: pushes out old0, old1, old2 (asked for less): kept
    assert cache.admits("big", 3000) and cache.put("big", 3000)
    for _ in range(3):
        cache.get("bigger")
    # 4000 more bytes would need old3 too, asked for more often than "bigger": refused
    assert not cache.admits("bigger", 4000) and not cache.put("bigger", 4000)
    assert "old3" in cache and "bigger" not in cache


def test_admits_is_binding_even_if_the_victims_got_hot_meanwhile() -> None:
    cache = _policy(10 * 1000)
    for i in range(10):
        cache.put(f"old{i}", 1000)
    cache.get("new")
    assert cache.admits("new", 1000)  # asked for once, the residents never
    for i in range(10):
        for _ in range(3):
            cache.get(f"old{i}")  # while the body arrives, everything else gets hot
    assert cache.put("new", 1000)
    assert cache.peek("new") == 1000


def test_size_not_known_at_admits_is_taken_at_put() -> None:
    cache = _policy(10 * 1000)
    for i in range(10):
        for _ in range(3):
            cache.get(f"old{i}")
        cache.put(f"old{i}", 1000)
    assert cache.admits("chunked", 0)  # no Content-Length: what the window would take
    assert cache.put("chunked", 2000)
    assert cache.currsize <= cache.max_bytes


def test_hits_move_entries_from_window_to_protected() -> None:
    cache = _policy(1000 * 1000)  # a 10,000-byte window
    cache.put("a", 4000)
    assert cache._nodes["a"].segment == WINDOW
    for i in range(3):
        cache.put(f"b{i}", 4000)  # the window overflows: "a" moves on into probation
    assert cache._nodes["a"].segment == PROBATION
    cache.get("a")
    assert cache._nodes["a"].segment == PROTECTED
    _check_books(cache)


def test_replacing_a_value_keeps_its_place_and_its_books() -> None:
    cache = _policy(10 * 1000)
    for i in range(5):
        cache.put(f"k{i}", 1000)
    assert cache.put("k2", 3000)
    assert cache.peek("k2") == 3000 and cache.currsize == 7000
    assert not cache.put("k2", 20_000)  # larger than the whole budget: dropped
    assert "k2" not in cache and cache.currsize == 4000
    _check_books(cache)


def test_clear_forgets_entries_and_frequencies() -> None:
    cache = _policy(10 * 1000)
    for _ in range(5):
        cache.get("k")
    cache.put("k", 100)
    cache.clear()
    assert len(cache) == 0 and cache.currsize == 0 and cache.sketch.frequency("k") == 0
