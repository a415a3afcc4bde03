"""rect: cut the source rectangle (imgix ``rect=x,y,w,h``, source pixels) before any
resizing; coordinates follow the shrink-on-load scale."""

from __future__ import annotations

from transforms.image.work import Work


def rect(work: Work) -> None:
    if work.options.rect is None:
        return
    x, y, w, h = work.options.rect
    scale = work.load_scale
    image = work.img
    frame_h = work.frame_height
    left = min(int(x * scale), image.width - 1)
    top = min(int(y * scale), frame_h - 1)
    width = max(1, min(round(w * scale), image.width - left))
    height = max(1, min(round(h * scale), frame_h - top))
    work.per_frame(lambda frame: frame.crop(left, top, width, height))
