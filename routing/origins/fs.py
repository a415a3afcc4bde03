"""A local folder as an origin (also the embedded default that serves the demo media).

The pipeline hands over a normalised, percent-encoded path, but this origin does not
trust it: it decodes the path itself and

- refuses NUL bytes, backslashes and `..` segments as malformed (BadOriginPath, 400);
- answers 404 for hidden names: any segment starting with "." (`/.env`, `/.git/config`,
  `/a/.htpasswd`, also when spelled `%2e`), so dotfiles and VCS folders that happen to
  live in the served folder never leak. The one exception is a leading `/.well-known/`
  (RFC 8615); hidden names below it are still refused. 404 rather than 403, so a probe
  cannot tell a hidden file from a missing one. Only the request path is checked: a
  visible symlink that the folder's owner points at a hidden name is served;
- answers 404 (logged at debug level only) for a file whose real path (after symlinks)
  lies outside the real root, again without revealing that the link exists.

A directory requested without its trailing slash redirects (301) to the slash form when
it has an `index.html`, as nginx does, so relative links in the index resolve; with the
slash the index is served. Conditional GET/HEAD (`If-None-Match`, `If-Modified-Since`,
`If-Match`, `If-Unmodified-Since`) are evaluated per RFC 9110 13.2.2 against the file's
ETag and Last-Modified, answering 304 (validators only, no body) or 412, so a cache
revalidating a stale entry does not re-read the whole file. A GET with one byte range
(and an If-Range that holds) gets a 206 of those bytes, so slices and seeks read only
what they need; several ranges get the whole file (the cache answers them). Text types (`text/*`,
`application/javascript`, `application/json`) are labelled `charset=utf-8`.

A root that is missing, not a folder or unreadable is a configuration mistake, not a
folder of missing files: it is logged as a warning when the origin is made, `/readyz`
reports it (`root_problem`), and requests that find nothing answer 502 ("root folder
missing") rather than a 404 the cache would keep.

All filesystem calls run in worker threads, so a slow disk never blocks the event loop.
Small files are read whole while the file is opened; larger ones stream in 256 KiB
chunks, one thread hop per chunk.
"""

from __future__ import annotations

import asyncio
import logging
import mimetypes
import os
import stat
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from urllib.parse import quote, quote_from_bytes, unquote_to_bytes

from proxy.http.conditionals import NOT_MODIFIED_FIELDS, evaluate_preconditions, if_range_matches
from proxy.http.ranges import ByteRange, content_range, parse_range, unsatisfied_range
from routing.origins.base import BadOriginPath, OriginBodyError, OriginRequest, OriginUnavailable

log = logging.getLogger("edgeshield.origins.fs")

CHUNK_SIZE = 256 * 1024
# Files up to this size are read in one go, in the same thread hop that opens them.
SMALL_FILE = 64 * 1024
INDEX_FILE = "index.html"
# RFC 8615: the one hidden name allowed, and only as the first path segment.
WELL_KNOWN = ".well-known"
# The directory-slash redirect is as stable as the folder layout.
REDIRECT_CACHE_CONTROL = "max-age=3600"

# Checked before the platform's mimetypes table, which differs between systems.
_TYPES = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".mpd": "application/dash+xml",
    ".m4s": "video/iso.segment",
    ".ts": "video/mp2t",
    ".mp4": "video/mp4",
    ".m4v": "video/mp4",
    ".m4a": "audio/mp4",
    ".mp3": "audio/mpeg",
    ".aac": "audio/aac",
    ".webm": "video/webm",
    ".avif": "image/avif",
    ".webp": "image/webp",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".gif": "image/gif",
    ".svg": "image/svg+xml",
    ".vtt": "text/vtt",
    ".html": "text/html",
    ".htm": "text/html",
    ".css": "text/css",
    ".js": "text/javascript",
    ".json": "application/json",
    ".txt": "text/plain",
    ".xml": "application/xml",
    ".gz": "application/gzip",
}
_DEFAULT_TYPE = "application/octet-stream"
# Labelled UTF-8 besides text/*. Not image/svg+xml (XML declares its own encoding) nor
# HLS playlists (RFC 8216 makes them UTF-8 by definition).
_UTF8_TYPES = frozenset({"application/javascript", "application/json"})
_CHARSET = "; charset=utf-8"
_NOT_FOUND = b"not found\n"
_NOT_ALLOWED = b"method not allowed\n"
_PRECONDITION_FAILED = b"precondition failed\n"
# RFC 3986 pchar (minus "%", re-encoded) and query characters, for the Location field.
_PCHAR_SAFE = "!$&'()*+,;=:@"
_QUERY_SAFE = _PCHAR_SAFE + "/?%"


