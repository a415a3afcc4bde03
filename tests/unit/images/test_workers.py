"""The bounded pool: results come back, and a full queue answers Overloaded at once."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from config.images import ImageSettings
from transforms.image import ImageLimitError, ImageOptions, ImageWorkers, Overloaded
from transforms.image import workers as workers_module


async def test_run_transforms_on_the_pool(photo_jpeg: bytes) -> None:
    pool = ImageWorkers(ImageSettings(threads=2, queue_depth=4))
    try:
        results = await asyncio.gather(
            *(
                pool.run(photo_jpeg, ImageOptions(width=w, format="auto"), "image/webp")
                for w in (50, 60, 70)
            )
        )
        assert [(r.width, r.format) for r in results] == [(50, "webp"), (60, "webp"), (70, "webp")]
        with pytest.raises(ImageLimitError):
            await pool.run(b"garbage", ImageOptions(width=10), None)
        assert pool.admitted == 0
        later = await pool.encode_avif_later(photo_jpeg, ImageOptions(width=40, format="auto"))
        assert later is not None and later.format == "avif"
    finally:
        pool.close()


async def test_full_queue_raises_overloaded_with_retry_after(
    monkeypatch: pytest.MonkeyPatch, photo_jpeg: bytes
) -> None:
    release = threading.Event()

    def slow_transform(*args: object) -> object:
        release.wait(10)
        time.sleep(0.01)
        return "done"

    monkeypatch.setattr(workers_module, "transform", slow_transform)
    pool = ImageWorkers(ImageSettings(threads=2, queue_depth=3))
    try:
        jobs = [
            asyncio.ensure_future(pool.run(photo_jpeg, ImageOptions(width=10), None))
            for _ in range(5)
        ]
        await asyncio.sleep(0)
        assert pool.admitted == 5 == pool.capacity
        with pytest.raises(Overloaded) as info:
            await pool.run(photo_jpeg, ImageOptions(width=10), None)
        assert info.value.retry_after >= 1 and info.value.status == 503
        # Background AVIF work is optional: a full pool just skips it.
        assert await pool.encode_avif_later(photo_jpeg, ImageOptions(width=10)) is None
        release.set()
        assert await asyncio.gather(*jobs) == ["done"] * 5
        assert pool.admitted == 0
        # Room again: admitted at once.
        assert await pool.run(photo_jpeg, ImageOptions(width=10), None) == "done"
    finally:
        release.set()
        pool.close()


async def test_cancelled_callers_keep_their_slot_until_the_job_ends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    release = threading.Event()
    monkeypatch.setattr(workers_module, "transform", lambda *args: release.wait(10))
    pool = ImageWorkers(ImageSettings(threads=1, queue_depth=0))
    try:
        job = asyncio.ensure_future(pool.run(b"", ImageOptions(), None))
        await asyncio.sleep(0.01)
        job.cancel()
        await asyncio.sleep(0.01)
        with pytest.raises(Overloaded):
            await pool.run(b"", ImageOptions(), None)
        release.set()
        for _ in range(100):
            if pool.admitted == 0:
                break
            await asyncio.sleep(0.01)
        assert pool.admitted == 0
    finally:
        release.set()
        pool.close()
