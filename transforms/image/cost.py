"""What one transform holds in memory at its peak, estimated from the header and the plan
before a pixel is decoded. ``ImageWorkers`` reserves this much of
``images.memory_budget_bytes`` for the transform, so the transforms running at once
never add up to more than the budget.

The model is what libvips must hold, given the operation (measured with libvips 8.18,
one thread per transform; docs/images.md, "Memory budget"):

- a still image streams through the pipeline, except that random access (EXIF turns,
  vertical flips, smart crops, ``rect``) decodes the whole source first, and that the
  encoders hold the whole output in their own structures: measured per output pixel,
  JPEG/PNG 4-20 bytes, WebP 9 (opaque) to 44 (alpha or lossless), AVIF 23 to 52, GIF
  12 to 40 (28 for a noisy opaque photo; ``ENCODER_BYTES`` rounds these up);
- an animation is processed frame by frame (``Work.per_frame``), and every step that
  changes the frames renders them to memory: a step's input and output strips are both
  alive while it runs. The decoders keep a frame or two of canvas, and the encoders
  work one frame at a time.

Every term rounds up (RGBA even for RGB, the larger of two strips for both), so the
estimate is an upper bound: tests/unit/images/test_cost.py measures RSS against it.
"""

from __future__ import annotations

from math import ceil

from transforms.image.steps.load import decode_scale, needs_random
from transforms.image.work import Work

MiB = 1024 * 1024
# libvips' own working set per transform: region buffers, decoder and encoder state.
# Measured 10-17 MB over small outputs; rounded up.
BASE_BYTES = 24 * MiB
# After the colourspace step every stage is 8-bit sRGB with at most an alpha band.
RGBA = 4
# A free rotation's canvas holds the turned image: at most 2x the pixels (45 degrees).
ROTATION_GROWTH = 2
# Encoder memory per output pixel: (opaque, with alpha or lossless), measured and
# rounded up (module docstring). WebP and AVIF code the alpha plane separately.
ENCODER_BYTES: dict[str, tuple[int, int]] = {
    "jpeg": (12, 24),
    "png": (12, 24),
    "webp": (16, 56),
    "avif": (32, 64),
    "gif": (32, 48),
}


def peak_bytes(work: Work) -> int:
    """Upper bound of the memory of the decode, process and encode steps of ``work``
    (after probe, plan and negotiate)."""
    info, plan, options = work.info, work.plan, work.options
    assert info is not None and plan is not None
    scale = decode_scale(work)
    loaded = ceil(info.width * scale) * ceil(info.height * scale)  # one decoded frame
    decoded = loaded * max(info.pixel_bytes, RGBA)
    growth = ROTATION_GROWTH if options.rotate % 90 else 1
    output = plan.canvas_w * plan.canvas_h * growth  # pixels of one output frame
    frames = info.frames if work.animated else 1
    held = decoded * frames if needs_random(work) else 0
    held += output * encoder_bytes(work)
    if frames > 1:
        held += 3 * decoded  # the decoder's canvases
        if renders_frames(work):
            stage = max(plan.resize_w * plan.resize_h, output) * RGBA
            if options.rect is not None or options.flip or options.rotate:
                stage = max(stage, decoded)  # steps that run before the resize
            held += 2 * frames * stage
    return BASE_BYTES + held


def encoder_bytes(work: Work) -> int:
    """Encoder memory per output pixel, for this format and whether the output may
    carry alpha (an alpha source, a free rotation's corners, fit=pad's border)."""
    info, plan, options = work.info, work.plan, work.options
    assert info is not None and plan is not None
    alpha = (
        info.has_alpha
        or options.lossless
        or options.rotate % 90 != 0
        or (plan.canvas_w, plan.canvas_h) != (plan.crop_w, plan.crop_h)
    )
    return ENCODER_BYTES.get(work.format, ENCODER_BYTES["avif"])[alpha]


def renders_frames(work: Work) -> bool:
    """Some step changes the frames of an animation (so per_frame renders them): the
    same conditions the steps test, from the plan instead of the pixels."""
    info, plan, options = work.info, work.plan, work.options
    assert info is not None and plan is not None
    width, height = info.oriented
    return (
        options.rect is not None
        or bool(options.flip)
        or options.rotate != 0
        or (plan.resize_w, plan.resize_h) != (width, height)
        or (plan.crop_w, plan.crop_h) != (plan.resize_w, plan.resize_h)
        or (plan.canvas_w, plan.canvas_h) != (plan.crop_w, plan.crop_h)
        or options.blur > 0
        or options.sharpen > 0
        or options.adjusted
    )
