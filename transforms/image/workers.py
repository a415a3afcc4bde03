"""``ImageWorkers``: transforms run on a bounded thread pool with a bounded queue.

libvips releases the GIL for the whole of a transform, so N threads keep N cores busy.
At most ``threads + queue_depth`` transforms are admitted at once; the next one raises
``Overloaded(retry_after)`` at once (503 + Retry-After) instead of queueing without bound.
Memory is bounded by ``memory_budget_bytes``: each transform reserves its estimated peak
(transforms/image/cost.py) after reading the header and before decoding, and waits, in
arrival order, until it fits beside the transforms running.

libvips state is process-wide, not per object: the constructor applies it (operation
cache off, threads per operation, untrusted loaders blocked, SVG blocked unless enabled).
Create one ``ImageWorkers`` per process, in the app's lifespan, and ``close()`` it there.
"""

from __future__ import annotations

import asyncio
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager

import pyvips

from config.images import ImageSettings
from transforms.image.errors import Overloaded
from transforms.image.options import ImageOptions
from transforms.image.pipeline import encode_avif_later, transform
from transforms.image.work import TransformResult

# Until a job has been timed, assume this many seconds per transform.
INITIAL_JOB_SECONDS = 0.05
MAX_RETRY_AFTER = 60


def configure_vips(settings: ImageSettings) -> None:
    """Process-wide libvips settings for serving untrusted images.

    - the operation cache is off: every transform is a different image, and the cache
      would only hold memory (and open buffers) nobody asks for again;
    - ``vips_concurrency`` threads per operation (1: the pool gives the parallelism);
    - operations libvips marks untrusted (SVG, the vips/matrix/csv formats ...) are
      blocked; the SVG loader is unblocked only when ``svg = true``.
    """
    pyvips.cache_set_max(0)
    pyvips.cache_set_max_mem(0)
    pyvips.cache_set_max_files(0)
    pyvips.concurrency_set(settings.vips_concurrency)
    pyvips.block_untrusted_set(True)
    pyvips.operation_block_set("VipsForeignLoadSvg", not settings.svg)


class MemoryBudget:
    """Bytes reserved by the transforms running now: never more than ``limit``.

    Reservations are granted in arrival order, so a large transform is not starved by a
    stream of small ones; a worker thread waits in ``reserve`` until its turn comes and
    its bytes fit. Every waiter is an admitted job, so the queue is bounded by
    ``threads + queue_depth``, and every holder is running, so the wait ends.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.peak = 0  # most bytes reserved at once (tests, benchmarks)
        self._turns: deque[object] = deque()
        self._changed = threading.Condition()

    @property
    def waiting(self) -> int:
        """Transforms waiting for their reservation."""
        return len(self._turns)

    @contextmanager
    def reserve(self, nbytes: int) -> Iterator[None]:
        # The budget step refuses more than the limit; clamping keeps a wrong caller
        # from waiting forever.
        nbytes = max(0, min(nbytes, self.limit))
        turn = object()
        with self._changed:
            self._turns.append(turn)
            while self._turns[0] is not turn or self.used + nbytes > self.limit:
                self._changed.wait()
            self._turns.popleft()
            self.used += nbytes
            self.peak = max(self.peak, self.used)
            self._changed.notify_all()  # the next in line may fit too
        try:
            yield
        finally:
            with self._changed:
                self.used -= nbytes
                self._changed.notify_all()


class ImageWorkers:
    def __init__(self, settings: ImageSettings) -> None:
        configure_vips(settings)
        self.settings = settings
        self.memory = MemoryBudget(settings.memory_budget_bytes)
        self.threads = settings.threads or os.cpu_count() or 1
        self.capacity = self.threads + settings.queue_depth
        self._executor = ThreadPoolExecutor(self.threads, thread_name_prefix="edgeshield-image")
        self._lock = threading.Lock()
        self._admitted = 0
        self._job_seconds = INITIAL_JOB_SECONDS
        self._closed = False
        # Jobs finished (succeeded or failed) since start: for metrics, tests, benchmarks.
        self.transforms_done = 0

    @property
    def admitted(self) -> int:
        """Transforms running or queued right now."""
        return self._admitted

    async def run(
        self, source: bytes, options: ImageOptions, accept: str | None
    ) -> TransformResult:
        """Transform on a worker thread. Raises ``Overloaded`` when full, and whatever
        ``transforms.image.pipeline.transform`` raises (ImageLimitError, ImageOptionError).
        Cancelling the caller does not stop a started transform; its slot is freed when
        it ends."""
        future = self._submit(
            transform, source, options, accept, self.settings, self.memory.reserve
        )
        return await asyncio.wrap_future(future)

    async def encode_avif_later(
        self, source: bytes, options: ImageOptions
    ) -> TransformResult | None:
        """The background AVIF of "background" mode, on the same pool; None when the
        pool is full (the variant simply stays WebP until the next chance)."""
        try:
            future = self._submit(
                encode_avif_later, source, options, self.settings, self.memory.reserve
            )
        except Overloaded:
            return None
        return await asyncio.wrap_future(future)

    def retry_after(self) -> int:
        """Seconds until the queue has likely drained enough to admit a new job."""
        waves = self._admitted / self.threads
        return max(1, min(MAX_RETRY_AFTER, math.ceil(waves * self._job_seconds)))

    def close(self) -> None:
        self._closed = True
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _submit(self, fn: Callable[..., TransformResult], *args: object) -> Future[TransformResult]:
        with self._lock:
            if self._closed or self._admitted >= self.capacity:
                raise Overloaded(self.retry_after())
            self._admitted += 1
        started = time.perf_counter()

        def timed() -> TransformResult:
            nonlocal started
            started = time.perf_counter()
            return fn(*args)

        try:
            future = self._executor.submit(timed)
        except RuntimeError:  # shut down meanwhile
            with self._lock:
                self._admitted -= 1
            raise Overloaded(self.retry_after()) from None

        def done(_: Future[TransformResult]) -> None:
            elapsed = time.perf_counter() - started
            with self._lock:
                self._admitted -= 1
                self.transforms_done += 1
                self._job_seconds += (elapsed - self._job_seconds) * 0.2

        future.add_done_callback(done)
        return future
