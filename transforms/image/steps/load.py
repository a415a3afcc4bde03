"""load: decode the pixels, shrinking on load where the decoder can.

Measured on the 2000x1500 JPEG -> 400x300 case (docs/images.md, libvips 8.18, one
thread): ``jpegload_buffer(shrink=4)`` + ``resize`` 10.5 ms, ``thumbnail_buffer`` 13.5 ms,
``jpegload_buffer`` without shrink + ``resize`` 22.1 ms. WebP source: ``webpload(scale=)``
+ resize 44 ms vs ``thumbnail_buffer`` 47 ms vs no scale 75 ms; PNG: 47 ms either way
(no shrink-on-load in PNG). So the engine always does its own load + resize and never
calls ``thumbnail_buffer``: it is never faster here, and the separate steps keep the
crop/rotate/pad order under our control.
"""

from __future__ import annotations

from transforms.image.steps.probe import ANIMATED_INPUTS, open_image
from transforms.image.work import Work

JPEG_SHRINKS = (8, 4, 2)


def load(work: Work) -> None:
    info = work.info
    assert info is not None
    animated = work.animated
    kwargs: dict[str, object] = {"access": "random" if needs_random(work) else "sequential"}
    if info.format in ANIMATED_INPUTS:
        kwargs["n"] = -1 if animated else 1
    scale = decode_scale(work)
    if info.format == "jpeg" and scale < 1:
        kwargs["shrink"] = round(1 / scale)
    elif info.format == "webp" and scale < 1:
        kwargs["scale"] = scale
    image = open_image(work.source, info.format, **kwargs)
    work.frames = int(image.get("n-pages")) if animated and image.get_typeof("n-pages") else 1
    if work.frames > 1 and image.height % work.frames:
        work.frames = 1
    work.image = image
    work.load_scale = image.width / info.width


def decode_scale(work: Work) -> float:
    """Loaded pixels per source pixel, per side: JPEG shrinks by 2, 4 or 8 on load and
    WebP scales freely, as far as the planned resize allows; other decoders load 1:1."""
    info = work.info
    assert info is not None
    need = _needed_scale(work)
    if info.format == "jpeg":
        return 1 / next((k for k in JPEG_SHRINKS if need * k <= 1), 1)
    if info.format == "webp":
        return need
    return 1.0


def needs_random(work: Work) -> bool:
    """Steps that read pixels out of order (turns, vertical flips, smart crops) need a
    random-access source; everything else streams top to bottom."""
    options, info = work.options, work.info
    assert info is not None
    return (
        info.orientation != 1
        or options.rotate != 0
        or "v" in options.flip
        or options.gravity.mode != "point"
        or options.rect is not None
    )


def _needed_scale(work: Work) -> float:
    """Loaded pixels per source pixel still enough for the planned resize."""
    info, plan, options = work.info, work.plan, work.options
    assert info is not None and plan is not None
    width, height = info.oriented
    if options.rect is not None:
        x, y, w, h = options.rect
        width, height = min(w, width - x), min(h, height - y)
    if options.rotate in (90, 270):
        width, height = height, width
    return min(1.0, max(plan.resize_w / width, plan.resize_h / height))
