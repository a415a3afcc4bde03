"""The memory estimate (transforms/image/cost.py), the budget step and the pool's memory
budget: the estimate bounds the measured peak, the pool never reserves more than its
budget, and animations beyond a limit become their first frame."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config.images import ImageLimits, ImageSettings
from tests.unit.images.conftest import (
    exif_rotated_jpeg,
    flat_animation,
    jpeg,
    photo,
    png,
    with_alpha,
)
from transforms.image import Fit, ImageLimitError, ImageOptions, ImageWorkers, transform
from transforms.image.cost import BASE_BYTES, peak_bytes
from transforms.image.negotiate import SourceInfo
from transforms.image.pipeline import PREPARE
from transforms.image.steps.negotiate import negotiate
from transforms.image.steps.plan import plan
from transforms.image.work import Work
from transforms.image.workers import MemoryBudget

MiB = 1024 * 1024
REPO = Path(__file__).resolve().parents[3]

# One transform in a fresh interpreter (so the allocator holds nothing from earlier
# tests): the source comes on stdin, the peak RSS increase and the estimate go out.
MEASURE = """
import json, sys, threading, time
import psutil
from config.images import ImageSettings
from transforms.image import ImageOptions, transform
from transforms.image.pipeline import PREPARE
from transforms.image.work import Work
from transforms.image.workers import configure_vips

settings = ImageSettings()
configure_vips(settings)
source = sys.stdin.buffer.read()
options = ImageOptions(**json.loads(sys.argv[1]))
work = Work(source=source, options=options, settings=settings, accept=None)
for step in PREPARE:
    step(work)
process = psutil.Process()
base = peak = process.memory_info().rss
done = threading.Event()

def sample():
    global peak
    while not done.is_set():
        peak = max(peak, process.memory_info().rss)
        time.sleep(0.002)

