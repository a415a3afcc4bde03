"""The URIs inside an HLS playlist or a DASH manifest, found and replaced in one pass.

`rewrite_hls` and `rewrite_dash` call `replace(uri, base, template)` for every URI a
player would fetch and put its answer in place (None: leave that URI as it is). They
return the whole new text, or None when the input is not a playlist they can read with
certainty (no `#EXTM3U`, an attribute list that does not parse, XML that is not
well-formed, bytes that are not UTF-8), so a caller relays such input untouched and never
sends a half-rewritten body. Every other byte (tags, comments, line endings, attribute
order, XML formatting) is kept as it was.

HLS (RFC 8216 and its LL-HLS revision): URI lines (variant playlists, segments, parts of
EXT-X-STREAM-INF) and the URI attribute of EXT-X-KEY, EXT-X-SESSION-KEY, EXT-X-MAP,
EXT-X-MEDIA, EXT-X-I-FRAME-STREAM-INF, EXT-X-PART, EXT-X-PRELOAD-HINT,
EXT-X-RENDITION-REPORT and EXT-X-SESSION-DATA. `base` is always None there: HLS URIs are
relative to the playlist itself.

DASH (ISO/IEC 23009-1): SegmentTemplate@media, @initialization and @index (templates:
`template` is True, the URI may hold `$Number$`-style identifiers), SegmentURL@media and
@index, Initialization@sourceURL, RepresentationIndex@sourceURL, and BaseURL text that
names a file. A BaseURL ending in "/" is a directory nothing is fetched from: it is left
as written (players join it with the segment names, some by plain concatenation, which a
query would break) but it becomes the `base` the URIs below it resolve against: the
manifest's own URL, then each level's first BaseURL, resolved in turn (RFC 3986 5.2).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import urljoin

# (uri as written, decoded from XML; the absolute base it resolves against or None for
# the document's own URL; is it a DASH template) -> the replacement, or None.
Replace = Callable[[str, str | None, bool], str | None]

HLS_TYPES = frozenset(
    {
        "application/vnd.apple.mpegurl",
        "application/x-mpegurl",
        "audio/mpegurl",
        "audio/x-mpegurl",
    }
)
DASH_TYPES = frozenset({"application/dash+xml"})
HLS_EXTENSIONS = (".m3u8", ".m3u")
DASH_EXTENSIONS = (".mpd",)

URI_TAGS = frozenset(
    {
        "#EXT-X-KEY",
        "#EXT-X-SESSION-KEY",
        "#EXT-X-MAP",
        "#EXT-X-MEDIA",
        "#EXT-X-I-FRAME-STREAM-INF",
        "#EXT-X-PART",
        "#EXT-X-PRELOAD-HINT",
        "#EXT-X-RENDITION-REPORT",
        "#EXT-X-SESSION-DATA",
    }
)
# One attribute of an attribute list (RFC 8216 4.2): NAME=quoted-string or NAME=token.
_ATTRIBUTE = re.compile(r'([A-Z0-9-]+)=("[^"\r\n]*"|[^",\s]*)')


def playlist_kind(content_type: str | None, path: str) -> str | None:
    """ "hls", "dash" or None: by media type first (an origin's word for what the body
    is), else by the path's extension."""
    if content_type:
        media_type = content_type.partition(";")[0].strip().lower()
        if media_type in HLS_TYPES:
            return "hls"
        if media_type in DASH_TYPES:
            return "dash"
    return kind_by_path(path)


def kind_by_path(path: str) -> str | None:
    lowered = path.lower()
    if lowered.endswith(HLS_EXTENSIONS):
        return "hls"
    if lowered.endswith(DASH_EXTENSIONS):
        return "dash"
    return None


def decode_text(body: bytes) -> str | None:
    """UTF-8 text without a byte-order mark (RFC 8216 4.1 wants UTF-8 without one, but
    origins send it), or None."""
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return None


# -- HLS ------------------------------------------------------------------------------------


