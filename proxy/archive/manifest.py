"""The mod_zip manifest: the body of an origin answer carrying `X-Archive-Files: zip`.

One member per line, fields separated by single spaces:

    <crc32 in hex, or -> <size in bytes> <location> <name>

`location` is a percent-encoded path on this host (with an optional query), fetched like
any request for it; `name` (the rest of the line, spaces allowed) is the member's name in
the archive, UTF-8. Empty lines are skipped, CRLF is accepted. Everything that could make
the archive unsafe to unpack or point the proxy elsewhere is refused here, so the
archive is never started on a manifest it could not finish: another host or scheme, a
name that climbs out of the folder it is unpacked into (`..`, an absolute path, a drive,
a backslash), control characters, a name used twice, more members than the route allows.
Pure: fuzzed in tests/unit/archive/test_manifest.py."""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_NAME_BYTES = 0xFFFF  # the ZIP name length field
MAX_SIZE = 1 << 62  # a member's size; the archive's length stays a 64-bit value
_CRC = re.compile(r"[0-9A-Fa-f]{1,8}\Z")
_SIZE = re.compile(r"[0-9]{1,19}\Z")
_LOCATION = re.compile(r"/[!-~]*\Z")  # visible ASCII, starting with one slash
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DRIVE = re.compile(r"[A-Za-z]:")


class BadManifest(ValueError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Item:
    crc: int | None
    size: int
    path: str  # percent-encoded, as the manifest gives it
    query: str
    name: bytes  # UTF-8


def parse_manifest(body: bytes, max_entries: int) -> list[Item]:
    """The members, in order; BadManifest with a short reason (line numbers from 1)."""
    items: list[Item] = []
    names: set[bytes] = set()
    for number, raw in enumerate(body.split(b"\n"), 1):
        line = raw[:-1] if raw.endswith(b"\r") else raw
        if not line.strip():
            continue
        if len(items) == max_entries:
            raise BadManifest(f"more than {max_entries} entries")
        try:
            item = parse_line(line)
        except BadManifest as exc:
            raise BadManifest(f"line {number}: {exc.reason}") from None
        if item.name in names:
            raise BadManifest(f"line {number}: name given twice")
        names.add(item.name)
        items.append(item)
    if not items:
        raise BadManifest("no entries")
    return items


def parse_line(line: bytes) -> Item:
    fields = line.split(b" ", 3)
    if len(fields) != 4:
        raise BadManifest("expected '<crc32|-> <size> <location> <name>'")
    try:
        crc_text, size_text, location = (f.decode("ascii") for f in fields[:3])
    except UnicodeDecodeError:
        raise BadManifest("non-ascii crc, size or location") from None
    if crc_text == "-":
        crc = None
    elif _CRC.match(crc_text):
        crc = int(crc_text, 16)
    else:
        raise BadManifest("bad crc32")
    if not _SIZE.match(size_text) or int(size_text) > MAX_SIZE:
        raise BadManifest("bad size")
    path, _, query = location.partition("?")
    if not _LOCATION.match(location) or path.startswith("//") or "#" in location:
        raise BadManifest("location must be a path on this host")
    return Item(crc, int(size_text), path, query, check_name(fields[3]))


def check_name(name: bytes) -> bytes:
    """A relative file name that stays inside the folder the archive is unpacked into."""
    try:
        text = name.decode("utf-8")
    except UnicodeDecodeError:
        raise BadManifest("name is not UTF-8") from None
    if not text or len(name) > MAX_NAME_BYTES:
        raise BadManifest("bad name length")
    if _CONTROL.search(text) or "\\" in text:
        raise BadManifest("control character or backslash in name")
    segments = text.split("/")
    if text.startswith("/") or _DRIVE.match(text):
        raise BadManifest("absolute name")
    if any(s in ("", ".", "..") for s in segments):
        raise BadManifest("name with an empty, '.' or '..' segment")
    return name
