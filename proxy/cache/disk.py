"""L3: large objects (video, HLS segments, big images) as files in a local directory.

Layout: ``<dir>/<h[0:2]>/<h>`` where h is the hex SHA-256 of the cache key: 256 shard
directories. One level keeps the directory count (and the restart scan) small for the
~10k files of a 10 GiB tier of >= 1 MiB objects, and ext4/xfs hashed directories handle the
few thousand names per shard of a terabyte tier well.

File: exactly the codec layout (``proxy.cache.codec``), magic | meta length | meta | body,
with one extra meta field, ``"key"``: the original cache key, so the index can be rebuilt
from the files alone (``codec.decode`` still reads a file whole). The meta carries the body
length and CRC-32. Opening checks the length against the file size (so does a restart
scan); the CRC is checked before a body is used: read whole, or in one bounded pass before
the file is streamed (once per file version: the slot remembers a checked body until the
file's ctime says someone else changed it), and again on every full streamed read. A
damaged file is deleted and answered as a miss, never served.

Reads: bodies the memory tier takes are read whole (and promoted); larger ones are
streamed from the file (``open_body``: one descriptor per response, CHUNK_BYTES per read,
the next read only when the client took the last piece), so a stalled client holds at
most a couple of chunks, never the object. No ASGI ``http.response.pathsend`` (granian's
zero-copy offer): it sends a whole file by path, and these files start with the meta;
the engine opens the path later, so an eviction or rewrite in between would send another
version past the CRC check; and granian reads the file into 128 KiB buffers anyway.

Writes go to ``.tmp-<random>`` in the shard directory, then ``os.replace``: a file with a
digest name is always complete. With ``fsync`` off (the default) a power loss can still
leave a renamed file whose data never reached the disk (zero-length or truncated): the
length/CRC checks turn it into a miss. ``fsync`` on makes entries durable at the cost of
two flushes per write.

LRU: an in-memory index (OrderedDict key -> path, size, expiry) in least recently used
order, bounded by ``max_bytes`` of file sizes. Recency survives restarts through the file
mtime: each write and each hit stamps the file with a per-tier monotonic nanosecond clock
(``os.utime`` on the open descriptor), and the restart scan orders files by it. atime is
not used: most mounts are relatime/noatime.

Admission: given a frequency function (``admit_by``: the memory tier's, which counts every
request, found or not, so it knows how often disk-resident keys are asked for too), a
new key that needs room is written only when it was asked for more often per byte than
each of the least recently used entries it would push out (the same rule as the memory
tier's, ``admission.contest``; ties go to the residents, at most ``MAX_VICTIMS``
victims; the bytes of writes under way count as taken, so a burst of newcomers cannot
each see the same free room). So a one-time scan of large objects passes by instead of
flushing the tier.
A key already indexed is always rewritten. ``accepts`` (asked before the body arrives,
it decides Cache-Status ``stored``) runs the same contest with the size it is told and
promises a yes to the key's next ``put`` of up to twice that size (bounded:
``admission.Promises``); ``put`` of a key without such a promise runs the contest
itself, so a body told as it grows is never kept on a yes to its first chunks. A
refusal writes nothing and is counted (``admission_rejections``). Without a frequency
function every entry is taken, as LRU.

Threads: every disk operation runs on a small executor owned by the tier, so neither a
slow disk nor CRC-32 of a large body (zlib releases the GIL) stalls the event loop. The
event loop owns the index; threads only touch files.

One index per file: ``open`` takes an exclusive ``flock`` on ``<dir>/.lock``, since two
indexes over one directory would each evict and count only their own files. The exception
is a directory shared by the workers of one instance (``shared``): the serving process
holds that lock for all of them (proxy/serve/cli.py), and each worker's tier indexes only
the files of the *buckets* it owns (``own``). A bucket is the first three hex digits of a
file name (4,096 of them, 16 per shard directory); the workers' ring in proxy/cluster/
assigns each bucket to one worker, and routes every miss of a key to the owner of its
bucket, so only that worker writes, reads and evicts its files. A worker that gains
buckets (a worker came or went) scans just their files into its index; one that loses
buckets drops them from its index and leaves the files to their new owner. The
directory's layout does not depend on the worker count, so a restart with another count
(or one worker) finds every file. While ownership moves (a membership interval at most),
two workers may both touch a bucket: files are replaced whole by rename and every read
checks length and CRC, so that costs a miss or a stray file at worst, never a wrong
answer; a stray file is seen again by the next scan of its bucket.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import hashlib
import logging
import os
import secrets
import stat
import struct
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, NoReturn, TypeVar

import orjson

from config.disk import DiskSettings
from proxy.cache.admission import Promises, contest
from proxy.cache.codec import (
    HEAD_SIZE,
    MAGIC,
    MAX_META_BYTES,
    CorruptEntry,
    decode_meta,
    encode_meta,
    entry_from_meta,
    ttl_for,
)
from proxy.cache.entry import Entry

if TYPE_CHECKING:
    from proxy.serve.metrics import Stats

__all__ = [
    "BUCKETS",
    "CHUNK_BYTES",
    "BodyStream",
    "DiskTier",
    "DiskTierBusy",
    "bucket",
    "encode_header",
    "lock_directory",
    "share_directory",
]

log = logging.getLogger("edgeshield.cache.disk")

# Bytes per read of a streamed body: what a stalled client holds, about twice (one piece
# in the server's transport buffer, the next one waiting to be sent).
CHUNK_BYTES = 128 * 1024
KEY_FIELD = "key"
TEMP_PREFIX = ".tmp-"
LOCK_NAME = ".lock"
# Free space is looked at most this often; after a write fails for lack of space
# (ENOSPC, EDQUOT), nothing is accepted for FULL_BACKOFF seconds.
SPACE_CHECK_INTERVAL = 1.0
FULL_BACKOFF = 10.0
# Same layout as the codec's fixed head (magic, meta length), which it keeps private; the
# header reader relies on HEAD_SIZE being this struct's size.
_HEAD = struct.Struct(">4sI")
_HEX = frozenset("0123456789abcdef")
# One warning per kind per interval; the rest are counted into the next one.
WARN_INTERVAL_S = 10.0
# Ownership units of a shared directory: the first hex digits of a file name.
BUCKET_CHARS = 3
BUCKETS: frozenset[str] = frozenset(f"{i:03x}" for i in range(16**BUCKET_CHARS))
# In a shared directory another worker may be writing a temp file: only old ones are left
# over from a crash.
SHARED_TEMP_AGE_S = 600.0

T = TypeVar("T")


class DiskTierBusy(RuntimeError):
    """Another DiskTier (in this or another process) holds the directory."""


def lock_directory(root: str) -> int:
    """The descriptor holding the exclusive lock of directory ``root`` (made if missing);
    closing it releases the lock. DiskTierBusy when another holder has it."""
    os.makedirs(root, exist_ok=True)
    fd = os.open(os.path.join(root, LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise DiskTierBusy(f"{root} is in use by another disk tier") from None
    except BaseException:
        os.close(fd)
        raise
    return fd


def encode_header(key: str, entry: Entry, body_len: int, crc: int) -> bytes:
    """The codec header of ``entry`` with the cache key added to its meta."""
    head = encode_meta(entry, body_len, crc)
    meta = orjson.loads(head[HEAD_SIZE:])
    if KEY_FIELD in meta:  # the codec grew a field of that name: the format needs a look
        raise RuntimeError(f"codec meta already has a {KEY_FIELD!r} field")
    meta[KEY_FIELD] = key
    raw = orjson.dumps(meta)
    return _HEAD.pack(MAGIC, len(raw)) + raw


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def bucket(key: str) -> str:
    """The bucket of ``key``'s file (module doc): the unit the workers sharing a
    directory own. Defined for every key (a lone surrogate hashes as itself: such a key is
    never stored, so its bucket only has to be stable)."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:BUCKET_CHARS]


