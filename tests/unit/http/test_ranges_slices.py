"""The slice helpers of proxy/http/ranges.py (used by proxy/slices/)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.http.ranges import (
    ByteRange,
    parse_range,
    parse_unsatisfied_range,
    slice_content_range,
    slice_of,
    slice_range_field,
    slice_span,
    slices_in,
    start_hint,
)

S = 1000


def test_slice_of_clips_the_last_slice_and_refuses_beyond_the_end() -> None:
    assert slice_of(0, S, 2500) == ByteRange(0, 999)
    assert slice_of(2, S, 2500) == ByteRange(2000, 2499)
    assert slice_of(3, S, 2500) is None
    assert slice_of(0, S, 0) is None
    assert slice_of(-1, S, 2500) is None


def test_slices_in() -> None:
    assert [slices_in(n, S) for n in (0, 1, 999, 1000, 1001, 2500)] == [0, 1, 1, 1, 2, 3]


def test_slice_span_covers_exactly_the_touched_slices() -> None:
    assert slice_span(ByteRange(0, 0), S) == range(0, 1)
    assert slice_span(ByteRange(999, 1000), S) == range(0, 2)
    assert slice_span(ByteRange(1500, 3999), S) == range(1, 4)


def test_slice_range_field_is_unclipped() -> None:
    assert slice_range_field(0, S) == "bytes=0-999"
    assert slice_range_field(7, S) == "bytes=7000-7999"


@pytest.mark.parametrize(
    ("value", "index", "expected"),
    [
        ("bytes 0-999/2500", 0, (1000, 2500)),
        ("bytes 2000-2499/2500", 2, (500, 2500)),
        ("bytes 0-499/500", 0, (500, 500)),  # smaller than one slice
        ("bytes 0-999/*", 0, None),  # unknown length: cannot be sliced
        ("bytes 0-998/2500", 0, None),  # not the whole slice
        ("bytes 1000-1999/2500", 0, None),  # another slice
        ("bytes 2000-2999/2500", 2, None),  # invalid (beyond the length)
        ("bytes */2500", 0, None),
        (None, 0, None),
    ],
)
def test_slice_content_range(
    value: str | None, index: int, expected: tuple[int, int] | None
) -> None:
    assert slice_content_range(value, index, S) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("bytes */2500", 2500),
        ("bytes */0", 0),
        ("BYTES */7", 7),
        ("bytes 0-1/2", None),
        ("bytes */", None),
        ("bytes */x", None),
        ("items */5", None),
        (None, None),
    ],
)
def test_parse_unsatisfied_range(value: str | None, expected: int | None) -> None:
    assert parse_unsatisfied_range(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, 0),
        ("bytes=500-", 500),
        ("bytes=500-600", 500),
        ("bytes=900-999, 100-199", 100),
        ("bytes=-100", 0),  # a suffix: its start depends on the length
        ("bytes=100-199,-5", 0),
        ("bytes=abc", 0),
        ("items=5-9", 0),
        ("bytes=", 0),
    ],
)
def test_start_hint(value: str | None, expected: int) -> None:
    assert start_hint(value) == expected


@given(
    st.integers(min_value=0, max_value=10**6),
    st.integers(min_value=0, max_value=10**6),
    st.integers(min_value=1, max_value=10**7),
)
def test_start_hint_is_never_after_the_first_satisfied_byte(a: int, b: int, size: int) -> None:
    """The slice picked before the length is known is at or before the first byte sent."""
    value = f"bytes={min(a, b)}-{max(a, b)}"
    ranges = parse_range(value, size)
    if isinstance(ranges, list):
        assert start_hint(value) <= ranges[0].start


@given(st.integers(min_value=0, max_value=10**5), st.integers(min_value=64, max_value=10**5))
def test_slices_tile_the_representation(size: int, slice_bytes: int) -> None:
    n = slices_in(size, slice_bytes)
    spans = [slice_of(i, slice_bytes, size) for i in range(n)]
    assert all(s is not None for s in spans)
    assert sum(s.length for s in spans if s is not None) == size
    assert slice_of(n, slice_bytes, size) is None