def rewrite_hls(text: str, replace: Replace, *, max_uris: int | None = None) -> str | None:
    """`text` with each URI replaced, or None when it is not an HLS playlist (or holds
    more than `max_uris` URIs)."""
    body = text[1:] if text.startswith("\ufeff") else text
    if not body.startswith("#EXTM3U"):
        return None
    # Only changed lines are copied: memory stays proportional to the URIs, not to the
    # lines (a body of a million comment lines costs one scan).
    out: list[str] = []
    copied = 0  # text[:copied] is in `out`
    uris = 0
    pos = 1 if text.startswith("\ufeff") else 0
    size = len(text)
    while pos < size:
        end = text.find("\n", pos)  # RFC 8216 4.1: lines end with LF or CR LF
        if end < 0:
            end = size
        stop = end - 1 if end > pos and text[end - 1] == "\r" else end
        content = text[pos:stop]
        line_start, pos = pos, end + 1
        if not content or (content[0] == "#" and not content.startswith("#EXT")):
            continue
        if content[0] == "#":
            new = _hls_tag(content, replace)
            if new is None:
                return None
            if new is content:
                continue
        elif not content.strip():
            continue
        else:
            stripped = content.strip()
            uri = replace(stripped, None, False)
            if uri is None:
                continue
            new = content.replace(stripped, uri, 1)
        uris += 1
        if max_uris is not None and uris > max_uris:
            return None
        out.append(text[copied:line_start])
        out.append(new)
        copied = stop
    if not out:
        return text
    out.append(text[copied:])
    return "".join(out)


def _hls_tag(line: str, replace: Replace) -> str | None:
    """The tag line with its URI attribute replaced; the same object when nothing
    changed; None when a URI-bearing tag's attribute list does not parse."""
    name, colon, attributes = line.partition(":")
    if name not in URI_TAGS:
        return line
    if not colon:
        return None
    pos = 0
    found: tuple[int, int] | None = None
    while pos < len(attributes):
        match = _ATTRIBUTE.match(attributes, pos)
        if match is None:
            return None
        if match.group(1) == "URI":
            value = match.group(2)
            if found is not None or len(value) < 2 or value[0] != '"':
                return None  # a second URI, or an unquoted one: not RFC 8216
            found = (match.start(2) + 1, match.end(2) - 1)
        pos = match.end()
        if pos < len(attributes):
            if attributes[pos] != ",":
                return None
            pos += 1
    if found is None:
        return line  # e.g. EXT-X-KEY:METHOD=NONE
    start, end = found
    uri = replace(attributes[start:end], None, False)
    if uri is None:
        return line
    if '"' in uri or "\n" in uri or "\r" in uri:
        raise ValueError("a replacement URI cannot hold a quote or a line break")
    return f"{name}:{attributes[:start]}{uri}{attributes[end:]}"


# -- DASH -----------------------------------------------------------------------------------

_NAME = r"[A-Za-z_][\w.:-]*"
_MARKUP = re.compile(
    rf"""
    (?P<comment><!--.*?-->)
  | (?P<cdata><!\[CDATA\[.*?\]\]>)
  | (?P<pi><\?.*?\?>)
  | (?P<doctype><!DOCTYPE[^<>\[]*>)
  | </(?P<end>{_NAME})\s*>
  | <(?P<start>{_NAME})(?P<attrs>(?:\s+{_NAME}\s*=\s*(?:"[^"<]*"|'[^'<]*'))*)\s*(?P<empty>/?)>
    """,
    re.DOTALL | re.VERBOSE,
)
_ATTR = re.compile(rf"""(\s+)({_NAME})(\s*=\s*)("[^"<]*"|'[^'<]*')""")
_ENTITY = re.compile(r"&(?:(amp|lt|gt|quot|apos)|#([0-9]{1,7})|#x([0-9A-Fa-f]{1,6}));")
_ENTITIES = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'"}
# URI attributes per element (local names); templates are SegmentTemplate's.
DASH_ATTRIBUTES: dict[str, frozenset[str]] = {
    "SegmentTemplate": frozenset({"media", "initialization", "index"}),
    "SegmentURL": frozenset({"media", "index"}),
    "Initialization": frozenset({"sourceURL"}),
    "RepresentationIndex": frozenset({"sourceURL"}),
}


class _Malformed(Exception):
    pass


def _unescape(text: str) -> str:
    """XML character data with the predefined entities and character references
    decoded; _Malformed for any other "&"."""
    if "&" not in text:
        return text
    pos = 0
    out: list[str] = []
    for match in _ENTITY.finditer(text):
        if "&" in text[pos : match.start()]:
            raise _Malformed
        out.append(text[pos : match.start()])
        named, dec, hexa = match.groups()
        if named:
            out.append(_ENTITIES[named])
        else:
            code = int(dec) if dec else int(hexa, 16)
            if code > 0x10FFFF or code == 0:
                raise _Malformed
            out.append(chr(code))
        pos = match.end()
    if "&" in text[pos:]:
        raise _Malformed
    out.append(text[pos:])
    return "".join(out)


def _escape(text: str, quote: str) -> str:
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace(quote, "&quot;" if quote == '"' else "&apos;")


def _local(name: str) -> str:
    return name.rpartition(":")[2]


