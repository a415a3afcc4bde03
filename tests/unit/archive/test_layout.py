"""proxy/archive/layout.py: the archive's layout from names and sizes alone."""

from __future__ import annotations

import io
import zipfile
import zlib
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.archive.layout import Kind, Layout, Member, dos_time


def body_of(index: int, size: int) -> bytes:
    """A member's bytes, different per member and position."""
    pattern = bytes((index * 31 + i) % 251 for i in range(min(size, 251)))
    return (pattern * (size // 251 + 1))[:size] if size else b""


def crcs_of(members: list[Member]) -> list[int | None]:
    """What streaming computes: the CRCs the manifest did not give."""
    return [
        None if m.crc is not None else zlib.crc32(body_of(i, m.size)) for i, m in enumerate(members)
    ]


def render(layout: Layout, start: int, end: int) -> bytes:
    """Bytes [start, end) made from the parts, as the proxy makes them."""
    crcs = crcs_of(layout.members)
    out = bytearray()
    for part, lo, hi in layout.spans(start, end):
        if part.kind is Kind.BODY:
            out += body_of(part.index, layout.members[part.index].size)[lo:hi]
        else:
            out += layout.header(part, crcs)[lo:hi]
    return bytes(out)


def members_from(spec: list[tuple[int, bool]]) -> list[Member]:
    return [
        Member(f"dir/file-{i}.bin".encode(), size, zlib.crc32(body_of(i, size)) if given else None)
        for i, (size, given) in enumerate(spec)
    ]


SPECS = st.lists(st.tuples(st.integers(0, 3000), st.booleans()), min_size=1, max_size=6)


@settings(max_examples=200, deadline=None)
@given(SPECS, st.data())
def test_any_range_equals_the_same_range_of_the_whole(spec, data) -> None:
    layout = Layout(members_from(spec))
    whole = render(layout, 0, layout.size)
    assert len(whole) == layout.size
    start = data.draw(st.integers(0, layout.size))
    end = data.draw(st.integers(start, layout.size))
    assert render(layout, start, end) == whole[start:end]


@settings(max_examples=60, deadline=None)
@given(SPECS)
def test_zipfile_reads_every_member(spec) -> None:
    members = members_from(spec)
    layout = Layout(members, dos_time(1_700_000_000))
    with zipfile.ZipFile(io.BytesIO(render(layout, 0, layout.size))) as archive:
        assert archive.testzip() is None
        infos = archive.infolist()
        assert [i.filename for i in infos] == [m.name.decode() for m in members]
        for i, info in enumerate(infos):
            assert info.compress_type == zipfile.ZIP_STORED
            assert archive.read(info) == body_of(i, members[i].size)
            assert info.date_time == (2023, 11, 14, 22, 13, 20)


def test_utf8_names_are_flagged() -> None:
    name = "été/ü.txt".encode()
    layout = Layout([Member(name, 3, zlib.crc32(body_of(0, 3)))])
    with zipfile.ZipFile(io.BytesIO(render(layout, 0, layout.size))) as archive:
        assert archive.namelist() == ["été/ü.txt"]


class Virtual(io.RawIOBase):
    """A seekable view of an archive far larger than memory, made range by range."""

    def __init__(self, layout: Layout) -> None:
        self.layout, self.pos = layout, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self.pos, 2: self.layout.size}[whence]
        self.pos = base + offset
        return self.pos

    def tell(self) -> int:
        return self.pos

    def readinto(self, buffer: Any) -> int:
        data = render(self.layout, self.pos, min(self.layout.size, self.pos + len(buffer)))
        buffer[: len(data)] = data
        self.pos += len(data)
        return len(data)


def test_zip64_past_four_gib() -> None:
    """A 4.5 GiB member (its bytes are never made here) and one after it, past 4 GiB:
    ZIP64 sizes and offsets, read back by zipfile."""
    big = 4 * 1024**3 + 512 * 1024**2
    members = [
        Member(b"big.bin", big, 0x12345678),
        Member(b"after.txt", 1000, zlib.crc32(body_of(1, 1000))),
        Member(b"after-descriptor.txt", 700, None),
    ]
    layout = Layout(members)
    assert layout.size > 4 * 1024**3
    with zipfile.ZipFile(Virtual(layout)) as archive:
        infos = archive.infolist()
        assert [i.file_size for i in infos] == [big, 1000, 700]
        assert infos[1].header_offset > 0xFFFFFFFF
        assert archive.read("after.txt") == body_of(1, 1000)
        assert archive.read("after-descriptor.txt") == body_of(2, 700)


def test_zip64_end_records_for_many_members() -> None:
    members = [Member(b"f%d" % i, 0, 0) for i in range(70_000)]
    layout = Layout(members)
    with zipfile.ZipFile(io.BytesIO(render(layout, 0, layout.size))) as archive:
        assert len(archive.infolist()) == 70_000


def test_length_is_exact_before_anything_is_read() -> None:
    members = members_from([(10, True), (20, False)])
    layout = Layout(members)
    assert layout.size == len(render(layout, 0, layout.size))
    assert not layout.crcs_known
    assert Layout(members_from([(10, True)])).crcs_known
