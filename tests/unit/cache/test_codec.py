"""The tier codec: a stored entry decodes to the same facts; any damage is refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.cache.codec import CorruptEntry, decode, encode, ttl_for
from proxy.cache.entry import Entry
from proxy.http.freshness import Freshness


def make_entry(body: bytes = b"hello", vary: tuple[str, ...] = ()) -> Entry:
    return Entry(
        status=200,
        headers=[(b"content-type", b"text/plain"), (b"etag", b'"x"')],
        origin_headers=[("content-type", "text/plain"), ("etag", '"x"')],
        body=body,
        etag='"x"',
        last_modified=1700000000.0,
        content_type="text/plain",
        response_time=1000.0,
        freshness=Freshness(True, "", 60.0, 2.0, 30.0, 600.0, False, False),
        vary=vary,
        upstream_status=b"up; hit",
    )


def test_round_trip_keeps_every_fact() -> None:
    e = make_entry(vary=("accept",))
    d = decode(encode(e))
    for name in (
        "status",
        "headers",
        "origin_headers",
        "body",
        "etag",
        "last_modified",
        "content_type",
        "response_time",
        "freshness",
        "vary",
        "upstream_status",
        "fresh_until",
        "stale_if_error_until",
        "size",
        "full_headers",
    ):
        assert getattr(d, name) == getattr(e, name), name


def test_ttl_covers_the_longest_stale_window() -> None:
    e = make_entry()
    # fresh until 1000 + 60 - 2 = 1058; stale-if-error until 1658
    assert ttl_for(e, 1000.0) == pytest.approx(658.0)


def test_truncated_blob_is_refused() -> None:
    blob = encode(make_entry(b"x" * 1000))
    with pytest.raises(CorruptEntry):
        decode(blob[:-1])


@given(st.binary(min_size=0, max_size=64), st.integers(min_value=0), st.integers(0, 255))
def test_any_single_byte_change_to_the_body_is_refused(body: bytes, pos: int, delta: int) -> None:
    blob = bytearray(encode(make_entry(body + b"!")))
    i = len(blob) - 1 - (pos % (len(body) + 1))
    blob[i] = (blob[i] + 1 + delta % 255) % 256
    with pytest.raises(CorruptEntry):
        decode(bytes(blob))


@given(st.binary(max_size=200))
def test_garbage_never_decodes_to_an_entry_or_crashes(blob: bytes) -> None:
    with pytest.raises(CorruptEntry):
        decode(blob)
