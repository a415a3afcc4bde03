"""What happens to an image, in order. Each step is one small function in
``steps/<name>.py``; read the lists below and you know the whole transform."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

import pyvips

from config.images import ImageSettings
from transforms.image.errors import ImageLimitError
from transforms.image.options import ImageOptions
from transforms.image.steps.adjust import adjust
from transforms.image.steps.autorotate import autorotate
from transforms.image.steps.background import background
from transforms.image.steps.blur_sharpen import blur_sharpen
from transforms.image.steps.budget import budget
from transforms.image.steps.colourspace import colourspace
from transforms.image.steps.crop import crop
from transforms.image.steps.describe import describe
from transforms.image.steps.encode import encode
from transforms.image.steps.free_rotate import free_rotate
from transforms.image.steps.keep_original import keep_original
from transforms.image.steps.load import load
from transforms.image.steps.lqip import lqip
from transforms.image.steps.negotiate import negotiate
from transforms.image.steps.plan import plan
from transforms.image.steps.probe import probe
from transforms.image.steps.rect import rect
from transforms.image.steps.resize import resize
from transforms.image.steps.rotate_flip import rotate_flip
from transforms.image.steps.strip_metadata import strip_metadata
from transforms.image.work import TransformResult, Work

Step = Callable[[Work], None]
# Holds `n` bytes of the pool's memory budget while the pixels are processed.
Reserve = Callable[[int], AbstractContextManager[object]]

PREPARE: tuple[Step, ...] = (
    probe,  # size/format/pixel limits from the header: nothing decoded yet
    lqip,  # a placeholder request becomes a tiny blurred one
    plan,  # every later size, and the output limits
    negotiate,  # output format from options, Accept and source
    keep_original,  # a plain URL: converted only when that is the same picture
    budget,  # animation limits (else first frame), peak memory estimate
)
PROCESS: tuple[Step, ...] = (
    load,  # decode, shrinking on load where the decoder can
    autorotate,  # EXIF orientation
    colourspace,  # 8-bit sRGB (ICC, CMYK, 16-bit, grey)
    rect,  # source rectangle
    rotate_flip,  # mirror, right-angle turns
    resize,  # Lanczos3 to the planned size
    crop,  # to the box, around the gravity / smart crop
    adjust,  # brightness, contrast, saturation
    blur_sharpen,
    background,  # pad to the canvas, fill or flatten transparency
    free_rotate,  # other angles, on a canvas grown to fit
)
FINALIZE: tuple[Step, ...] = (
    strip_metadata,  # privacy: EXIF/GPS/XMP gone unless asked to keep
    encode,
)
DESCRIBE: tuple[Step, ...] = (probe, describe)  # fm=json


def steps_for(options: ImageOptions) -> tuple[tuple[Step, ...], tuple[Step, ...]]:
    """The steps before and after the memory reservation (header only / pixels)."""
    if options.format == "json":
        return DESCRIBE, ()
    return PREPARE, (*PROCESS, *FINALIZE)


def transform(
    source: bytes,
    options: ImageOptions,
    accept: str | None,
    settings: ImageSettings,
    reserve: Reserve = lambda _: nullcontext(),
) -> TransformResult:
    """Run the whole transform, synchronously (call it from a worker thread: libvips
    releases the GIL). ``reserve(peak_bytes)`` is held from the first decoded pixel to
    the encoded body (``ImageWorkers`` waits there for its memory budget). Raises
    ``ImageLimitError`` (400/413/422) or ``ImageOptionError`` (400); libvips errors
    become 422."""
    work = Work(source=source, options=options, settings=settings, accept=accept)
    prepare, process = steps_for(options)
    try:
        for step in prepare:
            step(work)
        if process:
            with reserve(work.peak_bytes):
                for step in process:
                    step(work)
    except pyvips.Error as exc:
        detail = str(getattr(exc, "detail", "") or exc.message).strip().splitlines()
        reason = detail[0][:200] if detail else "unknown libvips error"
        raise ImageLimitError(422, f"cannot process the image: {reason}") from None
    return work.result()


def encode_avif_later(
    source: bytes,
    options: ImageOptions,
    settings: ImageSettings,
    reserve: Reserve = lambda _: nullcontext(),
) -> TransformResult:
    """The AVIF for a variant first answered with WebP ("background" AVIF mode): the
    pipeline runs this off the request path and replaces the cached variant's body."""
    return transform(source, options.with_changes(format="avif"), None, settings, reserve)
