"""What each worker adds to the shared top-keys set: only what it counted since its last
write."""

from __future__ import annotations

from proxy.warm.top_keys import deltas


def test_only_the_gain_since_the_last_write_is_added() -> None:
    assert deltas([("a", 5), ("b", 2)], {}) == {"a": 5, "b": 2}
    assert deltas([("a", 7), ("b", 2), ("c", 1)], {"a": 5, "b": 2}) == {"a": 2, "c": 1}


def test_a_key_counted_again_from_one_adds_nothing_until_it_passes_its_old_count() -> None:
    assert deltas([("a", 1)], {"a": 5}) == {}
