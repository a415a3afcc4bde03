"""budget: what the transform may cost, decided from the header and the plan.

An animation is kept only within every animation limit: frames, decoded pixels, the
work of the output (frames x (source + output) pixels) and the memory budget. Beyond
them it becomes a still of its first frame, as imgproxy (first frame by default,
IMGPROXY_MAX_ANIMATION_FRAMES), MediaWiki ($wgMaxAnimatedGifArea) and Sanity do: the
page shows a picture rather than a broken image, at the cost of one frame. Then the
peak memory is estimated (transforms/image/cost.py); a still image above the whole
budget is refused with 413, and so is a still output too large for a slow encoder (GIF,
lossless WebP: `limits.max_slow_output_pixels`), which costs CPU the memory budget does
not see.
"""

from __future__ import annotations

from dataclasses import replace

from transforms.image.cost import peak_bytes
from transforms.image.errors import ImageLimitError
from transforms.image.steps.negotiate import negotiate
from transforms.image.work import Work

MB = 1_000_000


def budget(work: Work) -> None:
    info, ceiling = work.info, work.settings.memory_budget_bytes
    assert info is not None
    if work.animated and not animation_fits(work):
        work.info = replace(info, frames=1)
        negotiate(work)  # a still may take another format (AVIF, JPEG)
    slow = slow_encoder(work)
    plan = work.plan
    assert plan is not None
    pixels = plan.canvas_w * plan.canvas_h
    if slow and not work.animated and pixels > work.settings.limits.max_slow_output_pixels:
        raise ImageLimitError(
            413,
            f"a {slow} output of {pixels} pixels is over the limit of "
            f"{work.settings.limits.max_slow_output_pixels} for slow encoders "
            "(ask for a smaller output or another format)",
        )
    work.peak_bytes = peak_bytes(work)
    if work.peak_bytes > ceiling:
        raise ImageLimitError(
            413,
            f"this transform needs about {ceil_mb(work.peak_bytes)} MB; the image memory "
            f"budget is {ceil_mb(ceiling)} MB (ask for a smaller output)",
        )


def animation_fits(work: Work) -> bool:
    info, plan, limits = work.info, work.plan, work.settings.limits
    assert info is not None and plan is not None
    frames, source = info.frames, info.width * info.height
    output = plan.canvas_w * plan.canvas_h
    return (
        frames <= limits.max_frames
        and frames * source <= limits.max_input_pixels
        and frames * (source + output) <= limits.max_animation_pixels
        and peak_bytes(work) <= work.settings.memory_budget_bytes
    )


def slow_encoder(work: Work) -> str | None:
    """GIF (its palette search) and lossless WebP cost seconds of CPU per output
    megapixel, where JPEG costs tens of ms: their name when this output uses one."""
    if work.format == "gif":
        return "GIF"
    if work.format == "webp" and work.options.lossless:
        return "lossless WebP"
    return None


def ceil_mb(nbytes: int) -> int:
    return -(-nbytes // MB)
