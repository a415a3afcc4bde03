"""Purge bus messages: what one instance writes another reads back exactly; anything
else in the stream is refused with the errors the bus catches, never something else."""

from __future__ import annotations

import contextlib

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.purge.bus import decode, encode
from proxy.purge.request import PrefixPurge, PurgeRequest

CAUGHT = (TypeError, ValueError, KeyError)


def test_round_trip() -> None:
    req = PurgeRequest(
        keys=("h/a.jpg", "h/b.jpg?x=1"),
        prefixes=(PrefixPurge("h", "/v/"), PrefixPurge(None, "/")),
        tags=("album-1",),
        soft=True,
        everything=True,
    )
    back, when, source = decode(encode(req, 123.5, "me"))
    assert (back.keys, back.prefixes, back.tags, back.soft, back.everything) == (
        req.keys,
        req.prefixes,
        req.tags,
        True,
        True,
    )
    assert (when, source) == (123.5, "me")


@given(st.binary(max_size=200))
def test_garbage_bytes_are_refused_cleanly(raw: bytes) -> None:
    with contextlib.suppress(*CAUGHT):  # anything else escaping fails the test
        decode(raw)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_wrong_shapes_are_refused_cleanly(value: object) -> None:
    try:
        decode(orjson.dumps(value))
    except CAUGHT:
        pass
    except Exception as exc:  # pragma: no cover - the failure this test looks for
        pytest.fail(f"{type(exc).__name__} escapes the bus: {exc}")
