import itertools
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.http.ranges import (
    ByteRange,
    content_range,
    make_boundary,
    multipart_byteranges,
    parse_content_range,
    parse_range,
    unsatisfied_range,
)

B = ByteRange
SIZE = 10_000


def _disjoint(n: int) -> str:
    """n one-byte ranges with one-byte gaps: 0-0,2-2,4-4,..."""
    return "bytes=" + ",".join(f"{2 * i}-{2 * i}" for i in range(n))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # Single ranges (RFC 9110 14.1.2 examples, scaled to 10000 bytes).
        ("bytes=0-499", [B(0, 499)]),
        ("bytes=500-999", [B(500, 999)]),
        ("bytes=-500", [B(9500, 9999)]),
        ("bytes=9500-", [B(9500, 9999)]),
        ("bytes=0-", [B(0, 9999)]),
        ("bytes=0-0", [B(0, 0)]),
        ("bytes=9999-9999", [B(9999, 9999)]),
        ("bytes=-1", [B(9999, 9999)]),
        # Beyond the end: clipped.
        ("bytes=0-99999", [B(0, 9999)]),
        ("bytes=9990-20000", [B(9990, 9999)]),
        ("bytes=-20000", [B(0, 9999)]),
        ("bytes=0-999999999999999999", [B(0, 9999)]),  # 18 digits still parse
        # Multiple ranges, sorted.
        ("bytes=0-0,-1", [B(0, 0), B(9999, 9999)]),
        ("bytes=0-9,20-29", [B(0, 9), B(20, 29)]),
        ("bytes=20-29,0-9", [B(0, 9), B(20, 29)]),
        ("bytes=-10,0-9", [B(0, 9), B(9990, 9999)]),
        # Coalescing: adjacent, overlapping (RFC 9110 14.1.2 "500-700,601-999"), contained.
        ("bytes=500-600,601-999", [B(500, 999)]),
        ("bytes=500-700,601-999", [B(500, 999)]),
        ("bytes=601-999,500-700", [B(500, 999)]),
        ("bytes=0-99,10-20", [B(0, 99)]),
        ("bytes=0-9,0-9", [B(0, 9)]),
        ("bytes=0-,-500", [B(0, 9999)]),
        ("bytes=0-9,10-19,20-29,40-49", [B(0, 29), B(40, 49)]),
        ("bytes=9990-,-5", [B(9990, 9999)]),
        # Whitespace and empty list elements (RFC 9110 5.6.1.2).
        (" bytes=0-9 ", [B(0, 9)]),
        ("bytes=0-9, 20-29", [B(0, 9), B(20, 29)]),
        ("bytes=0-9 ,\t20-29", [B(0, 9), B(20, 29)]),
        ("bytes=0-9,,20-29", [B(0, 9), B(20, 29)]),
        ("bytes=,0-9,", [B(0, 9)]),
        ("BYTES=0-9", [B(0, 9)]),  # range units are case-insensitive (RFC 9110 14.1)
        ("bytes=007-008", [B(7, 8)]),
        # Unsatisfiable: every spec misses the representation.
        ("bytes=10000-", "unsatisfiable"),
        ("bytes=10000-20000", "unsatisfiable"),
        ("bytes=10000-,20000-", "unsatisfiable"),
        ("bytes=-0", "unsatisfiable"),  # suffix-length 0 is never satisfiable
        ("bytes=-0,10000-", "unsatisfiable"),
        ("bytes=123456789012345678-", "unsatisfiable"),
        # ...but one satisfiable spec is enough.
        ("bytes=10000-,0-4", [B(0, 4)]),
        ("bytes=-0,0-4", [B(0, 4)]),
        # Invalid: ignore the header.
        (None, None),
        ("", None),
        ("bytes", None),
        ("bytes=", None),
        ("bytes=,", None),
        ("bytes=-", None),
        ("bytes=--1", None),
        ("bytes=abc", None),
        ("bytes=5-1", None),  # last < first
        ("bytes=0-9,5-1", None),  # one invalid spec invalidates the set
        ("bytes=0-9,abc", None),
        ("bytes=0 -9", None),
        ("bytes=0- 9", None),
        ("bytes =0-9", None),
        ("bytes=1.5-2", None),
        ("bytes=+1-2", None),
        ("bytes=0x10-", None),
        ("bytes=0-9;", None),
        ("bytes=1234567890123456789-", None),  # 19 digits
        ("bytes=-1234567890123456789", None),
        ("bytes=\u0660-\u0669", None),  # non-ASCII digits
        ("items=0-9", None),  # unknown range unit
        ("bytes:0-9", None),
        ("0-9", None),
        # Abuse signals (RFC 9110 14.2): more than two overlapping ranges.
        ("bytes=0-9,5-14,8-20", None),
        ("bytes=0-9,0-9,0-9", None),
        ("bytes=0-,0-,0-", None),
        ("bytes=0-10,5-15,100-110,105-120", None),
        ("bytes=0-,-1,1-2", None),
        # Too many ranges after coalescing, or too many specs at all.
        (_disjoint(16), [B(2 * i, 2 * i) for i in range(16)]),
        (_disjoint(17), None),
        ("bytes=" + ",".join(f"{i}-{i}" for i in range(64)), [B(0, 63)]),  # 64 adjacent
        ("bytes=" + ",".join(f"{i}-{i}" for i in range(65)), None),  # > 4 * 16 specs
    ],
)
def test_parse_range(value: str | None, expected: object) -> None:
    assert parse_range(value, SIZE) == expected


