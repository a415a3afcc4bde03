"""The byte layout of a stored-method ZIP archive, computed from the members' names and
sizes alone, so its length is known before any member is read and any byte range of it
can be produced on its own (Range, resume), as nginx's mod_zip does.

An archive is a run of parts: per member a local header, its bytes as they are (method 0,
"stored") and, when its CRC-32 was not given up front, a data descriptor after them; then
the central directory and its end records. ZIP64 fields appear exactly where a value does
not fit in 32 bits (a member of 4 GiB or more, an offset past 4 GiB, 65,535 members or
more), so small archives stay readable by old tools. Pure: no I/O, no clock."""

from __future__ import annotations

import bisect
import struct
import time
from dataclasses import dataclass
from enum import Enum

U16 = 0xFFFF
U32 = 0xFFFFFFFF
FLAG_DESCRIPTOR = 0x0008  # bit 3: CRC and sizes follow the data
FLAG_UTF8 = 0x0800  # bit 11: names are UTF-8
VERSION = 20  # 2.0: stored members, directories
VERSION_ZIP64 = 45  # 4.5: ZIP64 extensions
MADE_BY_UNIX = 3 << 8
FILE_MODE = 0o100644 << 16  # a regular file, rw-r--r--
LOCAL_FIXED = 30
CENTRAL_FIXED = 46
END_FIXED = 22
ZIP64_END = 56
ZIP64_LOCATOR = 20
# 1980-01-01 00:00, the earliest DOS date: archives without a Last-Modified
DOS_EPOCH = (0, (0 << 9) | (1 << 5) | 1)


class Kind(Enum):
    LOCAL = "local"
    BODY = "body"
    DESCRIPTOR = "descriptor"
    CENTRAL = "central"  # the central directory and the end records, one part


@dataclass(frozen=True, slots=True)
class Member:
    name: bytes  # UTF-8
    size: int
    crc: int | None  # None: computed while streaming, written in a data descriptor

    @property
    def zip64(self) -> bool:
        return self.size >= U32


@dataclass(frozen=True, slots=True)
class Part:
    start: int
    end: int  # exclusive
    kind: Kind
    index: int  # the member's (-1 for CENTRAL)