def _bucket_of(path: str) -> str:
    return os.path.basename(path)[:BUCKET_CHARS]


def _is_digest(name: str) -> bool:
    return len(name) == 64 and _HEX.issuperset(name)


def _head_entry(meta: dict[str, Any], length: int) -> Entry:
    """The stored facts without the body: body is b"", but size and full_headers
    (Content-Length) describe the stored object of ``length`` bytes."""
    entry = entry_from_meta({**meta, "n": 0, "c": 0}, b"")  # crc32(b"") == 0
    cl = str(length).encode()
    entry.full_headers = [
        (k, cl) if k == b"content-length" else (k, v) for k, v in entry.full_headers
    ]
    entry.size += length
    return entry


def _open_entry(path: str) -> IO[bytes]:
    """The entry file at ``path`` opened for reading, if it is a regular file (else
    CorruptEntry): a FIFO left in the directory would block an I/O thread for good in a
    plain open, and a symlink would read whatever it points at."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    f = open(fd, "rb", buffering=0)  # noqa: SIM115 - the caller closes it
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        f.close()
        raise CorruptEntry("not a regular file")
    return f


def _covers(promised: int | None, size: int) -> bool:
    """Does a promise weighed at ``promised`` bytes hold for an entry of ``size``? Up to
    twice that: a length told before the body, plus its headers. A body that came
    without one is told as it grows (store.fits), so its yes is weighed again each time
    it doubles, never left at the size of its first chunks."""
    return promised is not None and size <= 2 * promised


def _read_exact(f: IO[bytes], n: int) -> bytes:
    data = f.read(n)
    if len(data) == n:
        return data
    parts = [data]
    got = len(data)
    while got < n:  # regular files return short reads only at EOF; loop to be sure
        more = f.read(n - got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def _read_header(f: IO[bytes], key: str | None) -> tuple[dict[str, Any], int]:
    """Meta and body length of an open entry file positioned at 0; checks the key (or,
    with key None, that there is one) and that the file holds exactly that body."""
    head = _read_exact(f, HEAD_SIZE)
    if len(head) < HEAD_SIZE:
        raise CorruptEntry("short header")
    magic, n = _HEAD.unpack(head)
    if magic != MAGIC or n > MAX_META_BYTES:
        raise CorruptEntry("bad header")
    meta, offset = decode_meta(head + _read_exact(f, n))
    stored_key = meta.get(KEY_FIELD)
    if not isinstance(stored_key, str) or (key is not None and stored_key != key):
        raise CorruptEntry("key mismatch")
    length = meta.get("n")
    if type(length) is not int or os.fstat(f.fileno()).st_size != offset + length:
        raise CorruptEntry("file size does not match the recorded body length")
    return meta, length


def _unlink_if_same(path: str, st: os.stat_result) -> None:
    """Delete ``path`` if it still is the file we read: a concurrent writer may have
    replaced it with a good one meanwhile."""
    with suppress(OSError):
        now = os.stat(path)
        if (now.st_ino, now.st_dev) == (st.st_ino, st.st_dev):
            os.unlink(path)


def _touch(fd: int, stamp: int) -> None:
    with suppress(OSError):  # recency is best effort; a read-only mount still serves
        os.utime(fd, ns=(stamp, stamp))


@dataclass(slots=True)
class _Slot:
    path: str
    size: int  # bytes of the file, header included
    expires: float  # wall clock; past it the entry is of no use (codec.ttl_for)
    # Whether the body was checked against its CRC, kept by the I/O threads under
    # DiskTier._marks (see _mark): the file's ctime after our own last touch, bumped
    # `epoch` whenever the file changed otherwise, and `checked` for the current epoch.
    mark: int = 0
    epoch: int = 0
    checked: bool = False


@dataclass(slots=True)
class _KeyLock:
    lock: asyncio.Lock
    users: int = 0


@dataclass(slots=True)
class _Found:
    stamp: int
    key: str
    path: str
    size: int
    expires: float


@dataclass(slots=True)
class _Scan:
    found: list[_Found]
    temps: int = 0
    corrupt: int = 0
    expired: int = 0


class _Warnings:
    """Rate-limited warnings: a full disk must not turn every put into a log line. Called
    from the event loop and the I/O threads alike."""

    def __init__(self) -> None:
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._lock = threading.Lock()

    def warn(self, kind: str, msg: str, *args: object) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(kind, -WARN_INTERVAL_S) < WARN_INTERVAL_S:
                self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
                return
            self._last[kind] = now
            n = self._suppressed.pop(kind, 0)
        log.warning(msg + (" (%d similar suppressed)" if n else ""), *args, *((n,) if n else ()))


class BodyStream:
    """A disk entry's body, read from its file in CHUNK_BYTES pieces off the event loop.

    ``entry`` holds the stored facts with an empty body (its size and full_headers
    describe the whole object); ``length`` (also ``size``) is the body length. The file's
    size was checked when it was opened, so truncation is known before the first byte.
    A flipped bit needs the CRC over the whole body: ``verify`` (before a response
    begins; a no-op once this file version was checked) or ``read_entry`` (the whole body
    into memory) find it early and answer a miss; a full sequential read (``pieces(0,
    length)``, or iterating) also checks it, and then the call that would return the last
    chunk raises CorruptEntry instead, so the caller aborts the response rather than end
    it cleanly. Damage found either way deletes the file. Close it (``aclose``, ``async
    with``) to free the descriptor. Reads go on from the file that was opened even if it
    is replaced or evicted meanwhile.
    """

    def __init__(
        self,
        tier: DiskTier,
        key: str,
        slot: _Slot,
        f: IO[bytes],
        meta: dict[str, Any],
        length: int,
        epoch: int,
    ) -> None:
        self.entry = _head_entry(meta, length)
        self.length = length
        self._meta = meta
        self._expected_crc = int(meta["c"])
        self._tier = tier
        self._key = key
        self._slot = slot
        self._f: IO[bytes] | None = f
        self._st = os.fstat(f.fileno())
        self._body_at = self._st.st_size - length
        self._epoch = epoch
        # A read in an I/O thread: the file is closed only once it is done.
        self._reading: Future[Any] | None = None

    @property
    def size(self) -> int:
        return self.length

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self.pieces(0, self.length)

    async def pieces(self, start: int, end: int) -> AsyncGenerator[bytes, None]:
        """Body bytes [start, end) in pieces of at most CHUNK_BYTES, one read at a time:
        nothing is read ahead of what the caller has taken."""
        whole = start == 0 and end == self.length
        crc = 0
        pos = start
        while pos < end:
            n = min(CHUNK_BYTES, end - pos)
            chunk, crc = await self._call(self._read, pos, n, crc if whole else None)
            self._tier.bytes_read += len(chunk)
            if len(chunk) != n:
                await self._corrupt("file shorter than its recorded length")
            pos += n
            if whole and pos == end:
                if crc != self._expected_crc:
                    await self._corrupt("body checksum mismatch")
                await self._call(self._tier._confirm, self._slot, self._epoch)
            yield chunk

    async def verify(self) -> None:
        """Check the body against its CRC unless this version of the file was checked
        since it last changed; CorruptEntry (file dropped, stream closed) if it is damaged."""
        try:
            self._tier.bytes_read += await self._call(
                self._tier._verify,
                self._body_at,
                self.length,
                self._expected_crc,
                self._slot,
                self._epoch,
            )
        except CorruptEntry as exc:
            await self._corrupt(str(exc), miss=True)

    async def read_entry(self) -> Entry:
        """The whole entry, body in memory (CRC checked); closes the stream."""
        try:
            body, _ = await self._call(self._read, 0, self.length, None)
            self._tier.bytes_read += len(body)
            try:
                entry = entry_from_meta(self._meta, body)
            except CorruptEntry as exc:
                await self._corrupt(str(exc), miss=True)
            await self._call(self._tier._confirm, self._slot, self._epoch)
            return entry
        finally:
            await self.aclose()

    def _read(self, fd: int, offset: int, n: int, crc: int | None) -> tuple[bytes, int]:
        chunk = _pread_exact(fd, n, self._body_at + offset)
        return chunk, (0 if crc is None else zlib.crc32(chunk, crc))

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(fd, *args)`` in an I/O thread."""
        if self._f is None:
            raise ValueError("read from a closed BodyStream")
        self._reading = self._tier._pool.submit(fn, self._f.fileno(), *args)
        return await asyncio.wrap_future(self._reading)

    async def _corrupt(self, why: str, *, miss: bool = False) -> NoReturn:
        await self.aclose()
        if miss:  # the caller answers a miss: count it as one
            self._tier.hits -= 1
            self._tier.misses += 1
        await self._tier._dropped_corrupt(self._key, self._slot, self._st, why)
        raise CorruptEntry(why)

    async def aclose(self) -> None:
        f, self._f = self._f, None
        if f is None:
            return
        reading = self._reading
        if reading is not None and not reading.done():
            reading.add_done_callback(lambda _: f.close())  # a cancelled read still runs
        else:
            f.close()

    async def __aenter__(self) -> BodyStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def share_directory(root: str) -> int:
    """Ready ``root`` for workers that share it: the descriptor holding its lock for them
    (DiskTierBusy when another instance has it), after moving in the files of per-worker
    directories (``<root>/w0``, ``w1``, ...: where workers that were not peers kept
    theirs), so a restart that starts sharing keeps what they stored."""
    fd = lock_directory(root)
    try:
        for name in sorted(os.listdir(root)):
            path = os.path.join(root, name)
            if name[:1] == "w" and name[1:].isdigit() and os.path.isdir(path):
                _merge_worker_dir(path, root)
    except OSError as exc:
        log.warning("disk tier %s: moving in the per-worker directories stopped: %s", root, exc)
    return fd