@pytest.mark.parametrize(
    ("value", "size", "max_ranges", "expected"),
    [
        # Zero-length representation: a suffix range is the one satisfiable form but cannot be
        # expressed in Content-Range, so it is ignored (200); everything else is a 416.
        ("bytes=0-", 0, 16, "unsatisfiable"),
        ("bytes=0-0", 0, 16, "unsatisfiable"),
        ("bytes=-0", 0, 16, "unsatisfiable"),
        ("bytes=-5", 0, 16, None),
        ("bytes=0-,-5", 0, 16, None),
        ("bytes=junk", 0, 16, None),
        # One-byte representation.
        ("bytes=0-0", 1, 16, [B(0, 0)]),
        ("bytes=-1", 1, 16, [B(0, 0)]),
        ("bytes=-100", 1, 16, [B(0, 0)]),
        ("bytes=0-100", 1, 16, [B(0, 0)]),
        ("bytes=1-", 1, 16, "unsatisfiable"),
        # max_ranges.
        ("bytes=0-9,20-29", 100, 1, None),
        ("bytes=0-9,10-19", 100, 1, [B(0, 19)]),
        ("bytes=0-9,20-29", 100, 2, [B(0, 9), B(20, 29)]),
        ("bytes=0-0,1-1,2-2,3-3,4-4", 100, 1, None),  # > 4 specs for max_ranges=1
        ("bytes=0-0,1-1,2-2,3-3", 100, 1, [B(0, 3)]),
    ],
)
def test_parse_range_sizes(value: str, size: int, max_ranges: int, expected: object) -> None:
    assert parse_range(value, size, max_ranges=max_ranges) == expected


def test_byte_range_length() -> None:
    assert B(0, 0).length == 1
    assert B(0, 99).length == 100
    assert B(500, 999).length == 500


@pytest.mark.parametrize(
    ("r", "size", "expected"),
    [
        (B(0, 99), 1000, "bytes 0-99/1000"),
        (B(0, 0), 1, "bytes 0-0/1"),
        (B(9500, 9999), 10000, "bytes 9500-9999/10000"),
    ],
)
def test_content_range(r: ByteRange, size: int, expected: str) -> None:
    assert content_range(r, size) == expected


@pytest.mark.parametrize(("size", "expected"), [(1000, "bytes */1000"), (0, "bytes */0")])
def test_unsatisfied_range(size: int, expected: str) -> None:
    assert unsatisfied_range(size) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("bytes 0-99/1000", (0, 99, 1000)),
        ("bytes 0-99/*", (0, 99, None)),
        ("bytes 0-0/1", (0, 0, 1)),
        ("BYTES 5-9/10", (5, 9, 10)),
        (" bytes 5-9/10\t", (5, 9, 10)),
        (
            "bytes 999999999999999998-999999999999999998/999999999999999999",
            (
                999999999999999998,
                999999999999999998,
                999999999999999999,
            ),
        ),
        (None, None),
        ("", None),
        ("bytes */1000", None),  # unsatisfied-range: not a range
        ("bytes 0-99/50", None),  # last >= complete length
        ("bytes 0-99/99", None),
        ("bytes 99-0/1000", None),  # last < first
        ("bytes 0-99", None),
        ("bytes=0-99/1000", None),
        ("bytes  0-99/1000", None),
        ("bytes 0-99/1000x", None),
        ("bytes -1-99/1000", None),
        ("items 0-99/1000", None),
        ("bytes 0-99/1234567890123456789", None),
    ],
)
def test_parse_content_range(value: str | None, expected: object) -> None:
    assert parse_content_range(value) == expected


