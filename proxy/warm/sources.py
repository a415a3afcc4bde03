"""What a warm job is asked to fetch: a JSON list of URLs and playlists, a sitemap, and
the URIs inside a playlist. Pure functions: each reads its input whole (the caller bounds
its size), refuses what it cannot read with certainty (`SourceError`, a short reason safe
to show) and never returns more than it was allowed to.

Sitemaps (sitemaps.org 0.9) are read by expat with every DOCTYPE and entity declaration
refused, so no entity expands (the billion laughs) and nothing external is loaded; only
`<urlset>` documents are taken, their `<url><loc>` texts in order."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urljoin, urlsplit
from xml.parsers import expat

import orjson

from proxy.http.authority import BadAuthority, parse_authority
from proxy.http.playlist_uris import decode_text, playlist_kind, rewrite_dash, rewrite_hls

# A URL longer than this is refused (sitemaps.org caps <loc> at 2,048 characters).
MAX_URL = 8192
XML_TYPES = frozenset({"application/xml", "text/xml"})

Source = Literal["urls", "sitemap", "playlist"]


class SourceError(ValueError):
    """The input is refused: `status` (400 or 413) and a short reason."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass(frozen=True, slots=True)
class WarmRequest:
    """URLs to fetch as they are, and playlists to fetch with everything they list."""

    source: Source
    urls: tuple[str, ...] = ()
    playlists: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Target:
    """A URL a warm job may fetch: http(s), a valid authority, no user info."""

    scheme: str
    authority: str  # host[:port] as written, the Host field of the request
    host: str  # lower-case, without port: what routes match
    path: str  # as written (still escaped), "/" when empty
    query: str


def parse_body(body: bytes, content_type: str | None, max_urls: int) -> WarmRequest:
    """A `POST /_warm` body: a sitemap (XML), or JSON
    ``{"urls": [...], "playlists": [...]}`` (``"playlist": "<url>"`` for one)."""
    media_type = (content_type or "").partition(";")[0].strip().lower()
    if media_type in XML_TYPES or body.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
        return WarmRequest("sitemap", urls=tuple(parse_sitemap(body, max_urls)))
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise SourceError("body is neither JSON nor a sitemap") from None
    if not isinstance(data, dict):
        raise SourceError('JSON body must be an object: {"urls": [...]}')
    unknown = set(data) - {"urls", "playlists", "playlist"}
    if unknown:
        raise SourceError(f"unknown field {sorted(unknown)[0]!r}")
    urls = _strings(data.get("urls", []), "urls")
    playlists = _strings(data.get("playlists", []), "playlists")
    if "playlist" in data:
        playlists += _strings([data["playlist"]], "playlist")
    if not urls and not playlists:
        raise SourceError("nothing to warm: give urls or playlists")
    if len(urls) + len(playlists) > max_urls:
        raise SourceError(f"more than {max_urls} URLs", 413)
    return WarmRequest("playlist" if playlists else "urls", tuple(urls), tuple(playlists))


def _strings(value: object, name: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SourceError(f"{name}: must be a list of URLs")
    return [v.strip() for v in value if v.strip()]


class _Stop(Exception):
    pass


def parse_sitemap(body: bytes, max_urls: int) -> list[str]:
    """The `<loc>` of each `<url>` of a `<urlset>`, in order; SourceError for anything
    else: a DOCTYPE or entity declaration, XML that is not well-formed, another root
    (a sitemap index), more than `max_urls` URLs or one longer than `MAX_URL`."""
    parser = expat.ParserCreate()
    urls: list[str] = []
    path: list[str] = []
    text: list[str] = []
    problem: list[SourceError] = []

    def refuse(error: SourceError) -> None:
        problem.append(error)
        raise _Stop

    def start(name: str, _attrs: dict[str, str]) -> None:
        local = name.rpartition(":")[2]
        if not path and local != "urlset":
            what = "a sitemap index: post the sitemaps it lists" if local == "sitemapindex" else ""
            refuse(SourceError(what or f"not a sitemap: root element {local[:40]!r}"))
        path.append(local)
        if path[1:] == ["url", "loc"]:
            text.clear()

    def end(_name: str) -> None:
        if path[1:] == ["url", "loc"]:
            loc = "".join(text).strip()
            if len(urls) >= max_urls:
                refuse(SourceError(f"more than {max_urls} URLs", 413))
            if loc:
                urls.append(loc)
        path.pop()

    def data(chunk: str) -> None:
        if path[1:] == ["url", "loc"]:
            text.append(chunk)
            if sum(map(len, text)) > MAX_URL:
                refuse(SourceError("a <loc> is too long"))

    def declaration(*_: object) -> None:
        refuse(SourceError("DOCTYPE and entity declarations are refused"))

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = data
    parser.StartDoctypeDeclHandler = declaration
    parser.EntityDeclHandler = declaration
    try:
        parser.Parse(body, True)
    except _Stop:
        raise problem[0] from None
    except expat.ExpatError as exc:
        reason = expat.errors.messages[exc.code]
        raise SourceError(f"sitemap is not well-formed XML ({reason})") from None
    return urls


def check_url(url: str) -> Target:
    """The parts of an absolute http(s) URL a warm job fetches, or SourceError."""
    if len(url) > MAX_URL:
        raise SourceError("URL too long")
    if not url.isascii() or any(c <= " " or c == "\x7f" for c in url):
        raise SourceError("URL must be ASCII without spaces or controls (percent-encode them)")
    try:
        parts = urlsplit(url)
    except ValueError:
        raise SourceError("not a URL") from None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SourceError("not an absolute http(s) URL")
    if "@" in parts.netloc:
        raise SourceError("URL holds user info")
    try:
        authority = parse_authority(parts.netloc)
    except BadAuthority as exc:
        raise SourceError(f"bad host: {exc.reason}") from None
    return Target(parts.scheme, parts.netloc, authority.host, parts.path or "/", parts.query)


class _Enough(Exception):
    pass


def playlist_uris(
    body: bytes, url: str, content_type: str | None, max_uris: int
) -> list[str] | None:
    """The absolute URLs an HLS playlist or a DASH manifest at `url` lists (renditions,
    segments, keys, init sections), first seen first and at most `max_uris` of them;
    None when the body is not a playlist read with certainty. DASH templates
    (`$Number$`, `$Time$`) name no file until a player expands them: only a template
    without identifiers (one file) is taken."""
    kind = playlist_kind(content_type, urlsplit(url).path)
    text = decode_text(body)
    if kind is None or text is None:
        return None
    found: dict[str, None] = {}

    def collect(uri: str, base: str | None, template: bool) -> None:
        if template and "$" in uri:
            return None
        absolute = urljoin(base or url, uri).partition("#")[0]
        if urlsplit(absolute).scheme in ("http", "https"):
            found[absolute] = None
            if len(found) >= max_uris:
                raise _Enough  # the rest is not read
        return None

    try:
        read = rewrite_hls(text, collect) if kind == "hls" else rewrite_dash(text, url, collect)
    except _Enough:
        return list(found)
    except ValueError:  # urljoin on a URI that is no URL (an unclosed "[")
        return None
    return None if read is None else list(found)


def lines_of_urls(lines: Iterable[str]) -> list[str]:
    """A text file of URLs, one a line; blank lines and `#` comments skipped."""
    return [s for line in lines if (s := line.strip()) and not s.startswith("#")]