def content_type_for(name: str) -> str:
    """The Content-Type for a file name (by extension, case-insensitive); text types get
    `; charset=utf-8`."""
    ext = os.path.splitext(name)[1].lower()
    ctype = _TYPES.get(ext)
    if ctype is None:
        guessed, encoding = mimetypes.guess_type("x" + ext, strict=False)
        ctype = _DEFAULT_TYPE if guessed is None or encoding is not None else guessed
    if ctype.startswith("text/") or ctype in _UTF8_TYPES:
        return ctype + _CHARSET
    return ctype


def make_etag(size: int, mtime_ns: int) -> str:
    return f'"{size:x}-{mtime_ns:x}"'


class FsResponse:
    """An OriginResponse backed by an open file (or a short in-memory body)."""

    def __init__(
        self,
        status: int,
        headers: list[tuple[str, str]],
        content_length: int | None,
        *,
        data: bytes = b"",
        file: _OpenFile | None = None,
        origin: str = "fs",
    ) -> None:
        self.status = status
        self.headers = headers
        self.content_length = content_length
        self._data = data
        self._file = file
        self._origin = origin
        self._closed = False

    async def body(self) -> AsyncIterator[bytes]:
        try:
            if self._file is None:
                if self._data and not self._closed:
                    yield self._data
                return
            fd = self._file.fd
            size = self._file.size
            offset = self._file.start
            while offset < size:
                if self._closed:
                    return
                want = min(CHUNK_SIZE, size - offset)
                try:
                    chunk = await asyncio.to_thread(os.pread, fd, want, offset)
                except OSError as exc:
                    raise OriginBodyError(self._origin, "file read failed") from exc
                if not chunk:
                    raise OriginBodyError(self._origin, "file shrank while streaming")
                offset += len(chunk)
                yield chunk
        finally:
            self._release()

    def _release(self) -> None:
        self._closed = True
        file, self._file = self._file, None
        if file is not None:
            file.close()

    async def aclose(self) -> None:
        self._release()


@dataclass(slots=True)
class _OpenFile:
    fd: int
    size: int  # where reading stops (the end of a range)
    start: int = 0

    def close(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)


@dataclass(slots=True)
class _Found:
    name: str  # the served file's name as requested (for the content type)
    st: os.stat_result
    fd: int | None  # open for GET of larger files; closed otherwise
    data: bytes  # whole content for GET of small files
    status: int = 200  # or 304/412 from the request's preconditions (nothing read then)


class _Redirect:
    """A directory with an index, asked for without its trailing slash."""


_REDIRECT = _Redirect()