@pytest.mark.parametrize(
    ("ranges", "size", "ctype", "boundary", "parts", "total"),
    [
        (
            [B(0, 9), B(20, 29)],
            100,
            "video/mp4",
            "XYZ",
            [
                b"--XYZ\r\nContent-Type: video/mp4\r\nContent-Range: bytes 0-9/100\r\n\r\n",
                b"\r\n--XYZ\r\nContent-Type: video/mp4\r\nContent-Range: bytes 20-29/100\r\n\r\n",
                b"\r\n--XYZ--\r\n",
            ],
            64 + 68 + 11 + 10 + 10,
        ),
        (
            [B(5, 5)],
            6,
            None,
            "b",
            [b"--b\r\nContent-Range: bytes 5-5/6\r\n\r\n", b"\r\n--b--\r\n"],
            35 + 1 + 9,
        ),
        (
            [B(0, 0)],
            1,
            "text/plain\r\nX-Evil: 1",  # a stored value can never inject part headers
            "b",
            [
                b"--b\r\nContent-Type: text/plainX-Evil: 1\r\nContent-Range: bytes 0-0/1\r\n\r\n",
                b"\r\n--b--\r\n",
            ],
            70 + 1 + 9,
        ),
    ],
)
def test_multipart_byteranges(
    ranges: list[ByteRange],
    size: int,
    ctype: str | None,
    boundary: str,
    parts: list[bytes],
    total: int,
) -> None:
    got_parts, got_total = multipart_byteranges(ranges, size, ctype, boundary)
    assert got_parts == parts
    assert got_total == total


def test_make_boundary() -> None:
    seen = {make_boundary() for _ in range(100)}
    assert len(seen) == 100
    for b in seen:
        assert re.fullmatch(r"[0-9a-f]{32}", b)  # RFC 2046 bchars, well under 70


_SPEC = st.one_of(
    st.builds(lambda a, b: f"{a}-{b}", st.integers(0, 2000), st.integers(0, 2000)),
    st.builds(lambda a: f"{a}-", st.integers(0, 2000)),
    st.builds(lambda a: f"-{a}", st.integers(0, 2000)),
)
_RANGE_HEADER = st.one_of(
    st.text(),
    st.text(alphabet="bytes=0123456789-, ").map(lambda s: "bytes=" + s),
    st.lists(_SPEC, min_size=1, max_size=20).map(lambda specs: "bytes=" + ",".join(specs)),
)


@settings(max_examples=300, deadline=None)
@given(_RANGE_HEADER, st.integers(0, 1500))
def test_parse_range_invariants(value: str, size: int) -> None:
    result = parse_range(value, size)
    if result is None or result == "unsatisfiable":
        return
    assert isinstance(result, list)
    assert 1 <= len(result) <= 16
    for r in result:
        assert 0 <= r.start <= r.end < size
    for a, b in itertools.pairwise(result):
        assert a.end + 1 < b.start  # sorted, disjoint, and not even adjacent


@settings(max_examples=300, deadline=None)
@given(
    st.lists(_SPEC, min_size=1, max_size=20),
    st.binary(min_size=1, max_size=1500),
    st.one_of(st.none(), st.text(max_size=30)),
)
def test_multipart_length_matches_assembled_body(
    specs: list[str], body: bytes, ctype: str | None
) -> None:
    ranges = parse_range("bytes=" + ",".join(specs), len(body))
    if not isinstance(ranges, list):
        return
    boundary = make_boundary()
    parts, total = multipart_byteranges(ranges, len(body), ctype, boundary)
    assert len(parts) == len(ranges) + 1
    assembled = b"".join(p + body[r.start : r.end + 1] for p, r in zip(parts, ranges, strict=False))
    assembled += parts[-1]
    assert len(assembled) == total
    assert assembled.endswith(f"--{boundary}--\r\n".encode())
