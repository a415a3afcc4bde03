"""A local folder as an origin (also the embedded default that serves the demo media).

The pipeline hands over a normalised, percent-encoded path, but this origin does not
trust it: it decodes the path itself, refuses NUL bytes, backslashes and `..` segments,
and refuses any file whose real path (after symlinks) lies outside the real root.

All filesystem calls run in worker threads, so a slow disk never blocks the event loop.
Small files are read whole while the file is opened; larger ones stream in 256 KiB
chunks, one thread hop per chunk.
"""

from __future__ import annotations

import asyncio
import mimetypes
import os
import stat
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from urllib.parse import unquote_to_bytes

from routing.origins.base import BadOriginPath, OriginBodyError, OriginRequest

CHUNK_SIZE = 256 * 1024
# Files up to this size are read in one go, in the same thread hop that opens them.
SMALL_FILE = 64 * 1024
INDEX_FILE = "index.html"

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
_NOT_FOUND = b"not found\n"
_NOT_ALLOWED = b"method not allowed\n"


def content_type_for(name: str) -> str:
    """The Content-Type for a file name (by extension, case-insensitive)."""
    ext = os.path.splitext(name)[1].lower()
    if ext in _TYPES:
        return _TYPES[ext]
    guessed, encoding = mimetypes.guess_type("x" + ext, strict=False)
    if guessed is None or encoding is not None:
        return _DEFAULT_TYPE
    return guessed


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
            offset = 0
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
    size: int

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


class FsOrigin:
    """Serves files below `root`. GET and HEAD only."""

    def __init__(self, name: str, root: Path | str) -> None:
        self.name = name
        self.root = Path(root)
        self._real_root = os.path.realpath(root)

    async def fetch(self, request: OriginRequest) -> FsResponse:
        method = request.method.upper()
        if method not in ("GET", "HEAD"):
            return self._text(405, _NOT_ALLOWED, head=False, extra=[("allow", "GET, HEAD")])
        parts = self._segments(request.path)
        found = await asyncio.to_thread(self._open, parts, method == "GET")
        if found is None:
            return self._text(404, _NOT_FOUND, head=method == "HEAD")
        st = found.st
        headers = [
            ("content-type", content_type_for(found.name)),
            ("content-length", str(st.st_size)),
            ("last-modified", formatdate(st.st_mtime, usegmt=True)),
            ("etag", make_etag(st.st_size, st.st_mtime_ns)),
        ]
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

    def _open(self, parts: list[str], read: bool) -> _Found | None:
        """Runs in a worker thread: resolve, check and open the file (None = 404)."""
        candidate = os.path.join(self._real_root, *parts)
        real = os.path.realpath(candidate)
        if not self._inside(real):
            raise BadOriginPath(self.name, "path escapes the root")
        name = parts[-1] if parts else ""
        fd = self._open_regular(real)
        if fd is None:
            return None
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            os.close(fd)
            index = os.path.realpath(os.path.join(real, INDEX_FILE))
            if not self._inside(index):
                raise BadOriginPath(self.name, "path escapes the root")
            fd = self._open_regular(index)
            if fd is None:
                return None
            st = os.fstat(fd)
            name = INDEX_FILE
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            return None
        if not read:
            os.close(fd)
            return _Found(name, st, None, b"")
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
