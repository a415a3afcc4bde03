"""Giving memory back to the system after bursts (glibc only; elsewhere a no-op).

Why: glibc's malloc raises its mmap threshold to the size of any mmapped block it frees
(up to 32 MiB), so after the first large buffers come and go, later ones of that size
are carved from the heap arenas instead, and freeing them only returns memory at the top
of a heap. Stalled readers of large objects left RSS hundreds of MiB above where it
started after they disconnected. Here: a fixed mmap threshold (128 KiB, glibc's initial
one: disk reads and response pieces are mapped and unmapped whole), and a lifespan task
that hands free heap pages back with ``malloc_trim(0)`` when there is enough of it, in a
thread, never on a request.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import platform

# mallopt parameters (malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 128 * 1024
# Free space at the top of a heap kept before glibc trims it by itself (its default).
TRIM_THRESHOLD = 128 * 1024
# How often the free heap bytes are looked at, and how many make a trim worth it.
TRIM_INTERVAL = 5.0
TRIM_SLACK = 4 * 1024 * 1024
COLLECT_SLACK = 16 * 1024 * 1024
COLLECT_INTERVAL = 30.0


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


class Malloc:
    """glibc's allocator, through ctypes."""

    def __init__(self, libc: ctypes.CDLL) -> None:
        self._libc = libc
        self._libc.mallinfo2.restype = _MallInfo2

    @classmethod
    def load(cls) -> Malloc | None:
        """glibc's allocator, or None (musl, macOS, a glibc older than 2.33)."""
        if platform.libc_ver()[0] != "glibc":
            return None
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            libc.mallinfo2, libc.malloc_trim, libc.mallopt  # noqa: B018 - present?
        except (OSError, AttributeError):
            return None
        return cls(libc)

    def tune(self) -> None:
        """Fixed thresholds: setting them turns glibc's dynamic adjustment off."""
        self._libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        self._libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)

    def free_bytes(self) -> int:
        """Free bytes inside the heaps (what a trim could hand back, at most)."""
        info: _MallInfo2 = self._libc.mallinfo2()
        return int(info.fordblks)

    def in_use(self) -> int:
        """Bytes handed out: from the heaps and as mmapped blocks."""
        info: _MallInfo2 = self._libc.mallinfo2()
        return int(info.uordblks + info.hblkhd)

    def trim(self) -> bool:
        """Return free heap pages to the system; True if some were."""
        return bool(self._libc.malloc_trim(0))


def tuned_malloc() -> Malloc | None:
    """Tune glibc's allocator for this process; the handle for `keep_trimmed`, or None."""
    malloc = Malloc.load()
    if malloc is not None:
        malloc.tune()
    return malloc


async def keep_trimmed(
    malloc: Malloc,
    *,
    interval: float = TRIM_INTERVAL,
    slack: int = TRIM_SLACK,
    collect_every: float = COLLECT_INTERVAL,
    collect_slack: int = COLLECT_SLACK,
) -> None:
    """A lifespan task. A full garbage collection at most every `collect_every` seconds
    while the bytes in use are `collect_slack` above their lowest level: httpcore's
    connections sit in reference cycles, so the read buffers of origin streams whose
    clients left go only with one (several MiB each), and an idle process never runs
    one by itself. Then a trim when the free bytes in the heaps grew by `slack` (a trim
    returns pages but still counts their bytes as free, hence the baseline)."""
    loop = asyncio.get_running_loop()
    floor, free_base = malloc.in_use(), malloc.free_bytes()
    collected = loop.time()
    while True:
        await asyncio.sleep(interval)
        if loop.time() - collected >= collect_every and malloc.in_use() - floor > collect_slack:
            gc.collect()
            collected = loop.time()
        floor = min(floor, malloc.in_use())
        free = malloc.free_bytes()
        if free - free_base > slack:
            await asyncio.to_thread(malloc.trim)
            free_base = malloc.free_bytes()
        else:
            free_base = min(free_base, free)