class FsOrigin:
    """Serves files below `root`. GET and HEAD only.

    Answers 404, exactly as for a missing file, for hidden names (any path segment
    starting with ".", raw or percent-encoded as `%2e`, except a leading `/.well-known/`
    per RFC 8615) and for files whose real path leaves the root through a symlink.
    Malformed paths (NUL byte, backslash, `..` segment) raise BadOriginPath (400).
    `/dir` with a `dir/index.html` redirects (301) to `/dir/`, which serves the index.
    Conditional GET/HEAD get 304 or 412 per RFC 9110 13.2.2.
    """

    def __init__(self, name: str, root: Path | str) -> None:
        self.name = name
        self.root = Path(root)
        self._real_root = os.path.realpath(root)
        problem = self.root_problem()
        if problem is not None:
            log.warning("origin %s: %s: %s", name, problem, self.root)

    def root_problem(self) -> str | None:
        """Why nothing below the root can be served (short, no path), or None. A few
        syscalls: callers on the event loop run it in a thread."""
        try:
            st = os.stat(self._real_root)
        except FileNotFoundError:
            return "root folder missing"
        except OSError:
            return "root folder unreadable"
        if not stat.S_ISDIR(st.st_mode):
            return "root is not a folder"
        if not os.access(self._real_root, os.R_OK | os.X_OK):
            return "root folder unreadable"
        return None

    async def fetch(self, request: OriginRequest) -> FsResponse:
        method = request.method.upper()
        if method not in ("GET", "HEAD"):
            return self._text(405, _NOT_ALLOWED, head=False, extra=[("allow", "GET, HEAD")])
        head = method == "HEAD"
        parts = self._segments(request.path)
        if _hidden(parts):
            log.debug("%s: hidden name refused: %r", self.name, request.path)
            return self._text(404, _NOT_FOUND, head=head)
        fields = _joined(request.headers)
        slash = request.path.endswith("/")
        found = await asyncio.to_thread(self._open, parts, method, fields, slash)
        if found is None:
            # A missing root is the origin's failure, not a 404 to keep for every path.
            problem = await asyncio.to_thread(self.root_problem)
            if problem is not None:
                raise OriginUnavailable(self.name, problem)
            return self._text(404, _NOT_FOUND, head=head)
        if isinstance(found, _Redirect):
            return self._redirect(parts, request.query)
        if found.status == 412:
            return self._text(412, _PRECONDITION_FAILED, head=head)
        st = found.st
        etag = make_etag(st.st_size, st.st_mtime_ns)
        headers = [
            ("content-type", content_type_for(found.name)),
            ("content-length", str(st.st_size)),
            ("last-modified", formatdate(_mtime_seconds(st), usegmt=True)),
            ("etag", etag),
        ]
        if found.status == 304:
            kept = [(n, v) for n, v in headers if n.encode() in NOT_MODIFIED_FIELDS]
            return FsResponse(304, kept, None, origin=self.name)
        headers.append(("accept-ranges", "bytes"))
        rng = _single_range(fields, st, etag) if method == "GET" else None
        if rng == "unsatisfiable":
            if found.fd is not None:
                os.close(found.fd)
            fields416 = [("content-range", unsatisfied_range(st.st_size)), ("content-length", "0")]
            return FsResponse(416, fields416, 0, origin=self.name)
        if isinstance(rng, ByteRange):  # a slice fetch or a seek: only the bytes asked for
            headers[1] = ("content-length", str(rng.length))
            headers.append(("content-range", content_range(rng, st.st_size)))
            if found.fd is not None:
                file = _OpenFile(found.fd, rng.end + 1, rng.start)
                return FsResponse(206, headers, rng.length, file=file, origin=self.name)
            part = found.data[rng.start : rng.end + 1]
            return FsResponse(206, headers, rng.length, data=part, origin=self.name)
        if found.fd is not None:
            file = _OpenFile(found.fd, st.st_size)
            return FsResponse(200, headers, st.st_size, file=file, origin=self.name)
        return FsResponse(200, headers, st.st_size, data=found.data, origin=self.name)

    async def aclose(self) -> None:
        return None

    # -- path checks -------------------------------------------------------------------

    def _segments(self, path: str) -> list[str]:
        """Decode the request path into safe segments, or raise BadOriginPath."""
        if "\\" in path:
            raise BadOriginPath(self.name, "backslash in path")
        try:
            raw = unquote_to_bytes(path)
        except UnicodeError as exc:
            raise BadOriginPath(self.name, "undecodable path") from exc
        if b"\x00" in raw:
            raise BadOriginPath(self.name, "NUL byte in path")
        if b"\\" in raw:
            raise BadOriginPath(self.name, "backslash in path")
        parts: list[str] = []
        for seg in raw.split(b"/"):
            if seg == b"..":
                raise BadOriginPath(self.name, "dot-dot segment in path")
            if seg in (b"", b"."):
                continue
            parts.append(os.fsdecode(seg))
        return parts

    def _inside(self, real: str) -> bool:
        root = self._real_root
        return real == root or real.startswith(root.rstrip(os.sep) + os.sep)

    def _open(
        self, parts: list[str], method: str, fields: Mapping[str, str], slash: bool
    ) -> _Found | _Redirect | None:
        """Runs in a worker thread: resolve, check and open the file (None = 404)."""
        candidate = os.path.join(self._real_root, *parts)
        real = os.path.realpath(candidate)
        if not self._inside(real):
            # 404 like a missing file: the answer must not tell that the link exists.
            log.debug("%s: symlink leaves the root: %r", self.name, candidate)
            return None
        name = parts[-1] if parts else ""
        fd = self._open_regular(real)
        if fd is None:
            return None
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            os.close(fd)
            index = os.path.realpath(os.path.join(real, INDEX_FILE))
            if not self._inside(index):
                log.debug("%s: index symlink leaves the root: %r", self.name, candidate)
                return None
            fd = self._open_regular(index)
            if fd is None:
                return None
            st = os.fstat(fd)
            name = INDEX_FILE
            if stat.S_ISREG(st.st_mode) and not slash:
                os.close(fd)
                return _REDIRECT
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            return None
        status = _preconditions(method, fields, st)
        if status is not None or method != "GET":
            os.close(fd)
            return _Found(name, st, None, b"", status or 200)
        if st.st_size <= SMALL_FILE:
            try:
                # A file rewritten between fstat and read: take a fresh stat and retry.
                for _ in range(3):
                    data = _read_exact(fd, st.st_size)
                    if data is not None:
                        return _Found(name, st, None, data)
                    st = os.fstat(fd)
                return None
            finally:
                os.close(fd)
        return _Found(name, st, fd, b"")

    @staticmethod
    def _open_regular(real: str) -> int | None:
        # O_NOFOLLOW: the last component must not have become a symlink since realpath().
        # O_NONBLOCK: opening a FIFO must not hang the worker thread.
        flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK
        try:
            return os.open(real, flags)
        except (OSError, ValueError):
            return None

    def _redirect(self, parts: list[str], query: str) -> FsResponse:
        """301 to the directory's slash form, so relative links in its index resolve.

        The Location is rebuilt from the decoded segments rather than echoed from the
        request, so it is always a clean path-absolute reference (`//host/dir` cannot
        turn into a redirect to another site)."""
        location = "/" + "".join(
            quote_from_bytes(os.fsencode(seg), safe=_PCHAR_SAFE) + "/" for seg in parts
        )
        if query:
            location += "?" + quote(query, safe=_QUERY_SAFE)
        headers = [
            ("location", location),
            ("content-length", "0"),
            ("cache-control", REDIRECT_CACHE_CONTROL),
        ]
        return FsResponse(301, headers, 0, origin=self.name)

    def _text(
        self,
        status: int,
        body: bytes,
        *,
        head: bool,
        extra: list[tuple[str, str]] | None = None,
    ) -> FsResponse:
        headers = [
            ("content-type", "text/plain; charset=utf-8"),
            ("content-length", str(len(body))),
            *(extra or []),
        ]
        return FsResponse(status, headers, len(body), data=b"" if head else body, origin=self.name)