sampler = threading.Thread(target=sample)
sampler.start()
result = transform(source, options, None, settings)
done.set()
sampler.join()
print(json.dumps({"estimate": work.peak_bytes, "peak": peak - base, "frames": result.frames}))
"""


def measure(source: bytes, **options: object) -> dict[str, int]:
    run = subprocess.run(
        [sys.executable, "-c", MEASURE, json.dumps(options)],
        input=source,
        capture_output=True,
        cwd=REPO,
        timeout=120,
        check=True,
    )
    return json.loads(run.stdout)


ANIMATION = flat_animation(300, 300, 60)
CASES = [
    pytest.param(ANIMATION, {"width": 280}, id="animation-resized"),
    pytest.param(ANIMATION, {"width": 200, "rotate": 90}, id="animation-turned"),
    pytest.param(ANIMATION, {"format": "webp"}, id="animation-converted"),
    pytest.param(png(with_alpha(photo(1200, 900))), {"format": "webp"}, id="alpha-webp"),
    pytest.param(jpeg(photo(2400, 1600)), {"format": "webp"}, id="large-webp"),
    pytest.param(exif_rotated_jpeg(1600, 1200), {"width": 800}, id="exif-turned"),
]


@pytest.mark.parametrize(("source", "options"), CASES)
def test_the_estimate_bounds_the_measured_peak(source: bytes, options: dict[str, object]) -> None:
    found = measure(source, **options)
    assert 0 < found["peak"] <= found["estimate"], found


def test_animation_beyond_the_memory_budget_is_its_first_frame() -> None:
    small = ImageSettings(memory_budget_bytes=32 * MiB)
    result = transform(ANIMATION, ImageOptions(width=280), None, small)
    assert (result.frames, result.width, result.format) == (1, 280, "gif")
    assert transform(ANIMATION, ImageOptions(width=280), None, ImageSettings()).frames == 60


def test_upscaling_an_animation_is_the_work_of_its_output() -> None:
    # 60 frames of 300 px are 5.4 MP to decode, but 60 x 1400 x 1400 = 118 MP to make:
    # over max_animation_pixels, so the first frame (a 1.96 MP GIF still).
    options = ImageOptions(width=1400, fit=Fit.CONTAIN)  # imgix ?w=1400 (fit=clip)
    result = transform(ANIMATION, options, None, ImageSettings())
    assert (result.frames, result.width) == (1, 1400)
    # At w=4000 even that still is a 16 MP GIF: more than a slow encoder may make.
    with pytest.raises(ImageLimitError) as info:
        transform(ANIMATION, ImageOptions(width=4000, fit=Fit.CONTAIN), None, ImageSettings())
    assert info.value.status == 413 and "slow encoders" in info.value.reason


def test_a_still_above_the_budget_is_413_with_a_reason() -> None:
    small = ImageSettings(memory_budget_bytes=32 * MiB)
    with pytest.raises(ImageLimitError) as info:
        transform(jpeg(photo(2400, 1600)), ImageOptions(format="webp"), None, small)
    assert info.value.status == 413 and "memory budget" in info.value.reason


async def test_the_pool_never_reserves_more_than_its_budget() -> None:
    budget = 96 * MiB
    pool = ImageWorkers(ImageSettings(threads=2, queue_depth=8, memory_budget_bytes=budget))
    try:
        jobs = [pool.run(ANIMATION, ImageOptions(width=w), None) for w in (250, 260, 270, 280)]
        results = await asyncio.gather(*jobs)
    finally:
        pool.close()
    assert [r.frames for r in results] == [60] * 4
    # Each needs more than half the budget, so they ran one at a time.
    assert BASE_BYTES < pool.memory.peak <= budget
    assert pool.memory.used == 0


def test_reservations_are_granted_in_arrival_order() -> None:
    budget = MemoryBudget(10)
    granted: list[str] = []

    def take(name: str, nbytes: int) -> None:
        with budget.reserve(nbytes):
            granted.append(name)

    with budget.reserve(8):
        big = threading.Thread(target=take, args=("big", 5))
        big.start()
        wait_for(lambda: budget.waiting == 1)
        small = threading.Thread(target=take, args=("small", 1))
        small.start()
        wait_for(lambda: budget.waiting == 2)
        # 1 byte would fit now, but it arrived after the 5 that do not.
        assert granted == []
    big.join(30)
    small.join(30)
    assert granted == ["big", "small"] and budget.used == 0 and budget.peak == 8


def wait_for(condition: object, rounds: int = 30_000) -> None:
    """Hang guard only: polls until true (the threads reach their wait quickly)."""
    for _ in range(rounds):
        if condition():  # type: ignore[operator]
            return
        threading.Event().wait(0.001)
    raise AssertionError("condition never became true")


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=0, max_value=120), min_size=1, max_size=12),
    limit=st.integers(min_value=1, max_value=100),
)
def test_concurrent_reservations_stay_within_the_limit(sizes: list[int], limit: int) -> None:
    budget = MemoryBudget(limit)
    seen: list[int] = []

    def take(nbytes: int) -> None:
        with budget.reserve(nbytes):
            seen.append(budget.used)

    threads = [threading.Thread(target=take, args=(n,)) for n in sizes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(seen) == len(sizes) and max(seen) <= limit and budget.used == 0


@settings(max_examples=200, deadline=None)
@given(
    width=st.integers(1, 3000),
    height=st.integers(1, 3000),
    frames=st.integers(1, 300),
    out=st.one_of(st.none(), st.integers(1, 4000)),
    rotate=st.sampled_from([0, 90, 45]),
    fmt=st.sampled_from(["jpeg", "webp", "gif", "png", "avif", None]),
)
def test_the_estimate_grows_with_frames_and_output(
    width: int, height: int, frames: int, out: int | None, rotate: int, fmt: str | None
) -> None:
    """From the header alone, for any shape: at least the base, never less for more
    frames, never less for a larger output."""

    def estimate(frames: int, out: int | None) -> int:
        options = ImageOptions(width=out, rotate=rotate, format=fmt)  # type: ignore[arg-type]
        info = SourceInfo("gif", width, height, has_alpha=True, frames=frames)
        limits = ImageLimits(max_output_width=16384, max_output_height=16384)
        work = Work(b"", options, ImageSettings(limits=limits), None, info=info)
        plan(work)
        negotiate(work)
        return peak_bytes(work)

    now = estimate(frames, out)
    assert now >= BASE_BYTES
    assert estimate(frames + 1, out) >= now
    if out is not None and out + 100 < width:
        # (both shrink, so both render their frames: an output the size of the source
        # skips that work and may cost a few bytes less than a smaller one)
        assert estimate(frames, out + 100) >= now


def test_prepare_reads_no_pixels_and_sets_the_estimate() -> None:
    work = Work(ANIMATION, ImageOptions(width=100), ImageSettings(), None)
    for step in PREPARE:
        step(work)
    assert work.image is None and work.peak_bytes > BASE_BYTES
