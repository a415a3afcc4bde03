"""What an HLS playlist or a DASH manifest is, from a bounded look at its bytes.

A strict scanner of the few tags a cache decides on, not a parser: HLS (RFC 8216) master
or media, VOD (`#EXT-X-PLAYLIST-TYPE:VOD` or `#EXT-X-ENDLIST`) or live, and the target
duration; DASH (ISO/IEC 23009-1) the MPD element's `type` and `minimumUpdatePeriod`.
It reads at most `HEAD_BYTES` from the start (where the header tags are) and `TAIL_BYTES`
from the end (where `#EXT-X-ENDLIST` is), so a playlist of a million lines costs the same
as one of ten. Anything it cannot read with certainty is `None` (unknown): the body is
never changed here, and the caller treats an unknown playlist as the most volatile kind.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from xml.parsers import expat

__all__ = ["HEAD_BYTES", "TAIL_BYTES", "Playlist", "classify_playlist", "iso_duration"]

HEAD_BYTES = 64 * 1024
TAIL_BYTES = 4 * 1024
# RFC 8216 4.3.3.1: decimal-integer, at most 20 digits; a target of 10 digits is 300 years.
_MAX_DIGITS = 10

Kind = Literal["master", "vod", "live"]


@dataclass(frozen=True, slots=True)
class Playlist:
    format: Literal["hls", "dash"]
    kind: Kind
    # Seconds between updates of a live playlist: the HLS target duration, or the DASH
    # minimumUpdatePeriod; None when not given (a master playlist, a VOD one, or a
    # dynamic MPD without minimumUpdatePeriod).
    update_seconds: float | None


class _Malformed(Exception):
    pass


def classify_playlist(body: bytes | memoryview) -> Playlist | None:
    """The playlist `body` holds, or None when it is not one this scanner reads with
    certainty (malformed, truncated head, master and media tags mixed, not a playlist)."""
    head = bytes(body[:HEAD_BYTES])
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n")  # a UTF-8 BOM or blank lines before it
    try:
        if start.startswith(b"#EXTM3U"):
            tail = bytes(body[-TAIL_BYTES:]) if len(body) > HEAD_BYTES else b""
            return _hls(head, tail, whole=len(body) <= HEAD_BYTES)
        if start.startswith(b"<"):
            return _dash(head)
    except _Malformed:
        return None
    return None


def _lines(data: bytes, *, whole: bool) -> list[bytes]:
    lines = data.splitlines()
    if not whole and lines:
        lines.pop()  # cut off by the scan limit: never read half a tag
    return [line.strip(b" \t") for line in lines]


def _hls(head: bytes, tail: bytes, *, whole: bool) -> Playlist | None:
    lines = _lines(head, whole=whole)
    if not lines or lines[0].lstrip(b"\xef\xbb\xbf") != b"#EXTM3U":
        raise _Malformed  # RFC 8216 4.3.1.1: the first line, exactly
    target: int | None = None
    vod = endlist = master = False
    for line in lines[1:]:
        if not line.startswith(b"#EXT"):
            continue  # URIs, comments, blank lines
        name, _, value = line.partition(b":")
        if name == b"#EXT-X-TARGETDURATION":
            if target is not None or not _digits(value):
                raise _Malformed
            target = int(value)
        elif name == b"#EXT-X-PLAYLIST-TYPE":
            if value not in (b"VOD", b"EVENT"):
                raise _Malformed
            vod = value == b"VOD"
        elif name == b"#EXT-X-ENDLIST":
            endlist = True
        elif name in (b"#EXT-X-STREAM-INF", b"#EXT-X-I-FRAME-STREAM-INF"):
            master = True
    if not endlist and tail:
        # ENDLIST closes a finished playlist: look for it in the tail too (whole lines
        # only: the first one may be cut).
        endlist = any(line == b"#EXT-X-ENDLIST" for line in _lines(tail, whole=True)[1:])
    if master:
        if target is not None:
            raise _Malformed  # RFC 8216 4.1: a playlist is either master or media
        return Playlist("hls", "master", None)
    if target is None:
        return None  # a media playlist must name it (RFC 8216 4.3.3.1): not seen
    if vod or endlist:
        return Playlist("hls", "vod", float(target))
    return Playlist("hls", "live", float(target))


def _digits(value: bytes) -> bool:
    return 0 < len(value) <= _MAX_DIGITS and value.isdigit()


class _Root(Exception):
    """The first element was read: stop parsing."""

    def __init__(self, name: str, attrs: dict[str, str]) -> None:
        self.name = name
        self.attrs = attrs


def _dash(head: bytes) -> Playlist | None:
    """The MPD element's attributes, read by expat from the head and nothing after it.
    A DOCTYPE is refused (no entity can expand), as is any other root element."""
    parser = expat.ParserCreate()

    def start(name: str, attrs: dict[str, str]) -> None:
        raise _Root(name, attrs)

    def doctype(*_: object) -> None:
        raise _Malformed

    parser.StartElementHandler = start
    parser.StartDoctypeDeclHandler = doctype
    parser.EntityDeclHandler = doctype
    try:
        parser.Parse(head, False)
    except _Root as root:
        return _mpd(root.name, root.attrs)
    except expat.ExpatError:
        raise _Malformed from None
    return None  # the root element did not start within the head


def _mpd(name: str, attrs: dict[str, str]) -> Playlist | None:
    if name.rpartition(":")[2] != "MPD":
        return None
    kind = attrs.get("type", "static")  # ISO/IEC 23009-1 5.3.1.2: static by default
    if kind == "static":
        return Playlist("dash", "vod", None)
    if kind != "dynamic":
        raise _Malformed
    period = attrs.get("minimumUpdatePeriod")
    if period is None:
        return Playlist("dash", "live", None)
    seconds = iso_duration(period)
    if seconds is None:
        raise _Malformed
    return Playlist("dash", "live", seconds)


# xs:duration as MPDs use it (PT2S, PT0.5S, PT1M30S, P0Y0M0DT0H0M2.000S); no negatives,
# years and months refused (no fixed length), each field at most 10 digits.
_DURATION = re.compile(
    r"P(?:0+Y)?(?:0+M)?(?:(\d{1,10})D)?"
    r"(?:T(?=\d)(?:(\d{1,10})H)?(?:(\d{1,10})M)?(?:(\d{1,10}(?:\.\d{1,9})?)S)?)?",
    re.ASCII,
)


def iso_duration(value: str) -> float | None:
    """Seconds of an xs:duration, or None when it is not one (or has years/months)."""
    m = _DURATION.fullmatch(value.strip())
    if m is None or value.strip() in ("P", "PT"):
        return None
    days, hours, minutes, seconds = (float(g) if g else 0.0 for g in m.groups())
    return days * 86400 + hours * 3600 + minutes * 60 + seconds