def _single_range(
    fields: Mapping[str, str], st: os.stat_result, etag: str
) -> ByteRange | str | None:
    """The one byte range a GET asks for, "unsatisfiable", or None: answer 200 (no Range,
    an If-Range that does not hold, several ranges: RFC 9110 14.2 lets a server ignore
    them; the cache in front answers those itself)."""
    value = fields.get("range")
    if value is None or not if_range_matches(fields.get("if-range"), etag, _mtime_seconds(st)):
        return None
    ranges = parse_range(value, st.st_size, max_ranges=1)
    if isinstance(ranges, list):
        return ranges[0] if len(ranges) == 1 else None
    return ranges


def _read_exact(fd: int, size: int) -> bytes | None:
    chunks: list[bytes] = []
    offset = 0
    while offset < size:
        chunk = os.pread(fd, size - offset, offset)
        if not chunk:
            return None
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def _hidden(parts: list[str]) -> bool:
    """A segment names a hidden file or folder (only a leading `.well-known` is allowed)."""
    return any(
        seg.startswith(".") and not (i == 0 and seg == WELL_KNOWN) for i, seg in enumerate(parts)
    )


def _joined(headers: list[tuple[str, str]]) -> dict[str, str]:
    """Request fields by lower-case name, repeated fields joined with ", "."""
    out: dict[str, str] = {}
    for name, value in headers:
        key = name.lower()
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out


def _mtime_seconds(st: os.stat_result) -> int:
    """The modification time at Last-Modified's one-second resolution (floored)."""
    return st.st_mtime_ns // 1_000_000_000


def _preconditions(method: str, fields: Mapping[str, str], st: os.stat_result) -> int | None:
    """304, 412 or None (serve the file) for the request's conditional fields."""
    etag = make_etag(st.st_size, st.st_mtime_ns)
    return evaluate_preconditions(method, fields, etag, float(_mtime_seconds(st)))
