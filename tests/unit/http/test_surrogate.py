"""Surrogate keys from origin response fields (proxy/http/surrogate.py)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.http.surrogate import (
    MAX_KEY_LENGTH,
    MAX_KEYS,
    STRIP_FIELDS,
    SURROGATE_FIELDS,
    surrogate_keys,
    valid_key,
)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([], set()),
        ([("content-type", "text/html")], set()),
        # Fastly: whitespace only, so a comma stays inside a key.
        ([("Surrogate-Key", "p-1 p-2  \tp-3")], {"p-1", "p-2", "p-3"}),
        ([("surrogate-key", "a,b c")], {"a,b", "c"}),
        # Cloudflare / Akamai: commas; whitespace around a key trimmed, inside kept.
        ([("Cache-Tag", "tag1, tag2 ,tag3,,  ")], {"tag1", "tag2", "tag3"}),
        ([("cache-tag", "spring sale, x")], {"spring sale", "x"}),
        ([("Edge-Cache-Tag", "casual, knits, fall-sale")], {"casual", "knits", "fall-sale"}),
        # Varnish xkey: spaces and (0.18+) commas, and the field may repeat.
        ([("xkey", "815"), ("xkey", "166 234,99")], {"815", "166", "234", "99"}),
        # All vendors feed one namespace; duplicates collapse.
        (
            [
                ("surrogate-key", "a b"),
                ("cache-tag", "b,c"),
                ("xkey", "c d"),
                ("edge-cache-tag", "e"),
            ],
            {"a", "b", "c", "d", "e"},
        ),
        # Case-sensitive keys, case-insensitive field names.
        ([("SURROGATE-KEY", "Post-1 post-1")], {"Post-1", "post-1"}),
        # No such thing as X-Key in vmod_xkey.
        ([("x-key", "nope"), ("surrogate-control", "max-age=1")], set()),
        # Keys with control characters are dropped, the rest kept.
        ([("cache-tag", "ok,bad\x00key,also\x7f")], {"ok"}),
        ([("surrogate-key", "   ")], set()),
    ],
)
def test_table(headers: list[tuple[str, str]], expected: set[str]) -> None:
    assert surrogate_keys(headers) == frozenset(expected)


def test_too_many_keys_keep_the_first_ones() -> None:
    value = " ".join(f"k{i}" for i in range(MAX_KEYS + 50))
    keys = surrogate_keys([("surrogate-key", value)])
    assert len(keys) == MAX_KEYS
    assert keys == {f"k{i}" for i in range(MAX_KEYS)}


def test_bound_counts_distinct_keys() -> None:
    assert surrogate_keys([("xkey", "a a a a b")], max_keys=2) == {"a", "b"}
    assert surrogate_keys([("xkey", "a b")], max_keys=0) == frozenset()


def test_too_long_keys_are_dropped_not_cut() -> None:
    long = "x" * (MAX_KEY_LENGTH + 1)
    exact = "y" * MAX_KEY_LENGTH
    assert surrogate_keys([("surrogate-key", f"{long} {exact} ok")]) == {exact, "ok"}


def test_length_is_counted_in_utf8_bytes() -> None:
    assert valid_key("é" * 4, max_key_length=8)
    assert not valid_key("é" * 5, max_key_length=8)
    assert not valid_key("")


def test_strip_fields_are_the_vendor_fields() -> None:
    assert {"surrogate-key", "cache-tag", "xkey", "edge-cache-tag"} == STRIP_FIELDS
    assert set(SURROGATE_FIELDS) == STRIP_FIELDS
    assert "surrogate-control" not in STRIP_FIELDS  # config's strip_fields handles that


_names = st.sampled_from(["surrogate-key", "Cache-Tag", "xkey", "edge-cache-tag", "x-other"])
_values = st.text(alphabet=st.characters(max_codepoint=0x2FF), max_size=300) | st.text(
    alphabet=" ,\t\x00ab", max_size=200
)


@settings(max_examples=200, deadline=None)
@given(
    headers=st.lists(st.tuples(_names, _values), max_size=8),
    max_keys=st.integers(0, 20),
    max_len=st.integers(1, 40),
)
def test_fuzz_never_raises_and_bounds_hold(
    headers: list[tuple[str, str]], max_keys: int, max_len: int
) -> None:
    keys = surrogate_keys(headers, max_keys=max_keys, max_key_length=max_len)
    assert isinstance(keys, frozenset)
    assert len(keys) <= max_keys
    for key in keys:
        assert key and key == key.strip(" \t")
        assert len(key.encode("utf-8", "surrogatepass")) <= max_len
        assert not any(c < " " or c == "\x7f" for c in key)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet="abcXYZ019-_.:", min_size=1, max_size=12), max_size=30))
def test_fuzz_round_trip_of_space_separated_keys(keys: list[str]) -> None:
    """Keys written by an origin come back exactly, whichever vendor field carries them."""
    for name in ("surrogate-key", "xkey"):
        assert surrogate_keys([(name, " ".join(keys))]) == frozenset(keys)
    for name in ("cache-tag", "edge-cache-tag"):
        assert surrogate_keys([(name, ", ".join(keys))]) == frozenset(keys)
