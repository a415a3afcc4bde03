"""Byte range requests (RFC 9110 14)."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "ByteRange",
    "content_range",
    "make_boundary",
    "multipart_byteranges",
    "parse_content_range",
    "parse_range",
    "parse_unsatisfied_range",
    "slice_content_range",
    "slice_of",
    "slice_range_field",
    "slice_span",
    "slices_in",
    "start_hint",
    "unsatisfied_range",
]

# Up to 18 digits always fits in int64, which is what origins and sendfile can handle.
_SPEC = re.compile(r"(\d{0,18})-(\d{0,18})", re.ASCII)
_CONTENT_RANGE = re.compile(r"bytes (\d{1,18})-(\d{1,18})/(\d{1,18}|\*)", re.ASCII | re.IGNORECASE)
_SPECS_PER_RANGE = 4  # range-specs tolerated per allowed range, before coalescing


@dataclass(frozen=True, slots=True, order=True)
class ByteRange:
    start: int
    end: int  # inclusive

    @property
    def length(self) -> int:
        return self.end - self.start + 1


def parse_range(
    value: str | None, size: int, *, max_ranges: int = 16
) -> list[ByteRange] | Literal["unsatisfiable"] | None:
    """Interpret a Range header against a representation of ``size`` bytes.

    None means ignore the header and send 200 with the whole representation (RFC 9110 14.2
    lets a server ignore Range): absent, unit other than "bytes", any invalid range-spec
    (RFC 9110 14.1.1, which makes the whole set invalid), or one of these abuse signals
    (RFC 9110 14.2, 17.15):
      * more than ``4 * max_ranges`` range-specs;
      * more than two ranges overlapping, i.e. after sorting, more than one range starts
        inside the ones before it (bytes=0-9,5-14 is fine; bytes=0-9,5-14,8-20 is not);
      * more than ``max_ranges`` ranges left after coalescing.
    "unsatisfiable" (send 416) when no range-spec overlaps the representation.
    Otherwise the satisfiable ranges, clipped to the representation, with overlapping and
    adjacent ones coalesced (RFC 9110 14.2 allows this "regardless of the order"), sorted
    by start. Parts therefore come in ascending order even when none were coalesced, not
    request order (RFC 9110 15.3.7.2 SHOULD): each part carries its own Content-Range, and
    one ascending pass over the stored object is what keeps serving them cheap.
    A zero-length representation cannot be served as a 206 (Content-Range cannot express an
    empty range): a suffix range, the one satisfiable form there (RFC 9110 14.1.2), gets None
    (RFC 9110 14.2 lets a server ignore Range for empty content), anything else 416.
    """
    if value is None:
        return None
    unit, eq, range_set = value.strip(" \t").partition("=")
    if not eq or unit.lower() != "bytes":
        return None

    ranges: list[ByteRange] = []
    max_specs = _SPECS_PER_RANGE * max_ranges
    specs = 0
    suffix_seen = False
    for item in range_set.split(","):
        item = item.strip(" \t")
        if not item:  # RFC 9110 5.6.1.2: empty list elements are ignored
            continue
        specs += 1
        if specs > max_specs:
            return None
        m = _SPEC.fullmatch(item)
        if m is None:
            return None
        first, last = m[1], m[2]
        if first:  # int-range: first-pos "-" [ last-pos ]
            start = int(first)
            end = int(last) if last else None
            if end is not None and end < start:
                return None
            if start >= size:  # RFC 9110 14.1.2: not satisfiable, other specs still may be
                continue
            ranges.append(ByteRange(start, size - 1 if end is None or end >= size else end))
        elif last:  # suffix-range: the final N bytes, all of them if N >= size
            n = int(last)
            if n > 0:
                suffix_seen = True
                if size > 0:
                    ranges.append(ByteRange(max(0, size - n), size - 1))
        else:
            return None  # "-"
    if not ranges:
        if not specs:  # range-set is 1#range-spec: "bytes=" is invalid, not unsatisfiable
            return None
        return None if suffix_seen and size <= 0 else "unsatisfiable"
    if len(ranges) == 1:
        return ranges

    ranges.sort()
    out = [ranges[0]]
    overlaps = 0
    for r in ranges[1:]:
        prev = out[-1]
        if r.start <= prev.end:
            overlaps += 1
            if overlaps > 1:
                return None
            if r.end > prev.end:
                out[-1] = ByteRange(prev.start, r.end)
        elif r.start == prev.end + 1:
            out[-1] = ByteRange(prev.start, r.end)
        else:
            out.append(r)
    return out if len(out) <= max_ranges else None


def content_range(r: ByteRange, size: int) -> str:
    """Content-Range for one satisfied range (RFC 9110 14.4)."""
    return f"bytes {r.start}-{r.end}/{size}"


def unsatisfied_range(size: int) -> str:
    """Content-Range for a 416 (RFC 9110 14.4, 15.5.17)."""
    return f"bytes */{size}"


def _field_bytes(value: str) -> bytes:
    # Never let a stored value break the part's header block.
    clean = value.replace("\r", "").replace("\n", "").replace("\x00", "")
    return clean.encode("latin-1", "replace")


def multipart_byteranges(
    ranges: list[ByteRange], size: int, content_type: str | None, boundary: str
) -> tuple[list[bytes], int]:
    """Framing for a multipart/byteranges body (RFC 9110 14.6, RFC 2046 5.1.1).

    Returns one preamble per range plus the closing delimiter as the last element, and the
    exact body length; the caller sends parts[i] + bytes of ranges[i], then parts[-1].
    """
    bnd = _field_bytes(boundary)
    ctype = b"Content-Type: " + _field_bytes(content_type) + b"\r\n" if content_type else b""
    parts: list[bytes] = []
    total = 0
    for i, r in enumerate(ranges):
        head = b"".join(
            (
                b"\r\n--" if i else b"--",  # the CRLF before a delimiter belongs to it
                bnd,
                b"\r\n",
                ctype,
                f"Content-Range: bytes {r.start}-{r.end}/{size}\r\n\r\n".encode("ascii"),
            )
        )
        parts.append(head)
        total += len(head) + r.length
    closing = (b"\r\n--" if ranges else b"--") + bnd + b"--\r\n"
    parts.append(closing)
    return parts, total + len(closing)


def make_boundary() -> str:
    """128 random bits in hex: bchars-safe and never present in the content by chance."""
    return secrets.token_hex(16)


def parse_content_range(value: str | None) -> tuple[int, int, int | None] | None:
    """(first, last, complete length or None for "*") of an origin 206; None if invalid.

    The unsatisfied form "bytes */N" is not a range and yields None (RFC 9110 14.4: a
    range is invalid if last < first or, with a known length, last >= length).
    """
    if not value:
        return None
    m = _CONTENT_RANGE.fullmatch(value.strip(" \t"))
    if m is None:
        return None
    start, end = int(m[1]), int(m[2])
    complete = None if m[3] == "*" else int(m[3])
    if end < start or (complete is not None and end >= complete):
        return None
    return start, end, complete


# -- slices (proxy/slices/): an object cut into fixed-size pieces, one origin range each


def slice_of(index: int, slice_bytes: int, size: int) -> ByteRange | None:
    """The bytes of slice ``index`` in a representation of ``size`` bytes (the last slice is
    shorter); None when the slice starts at or beyond the end."""
    start = index * slice_bytes
    if index < 0 or start >= size:
        return None
    return ByteRange(start, min(start + slice_bytes, size) - 1)


def slices_in(size: int, slice_bytes: int) -> int:
    """How many slices a representation of ``size`` bytes has."""
    return -(-size // slice_bytes) if size > 0 else 0


def slice_span(r: ByteRange, slice_bytes: int) -> range:
    """Indices of the slices a range touches, in order."""
    return range(r.start // slice_bytes, r.end // slice_bytes + 1)


def slice_range_field(index: int, slice_bytes: int) -> str:
    """The Range field that asks an origin for slice ``index``. The end is not clipped:
    the size may not be known yet, and the origin clips the last slice itself."""
    start = index * slice_bytes
    return f"bytes={start}-{start + slice_bytes - 1}"


def slice_content_range(value: str | None, index: int, slice_bytes: int) -> tuple[int, int] | None:
    """(length of the slice, complete length) when an origin 206's Content-Range is exactly
    slice ``index`` of a representation of known length; None otherwise (another range,
    or "*" for the length: such an answer cannot be sliced)."""
    parsed = parse_content_range(value)
    if parsed is None:
        return None
    first, last, size = parsed
    if size is None:
        return None
    expected = slice_of(index, slice_bytes, size)
    if expected is None or (first, last) != (expected.start, expected.end):
        return None
    return expected.length, size


def parse_unsatisfied_range(value: str | None) -> int | None:
    """The complete length in a 416's Content-Range ("bytes */N"), or None."""
    if not value:
        return None
    unit, _, rest = value.strip(" \t").partition(" ")
    if unit.lower() != "bytes" or not rest.startswith("*/"):
        return None
    digits = rest[2:]
    return int(digits) if digits.isascii() and digits.isdigit() and len(digits) <= 18 else None


def start_hint(value: str | None) -> int:
    """Where a Range field most likely starts reading, before the representation's length
    is known: the lowest first-pos of its int-ranges; 0 when it has a suffix range or is
    absent or invalid (the whole representation, which starts at 0, may be sent then)."""
    if value is None:
        return 0
    unit, eq, range_set = value.strip(" \t").partition("=")
    if not eq or unit.lower() != "bytes":
        return 0
    starts: list[int] = []
    for item in range_set.split(","):
        item = item.strip(" \t")
        if not item:
            continue
        m = _SPEC.fullmatch(item)
        if m is None or not m[1]:
            return 0  # invalid (the whole set is) or a suffix range
        starts.append(int(m[1]))
    return min(starts, default=0)
