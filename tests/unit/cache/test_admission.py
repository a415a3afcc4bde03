"""proxy/cache/admission.py: the W-TinyLFU policy and its frequency sketch."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.cache.admission import (
    IN_WINDOW,
    MAX_COUNT,
    MAX_VICTIMS,
    SAMPLE,
    FrequencySketch,
    WTinyLFU,
    size_class,
)


def _policy(max_bytes: int) -> WTinyLFU[str, int]:
    return WTinyLFU(max_bytes, getsizeof=lambda size: size)


def _check_books(cache: WTinyLFU[str, int]) -> None:
    """Every kept key is in the window or at the main-space slot its node names, once,
    and the byte counts add up exactly."""
    nodes, window, main = cache._nodes, cache._window, cache._main
    assert len(window) + len(main) == len(nodes) == len(set(window) | set(main))
    assert all(nodes[key].slot == IN_WINDOW for key in window)
    assert all(nodes[key].slot == slot for slot, key in enumerate(main))
    assert cache._window_bytes == sum(nodes[key].size for key in window)
    assert cache._main_bytes == sum(nodes[key].size for key in main)
    assert cache.currsize <= cache.max_bytes


def _replay(cache: WTinyLFU[str, int], ops: list[tuple[str, int, int]]) -> None:
    """Any sequence of requests and stores: the books stay exact, the budget holds, a
    refused entry is never found, and a yes from `admits` or a promise is binding."""
    for op, k, size in ops:
        key = f"k{k}"
        if op == "get":
            value = cache.get(key)
            assert value is None or value == cache.peek(key)
        elif op == "put":
            kept = cache.put(key, size)
            assert kept == (cache.peek(key) == size) == (key in cache)
            assert not kept or size <= cache.max_bytes
            if not kept:
                assert cache.get(key) is None
        elif op == "pop":
            cache.pop(key)
            assert key not in cache
        elif op == "promise":
            cache.promise(key)
            assert cache.put(key, size) == (size <= cache.max_bytes)
        elif cache.admits(key, size):
            assert cache.put(key, size), "a yes from admits is binding"
        else:  # nothing promised (store.py does not `put` after a no)
            assert key not in cache or size > cache.max_bytes
        _check_books(cache)


OP = st.sampled_from(["get", "get", "put", "pop", "admits", "promise"])


@settings(max_examples=150, deadline=None)
@given(
    max_bytes=st.integers(1, 20_000),
    ops=st.lists(st.tuples(OP, st.integers(0, 40), st.integers(1, 3000)), max_size=300),
)
def test_never_over_its_byte_budget(max_bytes: int, ops: list[tuple[str, int, int]]) -> None:
    _replay(_policy(max_bytes), ops)


@settings(max_examples=60, deadline=None)
@given(
    max_bytes=st.integers(2_000, 30_000),
    ops=st.lists(st.tuples(OP, st.integers(0, 400), st.integers(1, 400)), max_size=1500),
)
def test_books_stay_exact_when_victims_are_sampled(
    max_bytes: int, ops: list[tuple[str, int, int]]
) -> None:
    """Many small entries: the main space holds more than a sample, so victims are drawn."""
    _replay(_policy(max_bytes), ops)


def test_a_contest_looks_at_a_bounded_number_of_entries() -> None:
    """A large candidate facing thousands of small, cold entries gives up after
    `MAX_VICTIMS` of them: the work of one insert does not grow with the tier."""
    cache = _policy(100_000)
    for i in range(10_000):
        assert cache.put(f"small{i}", 10)  # never asked for: a count of 0
    looked = 0
    frequency = cache.frequency

    def counting(key: str) -> int:
        nonlocal looked
        looked += 1
        return frequency(key)

    cache.frequency = counting  # type: ignore[method-assign]
    for _ in range(MAX_COUNT):
        cache.get("large")
    assert not cache.admits("large", 50_000)  # 5,000 victims needed: more than allowed
    assert 0 < looked <= (MAX_VICTIMS + 1) * (SAMPLE + MAX_VICTIMS)
    assert len(cache) == 10_000 and cache.evictions == 0
    cache.frequency = frequency  # type: ignore[method-assign]
    # one needing fewer victims than the bound wins against these cold ones
    assert cache.admits("large", 2_000) and cache.put("large", 2_000)
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
    cache = _policy(8 * 1000)  # the window (1 %) is smaller than any object here
    for i in range(8):
        cache.get(f"old{i}")
        assert cache.put(f"old{i}", 1000)
    cache.get("new")
    assert not cache.put("new", 1000)  # as popular as the victim: residents win ties
    cache.get("new")
    assert cache.put("new", 1000)
    assert "new" in cache and len(cache) == 8 and cache.evictions == 1


def test_frequency_per_byte_decides_so_small_objects_win_more_hits() -> None:
    cache = _policy(8 * 4000)
    for i in range(8):
        for _ in range(5):
            cache.get(f"big{i}")
        assert cache.put(f"big{i}", 4000)  # asked for 5 times: 1.25 per KB
    cache.get("small")
    assert not cache.put("small", 1000)  # once in 1000 bytes: 1 per KB, less
    cache.get("small")
    # twice in 1000 bytes (2 per KB) beats five times in 4000 (1.25 per KB)
    assert cache.put("small", 1000) and "small" in cache
    for _ in range(9):
        cache.get("huge")
    # nine times in 8000 bytes (1.125 per KB) loses to entries asked for 1.25 per KB
    assert not cache.admits("huge", 8000) and not cache.put("huge", 8000)
    assert "huge" not in cache and cache.rejections == 3
    _check_books(cache)


def test_a_large_candidate_must_beat_every_entry_it_pushes_out() -> None:
    cache = _policy(8 * 1000)
    for i in range(8):
        for _ in range(1 + (i == 3) * 5):  # old3 asked for six times, the others once
            cache.get(f"old{i}")
        cache.put(f"old{i}", 1000)
    for _ in range(3):
        cache.get("big")
    # 2000 bytes asked for 3 times beats two entries asked for once in 1000 each: kept
    assert cache.admits("big", 2000) and cache.put("big", 2000)
    assert len(cache) == 7 and "old3" in cache
    for _ in range(15):
        cache.get("bigger")
    # 15 times in 8000 bytes: every entry would go, old3 (6 per KB) too: refused
    assert not cache.admits("bigger", 8000) and not cache.put("bigger", 8000)
    assert "old3" in cache and "big" in cache and "bigger" not in cache
    _check_books(cache)


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


def _full_of_warm_entries() -> WTinyLFU[str, int]:
    """10,000 bytes holding ten entries of 1,000, each asked for three times."""
    cache = _policy(10 * 1000)
    for i in range(10):
        for _ in range(3):
            cache.get(f"old{i}")
        cache.put(f"old{i}", 1000)
    return cache


def test_a_size_not_known_at_admits_is_weighed_at_put() -> None:
    """A yes given without a size (a chunked body) does not let a value larger than the
    window skip its contest: a crawl of cold chunked objects cannot push the hot set
    out, and a hot one still gets in."""
    cache = _full_of_warm_entries()
    for i in range(20):
        assert cache.admits(f"crawl{i}", 0)  # no Content-Length: nothing to weigh yet
        assert not cache.put(f"crawl{i}", 2000)
    assert all(f"old{i}" in cache for i in range(10))
    for _ in range(8):
        cache.get("hot-chunked")
    assert cache.admits("hot-chunked", 0)
    assert cache.put("hot-chunked", 2000)
    assert cache.currsize <= cache.max_bytes


def test_a_yes_covers_twice_the_size_it_was_weighed_at() -> None:
    cache = _full_of_warm_entries()
    for _ in range(4):
        cache.get("told")
    assert cache.admits("told", 1000)  # weighed at 1,000 bytes: wins one victim
    assert not cache.put("told", 5000)  # 5,000 would need five: contested again, lost
    cache.promise("image-source")  # an explicit promise holds whatever the size
    assert cache.put("image-source", 5000)


def test_entries_move_from_the_window_into_the_main_space() -> None:
    cache = _policy(1000 * 1000)  # a 10,000-byte window
    cache.put("a", 4000)
    assert cache._nodes["a"].slot == IN_WINDOW
    for i in range(3):
        cache.put(f"b{i}", 4000)  # the window overflows: "a" moves on, there is room
    assert cache._nodes["a"].slot != IN_WINDOW and cache.get("a") == 4000
    assert cache._nodes["a"].hits == 1  # the request counted on the entry
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


@given(st.integers(1, 1 << 40))
def test_size_classes_round_down_by_at_most_an_eighth(size: int) -> None:
    weight = size_class(size)
    assert weight <= size and (size - weight) * 8 < size
    assert size_class(weight) == weight


def test_entries_asked_for_as_often_and_of_near_sizes_tie() -> None:
    cache = _policy(8 * 1000)
    for i in range(8):
        for _ in range(2):
            cache.get(f"old{i}")
        assert cache.put(f"old{i}", 1000)
    for _ in range(2):
        cache.get("new")
    assert not cache.put("new", 980)  # 2 % smaller: the same size class, residents win
    assert not cache.admits("new", 900, weight=1000)  # weighed as the size it will be
    assert cache.admits("new", 900)  # 10 % smaller: a class below, more per byte