class Layout:
    """Offsets of every part; the header bytes on demand (`header`)."""

    def __init__(self, members: list[Member], dos_time: tuple[int, int] = DOS_EPOCH) -> None:
        self.members = members
        self.time, self.date = dos_time
        self.offsets: list[int] = []  # each member's local header offset
        parts: list[Part] = []
        pos = 0
        for i, m in enumerate(members):
            self.offsets.append(pos)
            pos = _add(parts, pos, len(_local(m, 0, 0)), Kind.LOCAL, i)
            pos = _add(parts, pos, m.size, Kind.BODY, i)
            if m.crc is None:
                pos = _add(parts, pos, 24 if m.zip64 else 16, Kind.DESCRIPTOR, i)
        self.central_start = pos
        self.central_size = sum(
            CENTRAL_FIXED + len(m.name) + len(self._extra(i)) for i, m in enumerate(members)
        )
        tail = END_FIXED + (ZIP64_END + ZIP64_LOCATOR if self._zip64_end else 0)
        _add(parts, pos, self.central_size + tail, Kind.CENTRAL, -1)
        self.parts = parts
        self.starts = [p.start for p in parts]
        self.size = parts[-1].end

    @property
    def crcs_known(self) -> bool:
        """Every CRC given: the whole archive is fixed by the manifest, so a range of it
        can be made alone."""
        return all(m.crc is not None for m in self.members)

    @property
    def _zip64_end(self) -> bool:
        return len(self.members) >= U16 or self.central_start >= U32 or self.central_size >= U32

    def spans(self, start: int, end: int) -> list[tuple[Part, int, int]]:
        """The parts bytes [start, end) cover, each with the covered range relative to
        the part."""
        out = []
        i = max(0, bisect.bisect_right(self.starts, start) - 1)
        while i < len(self.parts) and self.parts[i].start < end:
            p = self.parts[i]
            lo, hi = max(start, p.start), min(end, p.end)
            if lo < hi:
                out.append((p, lo - p.start, hi - p.start))
            i += 1
        return out

    def header(self, part: Part, crcs: list[int | None]) -> bytes:
        """The bytes of a non-BODY part; `crcs` holds what streaming computed for the
        members without a given CRC (needed for their descriptors and the directory)."""
        if part.kind is Kind.LOCAL:
            m = self.members[part.index]
            return _local(m, self.time, self.date)
        if part.kind is Kind.DESCRIPTOR:
            m = self.members[part.index]
            crc = crcs[part.index] or 0
            if m.zip64:
                return struct.pack("<IIQQ", 0x08074B50, crc, m.size, m.size)
            return struct.pack("<IIII", 0x08074B50, crc, m.size, m.size)
        return self.central(crcs)

    def central(self, crcs: list[int | None]) -> bytes:
        out = bytearray()
        for i, m in enumerate(self.members):
            crc = m.crc if m.crc is not None else (crcs[i] or 0)
            extra = self._extra(i)
            big = m.zip64 or self.offsets[i] >= U32
            out += struct.pack(
                "<IHHHHHHIIIHHHHHII",
                0x02014B50,
                MADE_BY_UNIX | (VERSION_ZIP64 if big else VERSION),
                VERSION_ZIP64 if big else VERSION,
                _flags(m),
                0,
                self.time,
                self.date,
                crc,
                U32 if m.zip64 else m.size,
                U32 if m.zip64 else m.size,
                len(m.name),
                len(extra),
                0,
                0,
                0,
                FILE_MODE,
                min(self.offsets[i], U32),
            )
            out += m.name + extra
        count, cd_start, cd_size = len(self.members), self.central_start, self.central_size
        if self._zip64_end:
            end64 = cd_start + cd_size
            out += struct.pack(
                "<IQHHIIQQQQ",
                0x06064B50,
                ZIP64_END - 12,
                VERSION_ZIP64,
                VERSION_ZIP64,
                0,
                0,
                count,
                count,
                cd_size,
                cd_start,
            )
            out += struct.pack("<IIQI", 0x07064B50, 0, end64, 1)
        out += struct.pack(
            "<IHHHHIIH",
            0x06054B50,
            0,
            0,
            min(count, U16),
            min(count, U16),
            min(cd_size, U32),
            min(cd_start, U32),
            0,
        )
        return bytes(out)

    def _extra(self, i: int) -> bytes:
        """The central directory's ZIP64 field: the sizes and the offset that do not
        fit, in the order APPNOTE 4.5.3 gives."""
        m = self.members[i]
        values = [m.size, m.size] if m.zip64 else []
        if self.offsets[i] >= U32:
            values.append(self.offsets[i])
        if not values:
            return b""
        return struct.pack(f"<HH{len(values)}Q", 0x0001, 8 * len(values), *values)


def _add(parts: list[Part], pos: int, length: int, kind: Kind, index: int) -> int:
    if length:
        parts.append(Part(pos, pos + length, kind, index))
    return pos + length


def _flags(m: Member) -> int:
    return FLAG_UTF8 | (FLAG_DESCRIPTOR if m.crc is None else 0)


def _local(m: Member, dos_clock: int, dos_date: int) -> bytes:
    """A local header. Its length depends on the member alone (never on its offset),
    which is what lets the layout be computed before anything is read."""
    if m.crc is None:  # sizes and CRC come after the data (zero here, APPNOTE 4.4.4)
        crc, size = 0, (U32 if m.zip64 else 0)
        extra = struct.pack("<HHQQ", 0x0001, 16, 0, 0) if m.zip64 else b""
    else:
        crc, size = m.crc, (U32 if m.zip64 else m.size)
        extra = struct.pack("<HHQQ", 0x0001, 16, m.size, m.size) if m.zip64 else b""
    version = VERSION_ZIP64 if m.zip64 else VERSION
    head = struct.pack(
        "<IHHHHHIIIHH",
        0x04034B50,
        version,
        _flags(m),
        0,
        dos_clock,
        dos_date,
        crc,
        size,
        size,
        len(m.name),
        len(extra),
    )
    return head + m.name + extra


def dos_time(epoch: float | None) -> tuple[int, int]:
    """(DOS time, DOS date) of a Unix time in UTC; the DOS epoch for none or earlier."""
    if epoch is None or epoch < 315532800:  # 1980-01-01
        return DOS_EPOCH
    t = time.gmtime(min(epoch, 4354819199))  # 2107-12-31, the last DOS year
    return (
        (t.tm_hour << 11) | (t.tm_min << 5) | (t.tm_sec // 2),
        ((t.tm_year - 1980) << 9) | (t.tm_mon << 5) | t.tm_mday,
    )
