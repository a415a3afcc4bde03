"""The surrogate-key index (proxy/cache/tags.py): links, purge, bound and eviction."""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.cache.tags import TagIndex


def test_add_lookup_forget() -> None:
    index = TagIndex()
    assert index.add("h/a", {"p1", "all"}) == []
    assert index.add("h/b", ["p2", "all"]) == []
    assert index.keys_for("all") == {"h/a", "h/b"}
    assert index.keys_for("p1") == {"h/a"}
    assert index.keys_for("missing") == set()
    assert index.tags_of("h/a") == {"p1", "all"}
    assert index.links == 4 and len(index) == 2 and index.tag_count() == 3
    assert index.forget("h/a") is True
    assert index.forget("h/a") is False
    assert index.keys_for("all") == {"h/b"}
    assert index.keys_for("p1") == set()
    assert index.tag_count() == 2  # no empty sets left behind
    assert index.links == 2


def test_keys_for_is_a_copy() -> None:
    index = TagIndex()
    index.add("k", {"t"})
    index.keys_for("t").add("other")
    assert index.keys_for("t") == {"k"}


def test_readding_replaces_the_tags() -> None:
    index = TagIndex()
    index.add("k", {"old", "both"})
    index.add("k", {"new", "both"})
    assert index.keys_for("old") == set()
    assert index.keys_for("new") == {"k"}
    assert index.links == 2
    assert index.add("k", []) == []  # empty: forgotten
    assert "k" not in index and index.links == 0


def purge(index: TagIndex, tags: Iterable[str]) -> set[str]:
    """A hard purge as proxy/purge/engine.py makes it: the keys, each forgotten."""
    found = set().union(*(index.keys_for(tag) for tag in tags))
    for key in found:
        index.forget(key)
    return found


def test_purge_returns_keys_and_forgets_all_their_links() -> None:
    index = TagIndex()
    index.add("a", {"t1", "t2"})
    index.add("b", {"t2"})
    index.add("c", {"t3"})
    assert purge(index, ["t1", "nope"]) == {"a"}
    assert index.keys_for("t2") == {"b"}  # a's other link went with it
    assert purge(index, ["t2", "t3"]) == {"b", "c"}
    assert len(index) == 0 and index.links == 0 and index.tag_count() == 0


def test_bound_evicts_oldest_keys_and_reports_them() -> None:
    index = TagIndex(max_links=5)
    assert index.add("k1", {"a", "b"}) == []
    assert index.add("k2", {"a", "c"}) == []
    assert index.add("k3", {"d"}) == []
    assert index.links == 5
    # Two more links: k1 (the oldest, two links) must go, and is reported.
    assert index.add("k4", {"e", "f"}) == ["k1"]
    assert "k1" not in index and index.keys_for("b") == set()
    assert index.keys_for("a") == {"k2"}
    assert index.links == 5 and index.evictions == 1
    # Three links need k2 and k3 gone.
    assert index.add("k5", {"x", "y", "z"}) == ["k2", "k3"]
    assert index.evictions == 3


def test_readding_moves_a_key_to_the_young_end() -> None:
    index = TagIndex(max_links=2)
    index.add("k1", {"a"})
    index.add("k2", {"b"})
    index.add("k1", {"a"})  # stored again: now the youngest
    assert index.add("k3", {"c"}) == ["k2"]


def test_a_key_with_more_tags_than_the_bound_is_refused() -> None:
    index = TagIndex(max_links=3)
    index.add("keep", {"a"})
    assert index.add("huge", {"1", "2", "3", "4"}) == ["huge"]
    assert "huge" not in index
    assert "keep" in index  # nothing else was evicted for it
    with pytest.raises(ValueError):
        TagIndex(max_links=0)


def test_clear() -> None:
    index = TagIndex()
    index.add("k", {"t"})
    index.clear()
    assert len(index) == 0 and index.links == 0 and index.keys_for("t") == set()


_ops = st.lists(
    st.tuples(
        st.sampled_from(["add", "forget", "purge"]),
        st.sampled_from([f"k{i}" for i in range(12)]),
        st.frozensets(st.sampled_from([f"t{i}" for i in range(8)]), max_size=5),
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(ops=_ops, bound=st.integers(1, 12))
def test_fuzz_invariants(ops: list[tuple[str, str, frozenset[str]]], bound: int) -> None:
    """Against a model: the bound holds, both directions agree, and every key that was
    added and is neither evicted, refused, forgotten nor purged keeps all its links."""
    index = TagIndex(max_links=bound)
    model: dict[str, frozenset[str]] = {}
    for op, key, tags in ops:
        if op == "add":
            model.pop(key, None)
            evicted = index.add(key, tags)
            for gone in evicted:
                model.pop(gone, None)
            if tags and key not in evicted:
                model[key] = tags
        elif op == "forget":
            assert index.forget(key) == (key in model)
            model.pop(key, None)
        else:
            expected = {k for k, t in model.items() if t & tags}
            assert purge(index, tags) == expected
            for k in expected:
                del model[k]
        assert index.links <= bound
        assert index.links == sum(map(len, model.values()))
        assert {k: index.tags_of(k) for k in model} == model
        assert len(index) == len(model)
        for tag in {t for ts in model.values() for t in ts}:
            assert index.keys_for(tag) == {k for k, t in model.items() if tag in t}