def rewrite_dash(
    text: str, document_url: str, replace: Replace, *, max_uris: int | None = None
) -> str | None:
    """`text` with each URI replaced, or None when it is not well-formed XML with an
    MPD root (or holds more than `max_uris` URIs). `document_url` is the manifest's own
    absolute URL, the first base."""
    try:
        return _rewrite_dash(text, document_url, replace, max_uris)
    except _Malformed:
        return None


class _Level:
    """One open element: its name, the base its children resolve against, and the
    base it inherited (what its own BaseURL resolves against)."""

    __slots__ = ("base", "inherited", "name", "rebased")

    def __init__(self, name: str, base: str) -> None:
        self.name = name
        self.base = base
        self.inherited = base
        self.rebased = False


def _rewrite_dash(
    text: str, document_url: str, replace: Replace, max_uris: int | None
) -> str | None:
    out: list[str] = []
    stack: list[_Level] = []
    pos = 0
    root_seen = False
    changed = False
    uris = 0
    base_url_at: int | None = None  # where an open BaseURL's text starts
    while True:
        lt = text.find("<", pos)
        chunk = text[pos:] if lt < 0 else text[pos:lt]
        if not stack and chunk.strip():
            raise _Malformed  # text outside the root element
        if lt < 0:
            if stack or not root_seen:
                raise _Malformed
            out.append(chunk)
            break
        match = _MARKUP.match(text, lt)
        if match is None:
            raise _Malformed
        if base_url_at is None:
            out.append(chunk)
        pos = match.end()
        token = match.group(0)
        name = match.group("start")
        if name:
            if base_url_at is not None:
                raise _Malformed  # markup inside a BaseURL
            local = _local(name)
            if not stack:
                if root_seen or local != "MPD":
                    raise _Malformed
                root_seen = True
            base = stack[-1].base if stack else document_url
            attrs = match.group("attrs")
            wanted = DASH_ATTRIBUTES.get(local)
            if wanted and attrs:
                new_attrs, count = _attributes(attrs, wanted, local, base, replace)
                uris += count
                if new_attrs is not attrs:
                    token = token.replace(attrs, new_attrs, 1)
                    changed = True
            out.append(token)
            if not match.group("empty"):
                stack.append(_Level(name, base))
                if local == "BaseURL":
                    base_url_at = pos
        elif match.group("end"):
            if not stack or stack[-1].name != match.group("end"):
                raise _Malformed
            if base_url_at is not None:
                raw = text[base_url_at:lt]
                new_raw = _base_url(raw, stack, replace)
                uris += 1
                if new_raw is not raw:
                    changed = True
                out.append(new_raw)
                base_url_at = None
            stack.pop()
            out.append(token)
        else:
            if base_url_at is not None or (not stack and match.group("cdata")):
                raise _Malformed  # a comment or CDATA inside a BaseURL, or outside the root
            out.append(token)
        if max_uris is not None and uris > max_uris:
            return None
    return "".join(out) if changed else text


def _attributes(
    attrs: str, wanted: frozenset[str], local: str, base: str, replace: Replace
) -> tuple[str, int]:
    pieces: list[str] = []
    pos = 0
    count = 0
    changed = False
    template = local == "SegmentTemplate"
    for match in _ATTR.finditer(attrs):
        space, name, eq, quoted = match.groups()
        pieces.append(attrs[pos : match.start()])
        pos = match.end()
        if _local(name) in wanted:
            count += 1
            quote = quoted[0]
            uri = _unescape(quoted[1:-1])
            new = replace(uri, base, template) if uri else None
            if new is not None:
                changed = True
                pieces.append(f"{space}{name}{eq}{quote}{_escape(new, quote)}{quote}")
                continue
        pieces.append(match.group(0))
    pieces.append(attrs[pos:])
    return ("".join(pieces) if changed else attrs), count


def _base_url(raw: str, stack: list[_Level], replace: Replace) -> str:
    """A BaseURL's text: the base of its parent's children from here on (the first
    BaseURL of a level counts), rewritten when it names a file."""
    uri = _unescape(raw).strip()
    parent = stack[-2] if len(stack) > 1 else None
    inherited = parent.inherited if parent is not None else stack[-1].inherited
    if parent is not None and not parent.rebased and uri:
        parent.base = urljoin(inherited, uri)
        parent.rebased = True
    if not uri or uri.endswith("/"):
        return raw
    new = replace(uri, inherited, False)
    if new is None:
        return raw
    lead = raw[: len(raw) - len(raw.lstrip())]
    tail = raw[len(raw.rstrip()) :]
    return lead + _escape(new, '"') + tail