def _merge_worker_dir(src: str, root: str) -> None:
    try:
        fd = lock_directory(src)
    except DiskTierBusy:
        log.warning("disk tier %s: left alone, another process holds it", src)
        return
    moved = 0
    try:
        for shard in os.listdir(src):
            folder = os.path.join(src, shard)
            if len(shard) != 2 or not _HEX.issuperset(shard) or not os.path.isdir(folder):
                continue
            os.makedirs(os.path.join(root, shard), exist_ok=True)
            for name in os.listdir(folder):
                there = os.path.join(root, shard, name)
                if _is_digest(name) and not os.path.exists(there):
                    os.replace(os.path.join(folder, name), there)
                    moved += 1
                else:  # a temp file, or a key the shared directory has already
                    os.unlink(os.path.join(folder, name))
            os.rmdir(folder)
        os.unlink(os.path.join(src, LOCK_NAME))
        os.rmdir(src)
    finally:
        os.close(fd)
    log.info("disk tier %s: moved %d files in from %s", root, moved, src)


class DiskTier:
    """The L3 tier. Construct, then ``await open()`` (scans the directory; until it is
    done every get is a miss and every put is refused, so it may run in the background),
    then ``await close()``. Disk errors never reach callers: a failed read is a miss, a
    failed write returns False; both are counted and logged (rate-limited)."""

    name = "disk"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_bytes: int,
        max_object_bytes: int,
        min_object_bytes: int = 0,
        fsync: bool = False,
        io_threads: int = 4,
        shared: bool = False,
        frequency: Callable[[str], int] | None = None,
    ) -> None:
        """``shared``: one of the workers sharing ``path`` (module doc); it owns no
        bucket, so stores and finds nothing, until ``own`` gives it some, and
        ``max_bytes`` is the whole directory's budget, of which it keeps its share.
        ``frequency``: see ``admit_by``."""
        self.root = str(Path(path))
        self.shared = shared
        self.total_bytes = max_bytes
        # Buckets whose files this tier indexes; None: all of them (not shared).
        self._owned: frozenset[str] | None = frozenset() if shared else None
        self.max_bytes = 0 if shared else max_bytes
        self.max_object_bytes = min(max_object_bytes, max_bytes)
        self.min_object_bytes = min_object_bytes
        self.fsync = fsync
        self._pool = ThreadPoolExecutor(max_workers=io_threads, thread_name_prefix="es-disk")
        # key -> slot, least recently used first. Only the event loop touches it.
        self._index: OrderedDict[str, _Slot] = OrderedDict()
        self._bytes = 0
        # Keys with a write or delete in flight: puts and deletes of one key run one at a
        # time (last one wins on disk and in the index alike) and eviction passes them over.
        self._locks: dict[str, _KeyLock] = {}
        self._ready = asyncio.Event()
        self._opening = False
        self._closed = False
        self._lock_fd: int | None = None
        # Bumped by clear(): a write that started before it must not land after it.
        self._epoch = 0
        self._clearing = 0
        self._clock = 0  # last LRU stamp (ns), see _stamp
        self._tasks: set[asyncio.Task[Any]] = set()
        self._warnings = _Warnings()
        self._marks = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.stores = 0
        self.bytes_read = 0  # file bytes, header included
        self.bytes_written = 0
        self.evictions = 0
        self.corrupt_dropped = 0
        self.expired_dropped = 0
        self.write_errors = 0
        self.read_errors = 0
        self.temps_removed = 0
        # Room on the file system (accepts): free bytes as last seen (None: unknown),
        # when, and until when a write that failed for lack of space stops new stores.
        self._free: int | None = None
        self._space_checked = -SPACE_CHECK_INTERVAL
        self._full_until = 0.0
        # Admission (module doc): how often a key was asked for, and the keys `accepts`
        # said yes to, which their next put takes without a contest.
        self._frequency = frequency
        self._promised: Promises[str] = Promises()
        self._writing = 0  # Entry.size of the puts under way
        self.rejections = 0

    def admit_by(self, frequency: Callable[[str], int]) -> None:
        """Admit new keys by ``frequency`` (requests per key, recent: the memory tier's
        sketch) against the entries they would push out, instead of taking every one."""
        self._frequency = frequency

    @classmethod
    async def from_settings(
        cls, settings: DiskSettings, *, shared: bool = False
    ) -> DiskTier | None:
        """The opened tier, or None when ``settings.path`` is unset."""
        if settings.path is None:
            return None
        tier = cls(
            settings.path,
            max_bytes=settings.max_bytes,
            max_object_bytes=settings.max_object_bytes,
            min_object_bytes=settings.min_object_bytes,
            fsync=settings.fsync,
            io_threads=settings.io_threads,
            shared=shared,
        )
        try:
            await tier.open()
        except BaseException:
            await tier.close()
            raise
        return tier

    # -- lifecycle ---------------------------------------------------------------------
    async def open(self, now: float | None = None) -> None:
        """Lock the directory, remove stray temp files and rebuild the index from the file
        headers (bodies are not read), dropping damaged and expired files. Raises OSError
        if the directory cannot be created or locked, DiskTierBusy if another tier has it.
        A shared tier takes no lock and owns nothing yet: ``own`` scans."""
        if self._opening or self._ready.is_set() or self._closed:
            raise RuntimeError("DiskTier.open called twice or after close")
        self._opening = True
        try:
            if self.shared:
                await self._run(os.makedirs, self.root, 0o777, True)
            else:
                self._lock_fd = await self._run(lock_directory, self.root)
            scan = await self._run(self._scan, time.time() if now is None else now, self._owned)
        except BaseException:
            self._opening = False
            self._release_lock()
            raise
        for f in scan.found:  # sorted by stamp: oldest first
            self._index[f.key] = _Slot(f.path, f.size, f.expires)
            self._bytes += f.size
        self._clock = max(self._clock, scan.found[-1].stamp if scan.found else 0)
        self.temps_removed += scan.temps
        self.corrupt_dropped += scan.corrupt
        self.expired_dropped += scan.expired
        self._opening = False
        self._ready.set()
        # The budget may have shrunk since the files were written.
        await self._evict(keep=None)
        log.info(
            "disk tier %s: %d entries, %d bytes (%d damaged, %d expired, %d temp files removed)",
            self.root,
            len(self._index),
            self._bytes,
            scan.corrupt,
            scan.expired,
            scan.temps,
        )

    async def close(self) -> None:
        """Finish writes and deletes in flight, stop the I/O threads, unlock the directory.
        Open BodyStreams cannot read further."""
        if self._closed:
            return
        self._closed = True
        self._ready.clear()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.to_thread(self._pool.shutdown, True)
        self._release_lock()

    async def own(self, buckets: frozenset[str], now: float | None = None) -> None:
        """A shared tier now keeps the files of ``buckets`` and its share of the budget:
        the buckets it gains are scanned into its index (as least recently used), the
        ones it loses leave the index, their files left to their new owner. Calls must
        not overlap (one membership watcher makes them)."""
        if not self.shared:
            raise RuntimeError("DiskTier.own is for a shared directory")
        if self._opening:
            await self._ready.wait()
        owned = self._owned or frozenset()
        if self._closed or buckets == owned:
            return
        gained, self._owned = buckets - owned, buckets
        self.max_bytes = self.total_bytes * len(buckets) // len(BUCKETS)
        for key, slot in list(self._index.items()):
            if _bucket_of(slot.path) not in buckets and key not in self._locks:
                self._forget(key, slot)
        scan = await self._run(self._scan, time.time() if now is None else now, gained)
        for f in reversed(scan.found):  # newest first, each put before the older ones
            if f.key in self._index or _bucket_of(f.path) not in self._owned:
                continue  # stored meanwhile (newer), or lost again
            self._index[f.key] = _Slot(f.path, f.size, f.expires)
            self._index.move_to_end(f.key, last=False)
            self._bytes += f.size
        self.temps_removed += scan.temps
        self.corrupt_dropped += scan.corrupt
        self.expired_dropped += scan.expired
        await self._evict(keep=None)
        log.info(
            "disk tier %s: this worker keeps %d of %d buckets, %d entries, %d of %d bytes",
            self.root,
            len(buckets),
            len(BUCKETS),
            len(self._index),
            self._bytes,
            self.max_bytes,
        )

    def _owns(self, path: str) -> bool:
        return self._owned is None or _bucket_of(path) in self._owned

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    def accepts(self, key: str, size: int) -> bool:
        """Placement and admission (the store's LowerTier protocol): entries of ``size``
        (Entry.size, headers included; 0: not known yet) from min_object_bytes up to
        max_object_bytes, while the file system has room for them, and, for a new key,
        when admission takes it (module doc). put() itself checks only the upper bound
        and admission. What this says decides Cache-Status `stored` before the body
        arrives, so a full disk must say no here, not fail the write later, and a yes
        holds for the key's next put."""
        largest = min(self.max_object_bytes, self.max_bytes)  # a shared tier: its share
        if not (self.min_object_bytes <= size <= largest and self._has_room(size)):
            return False
        if self._owned is not None and bucket(key) not in self._owned:
            return False  # another worker's bucket: it stores the key (put refuses too)
        if self._frequency is None or _covers(self._promised.size(key), size):
            return True
        if size and not self._admitted(key, size):
            return False
        self._promised.add(key, size)
        return True

    def _admitted(self, key: str, size: int) -> bool:
        """Whether ``key``, of ``size`` bytes, may take its place now: kept keys (and
        keys being written) stay; a new one must win the contest against the least
        recently used entries it would push out. A loss is counted."""
        frequency = self._frequency
        if frequency is None or key in self._index or key in self._locks:
            return True
        need = self._bytes + self._writing + size - self.max_bytes
        if contest(frequency(key), size, need, self._lru(key), frequency) is not None:
            return True
        self.rejections += 1
        return False

    def _lru(self, keep: str) -> Iterator[tuple[str, int]]:
        """The entries eviction would take, least recently used first (as ``_evict``)."""
        for key, slot in self._index.items():
            if key != keep and key not in self._locks:
                yield key, slot.size

    def _has_room(self, size: int) -> bool:
        now = time.monotonic()
        if now < self._full_until:
            return False
        if now - self._space_checked >= SPACE_CHECK_INTERVAL:
            self._space_checked = now
            try:
                found = os.statvfs(self.root)
                self._free = found.f_bavail * found.f_frsize
            except OSError:
                self._free = None  # unknown: the write will tell
        return self._free is None or size < self._free

    # -- reads -------------------------------------------------------------------------
    async def get(self, key: str, now: float | None = None) -> Entry | None:
        """The whole entry (body in memory, CRC checked), or None."""
        stream = await self.open_body(key, now)
        if stream is None:
            return None
        try:
            return await stream.read_entry()
        except CorruptEntry:
            return None

    async def open_body(self, key: str, now: float | None = None) -> BodyStream | None:
        """The entry's facts and its body as a file to read from, or None. The body is
        not checked yet: see BodyStream."""
        slot = self._usable(key, now)
        if slot is None:
            return None
        try:
            f, meta, length, epoch = await self._run(
                self._open_file, slot.path, key, slot, self._stamp()
            )
        except CorruptEntry as exc:
            await self._dropped_corrupt(key, slot, None, str(exc))
        except FileNotFoundError:
            self._forget(key, slot)
        except OSError as exc:
            self._read_failed(key, slot, exc)
        else:
            try:
                stream = BodyStream(self, key, slot, f, meta, length, epoch)
            except (CorruptEntry, KeyError, TypeError, ValueError) as exc:
                st = os.fstat(f.fileno())
                f.close()
                await self._dropped_corrupt(key, slot, st, f"bad meta: {exc}")
            else:
                self.hits += 1
                self.bytes_read += slot.size - length
                return stream
        self.misses += 1
        return None

    def _usable(self, key: str, now: float | None) -> _Slot | None:
        """The slot to read, now marked most recently used; None is a counted miss."""
        slot = self._index.get(key)
        if slot is None or self._closed:
            self.misses += 1
            return None
        if slot.expires <= (time.time() if now is None else now):
            # Past every stale window: of no use to anyone. A write in flight replaces it.
            if key not in self._locks:
                self._forget(key, slot)
                self.expired_dropped += 1
                self._spawn(self._unlink_locked(key, slot.path))
            self.misses += 1
            return None
        self._index.move_to_end(key)
        return slot

    def _open_file(
        self, path: str, key: str, slot: _Slot, stamp: int
    ) -> tuple[IO[bytes], dict[str, Any], int, int]:
        f = _open_entry(path)  # handed to the BodyStream
        try:
            meta, length = _read_header(f, key)
            with self._marks:
                epoch = self._mark(f.fileno(), slot, stamp)
        except CorruptEntry:
            _unlink_if_same(path, os.fstat(f.fileno()))
            f.close()
            raise
        except BaseException:
            f.close()
            raise
        return f, meta, length, epoch

    def _mark(self, fd: int, slot: _Slot, stamp: int | None) -> int:
        """Under _marks: notice a change we did not make (a new epoch, unchecked), stamp
        the file for the LRU, remember its ctime after our own touch. Returns the epoch.
        A change within the same ctime tick as our touch goes unnoticed here; the CRC
        of every full read still catches its damage."""
        if os.fstat(fd).st_ctime_ns != slot.mark:
            slot.epoch += 1
            slot.checked = False
        if stamp is not None:
            _touch(fd, stamp)
        slot.mark = os.fstat(fd).st_ctime_ns
        return slot.epoch

    def _confirm(self, fd: int, slot: _Slot, epoch: int) -> bool:
        """The body read in ``epoch`` matched its CRC: checked, unless the file changed
        meanwhile (then False: the caller's bytes are suspect)."""
        with self._marks:
            if self._mark(fd, slot, None) != epoch:
                return False
            slot.checked = True
            return True

    def _verify(self, fd: int, body_at: int, length: int, crc: int, slot: _Slot, epoch: int) -> int:
        """CRC of the body in bounded reads, unless this epoch was checked already;
        returns the bytes read."""
        with self._marks:
            if self._mark(fd, slot, None) == epoch and slot.checked:
                return 0
        got = 0
        for pos in range(0, length, CHUNK_BYTES):
            chunk = _pread_exact(fd, min(CHUNK_BYTES, length - pos), body_at + pos)
            got = zlib.crc32(chunk, got)
        if got != crc:
            raise CorruptEntry("body checksum mismatch")
        if not self._confirm(fd, slot, epoch):
            raise CorruptEntry("file changed while being checked")
        return length

    async def _dropped_corrupt(
        self, key: str, slot: _Slot, st: os.stat_result | None, why: str
    ) -> None:
        self.corrupt_dropped += 1
        self._forget(key, slot)
        if st is not None:
            await self._run(_unlink_if_same, slot.path, st)
        self._warnings.warn("corrupt", "disk tier: dropped a damaged file %s: %s", slot.path, why)

    def _read_failed(self, key: str, slot: _Slot, exc: OSError) -> None:
        self.read_errors += 1
        self._forget(key, slot)  # the file stays; a restart scan looks at it again
        self._warnings.warn("read", "disk tier: reading %s failed: %s", slot.path, exc)

    # -- writes ------------------------------------------------------------------------
    async def put(self, key: str, entry: Entry, now: float) -> bool:
        """Store ``entry`` (whole body in memory) until its last stale window closes.
        False when it is too large, has no time left, or the write failed. Either way any
        older version of the key goes: the tier never answers with an older version than
        the last one offered. The old version stays readable while the new one is written.
        """
        promised = _covers(self._promised.size(key), entry.size)
        self._promised.take(key)
        if not self._ready.is_set() or self._clearing or self._closed:
            return False
        ttl = ttl_for(entry, now)
        try:
            path = self._path(key)
        except UnicodeEncodeError:
            return False  # lone surrogates: not a key a file can name (nor one we stored)
        if not self._owns(path):
            return False  # another worker's bucket: its owner stores it
        fits = ttl > 0 and len(entry.body) <= self.max_object_bytes
        if fits and not promised and not self._admitted(key, entry.size):
            return False  # nothing written; a kept key is never refused, so none is old
        # Shielded: a cancelled caller must not leave a written file the index never saw.
        return await self._shielded(self._put(key, path, entry if fits else None, now + ttl))

    async def _put(self, key: str, path: str, entry: Entry | None, expires: float) -> bool:
        # Bytes on their way in: admission counts them as taken (module doc).
        writing = 0 if entry is None else entry.size
        self._writing += writing
        try:
            return await self._put_locked(key, path, entry, expires)
        finally:
            self._writing -= writing

    async def _put_locked(self, key: str, path: str, entry: Entry | None, expires: float) -> bool:
        async with self._key_lock(key):
            stored = handed = False
            size = 0
            if self._clearing:  # waited for the lock while clear() began: it would race
                entry = None
            if entry is not None:
                epoch = self._epoch
                try:
                    size = await self._run(self._write, path, key, entry, self._stamp())
                except (OSError, ValueError, TypeError) as exc:  # TypeError: orjson
                    self.write_errors += 1
                    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                        self._full_until = time.monotonic() + FULL_BACKOFF
                    self._warnings.warn("write", "disk tier: writing %s failed: %s", path, exc)
                else:
                    # A clear() meanwhile means this write came before it: it must not stay.
                    stored = epoch == self._epoch and size <= self.max_bytes
                    # A bucket lost meanwhile: the file stays for its new owner's next scan.
                    handed = stored and not self._owns(path)
                    stored = stored and not handed
            old = self._index.pop(key, None)
            if old is not None:
                self._bytes -= old.size
            if stored:
                self._index[key] = _Slot(path, size, expires)
                self._bytes += size
                self.stores += 1
                self.bytes_written += size
            elif not handed and (old is not None or entry is not None):
                await self._run(self._unlink, [path])  # the old version, or a new file to drop
        if stored:
            await self._evict(keep=key)
        return stored

    def _write(self, path: str, key: str, entry: Entry, stamp: int) -> int:
        body = entry.body
        header = encode_header(key, entry, len(body), zlib.crc32(body))
        folder = os.path.dirname(path)
        os.makedirs(folder, exist_ok=True)
        tmp = os.path.join(folder, TEMP_PREFIX + secrets.token_hex(8))
        try:
            with open(tmp, "xb", buffering=0) as f:
                _write_all(f, header)
                _write_all(f, body)
                os.utime(f.fileno(), ns=(stamp, stamp))
                if self.fsync:
                    os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with suppress(OSError):
                os.unlink(tmp)
            raise
        if self.fsync:
            # Makes the rename durable. Best effort: the file is in place and complete, and
            # failing here would leave the index out of step with the directory.
            with suppress(OSError):
                dfd = os.open(folder, os.O_RDONLY)
                try:
                    os.fsync(dfd)
                finally:
                    os.close(dfd)
        return len(header) + len(body)

    # -- deletes and eviction ----------------------------------------------------------
    async def delete(self, *keys: str) -> int:
        """Remove these keys; returns how many were stored. Waits for the open scan, so a
        purge during start-up is not undone by it."""
        if self._opening:
            await self._ready.wait()
        if not self._ready.is_set():
            return 0
        return await self._shielded(self._delete(keys))

    async def _delete(self, keys: tuple[str, ...]) -> int:
        removed = 0
        for key in keys:
            async with self._key_lock(key):
                slot = self._index.pop(key, None)
                if slot is None:
                    if self.shared:  # another worker's file goes too: a purge is machine-wide
                        with suppress(UnicodeEncodeError):
                            await self._run(self._unlink, [self._path(key)])
                    continue
                self._bytes -= slot.size
                removed += 1
                await self._run(self._unlink, [slot.path])
        return removed

    async def clear(self) -> int:
        """Remove every entry file (also any the index does not know); returns how many
        entries the index had."""
        if self._opening:
            await self._ready.wait()
        if not self._ready.is_set():
            return 0
        self._epoch += 1
        self._clearing += 1
        try:
            removed = len(self._index)
            self._index.clear()
            self._bytes = 0
            await self._shielded(self._run(self._remove_all))
        finally:
            self._clearing -= 1
        return removed

    async def _evict(self, keep: str | None) -> None:
        if self._bytes <= self.max_bytes:
            return
        victims: list[tuple[str, str]] = []
        for key in list(self._index):
            if self._bytes <= self.max_bytes:
                break
            if key == keep or key in self._locks:
                continue  # being written or deleted: that task owns the file
            slot = self._index.pop(key)
            self._bytes -= slot.size
            victims.append((key, slot.path))
        self.evictions += len(victims)
        if victims:
            # Held until the files are gone, so a put of a victim key cannot have its new
            # file removed by this unlink. Free locks: taken without yielding.
            async with AsyncExitStack() as stack:
                for key, _ in victims:
                    await stack.enter_async_context(self._key_lock(key))
                await self._run(self._unlink, [path for _, path in victims])

    async def _unlink_locked(self, key: str, path: str) -> None:
        async with self._key_lock(key):
            await self._run(self._unlink, [path])

    def _forget(self, key: str, slot: _Slot) -> None:
        if self._index.get(key) is slot:
            del self._index[key]
            self._bytes -= slot.size

    def _unlink(self, paths: list[str]) -> None:
        for path in paths:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            except OSError as exc:
                # The file outlives its index entry; the next restart scan sees it again.
                self._warnings.warn("unlink", "disk tier: cannot remove %s: %s", path, exc)

    # -- directory scans (threads) -----------------------------------------------------
    def _shards(self, buckets: frozenset[str] | None = None) -> list[str]:
        """The shard directories (of these buckets only, unless None)."""
        prefixes = None if buckets is None else {b[:2] for b in buckets}
        with os.scandir(self.root) as it:
            return [
                e.path
                for e in it
                if len(e.name) == 2
                and _HEX.issuperset(e.name)
                and (prefixes is None or e.name in prefixes)
                and e.is_dir(follow_symlinks=False)
            ]

    def _scan(self, now: float, buckets: frozenset[str] | None) -> _Scan:
        """The files of ``buckets`` (None: all), oldest stamp first."""
        scan = _Scan(found=[])
        if buckets is not None and not buckets:
            return scan
        for shard in self._shards(buckets):
            with os.scandir(shard) as it:
                entries = list(it)
            for e in entries:
                if e.name.startswith(TEMP_PREFIX):
                    self._scan_temp(e, now, scan)
                elif _is_digest(e.name) and (buckets is None or e.name[:BUCKET_CHARS] in buckets):
                    self._scan_file(e, now, scan)
        scan.found.sort(key=lambda f: f.stamp)
        return scan

    def _scan_temp(self, e: os.DirEntry[str], now: float, scan: _Scan) -> None:
        """Left by a crash mid-write: the lock means no writer is live, except in a
        shared directory, where another worker may be writing (so only old ones go)."""
        with suppress(FileNotFoundError):
            if self.shared and now - e.stat(follow_symlinks=False).st_mtime < SHARED_TEMP_AGE_S:
                return
            os.unlink(e.path)
            scan.temps += 1

    def _scan_file(self, e: os.DirEntry[str], now: float, scan: _Scan) -> None:
        if not e.is_file(follow_symlinks=False):  # a symlink, FIFO or folder: never ours
            scan.corrupt += 1
            with suppress(OSError):
                os.unlink(e.path)
            return
        try:
            with _open_entry(e.path) as f:
                st = os.fstat(f.fileno())
                try:
                    meta, length = _read_header(f, None)
                    key = meta[KEY_FIELD]
                    if _digest(key) != e.name:
                        raise CorruptEntry("key does not hash to the file name")
                    expires = now + ttl_for(_head_entry(meta, length), now)
                except (CorruptEntry, UnicodeEncodeError):
                    scan.corrupt += 1
                    os.unlink(e.path)
                    return
        except FileNotFoundError:
            return
        except CorruptEntry:  # swapped for an odd file since the listing: the next scan drops it
            scan.corrupt += 1
            return
        except OSError as exc:
            self._warnings.warn("scan", "disk tier: cannot read %s: %s", e.path, exc)
            return
        if expires <= now:
            scan.expired += 1
            with suppress(FileNotFoundError):
                os.unlink(e.path)
            return
        scan.found.append(_Found(st.st_mtime_ns, key, e.path, st.st_size, expires))

    def _remove_all(self) -> None:
        for shard in self._shards():
            with os.scandir(shard) as it:
                names = [e.path for e in it if _is_digest(e.name)]
            self._unlink(names)

    # -- helpers -----------------------------------------------------------------------
    def _path(self, key: str) -> str:
        h = _digest(key)
        return os.path.join(self.root, h[:2], h)

    def _stamp(self) -> int:
        """An LRU stamp for a file's mtime: wall-clock ns, strictly increasing within this
        tier so the restart order matches the index even within one clock tick."""
        self._clock = max(time.time_ns(), self._clock + 1)
        return self._clock

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def _shielded(self, coro: Coroutine[Any, Any, T]) -> T:
        return await asyncio.shield(self._spawn(coro))

    def _spawn(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """A task close() waits for."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    @asynccontextmanager
    async def _key_lock(self, key: str) -> AsyncIterator[None]:
        held = self._locks.get(key)
        if held is None:
            held = self._locks[key] = _KeyLock(asyncio.Lock())
        held.users += 1
        try:
            async with held.lock:
                yield
        finally:
            held.users -= 1
            if not held.users:
                del self._locks[key]

    @property
    def ready(self) -> bool:
        """open() has finished and close() has not begun."""
        return self._ready.is_set()

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, key: str) -> bool:
        return key in self._index

    def stats(self) -> dict[str, Any]:
        return {
            "hits": self.hits,
            "misses": self.misses,
            "stores": self.stores,
            "bytes_read": self.bytes_read,
            "bytes_written": self.bytes_written,
            "bytes": self._bytes,
            "entries": len(self._index),
            "evictions": self.evictions,
            "corrupt_dropped": self.corrupt_dropped,
            "expired_dropped": self.expired_dropped,
            "write_errors": self.write_errors,
            "read_errors": self.read_errors,
            "temps_removed": self.temps_removed,
            "admission_rejections": self.rejections,
            "max_bytes": self.max_bytes,
        }

    def register_metrics(self, stats: Stats) -> None:
        stats.sample_sizes(self.name, self.stats)
        stats.sample_lower_tier(self.name, self.stats)
        stats.sample(
            "edgeshield_cache_admission_rejections",
            self.name,
            lambda: {(self.name,): self.rejections},
        )


def _pread_exact(fd: int, n: int, offset: int) -> bytes:
    data = os.pread(fd, n, offset)
    if len(data) == n or not data:
        return data
    parts = [data]
    got = len(data)
    while got < n:  # regular files return short reads only at EOF; loop to be sure
        more = os.pread(fd, n - got, offset + got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def _write_all(f: IO[bytes], data: bytes) -> None:
    # An unbuffered FileIO.write is one write(2), which may be partial.
    view = memoryview(data)
    while view:
        n = f.write(view)
        if not n:
            raise OSError(errno.EIO, "write made no progress")
        view = view[n:]
