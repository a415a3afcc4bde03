"""crop: cut the resized image to the planned box, around the gravity: a point (focal
point or side), or libvips' smart crop ("attention": edges, skin tones, saturation;
"entropy"). Animations use one window for every frame, taken from the first."""

from __future__ import annotations

import pyvips

from transforms.image.work import Work


def crop(work: Work) -> None:
    assert work.plan is not None
    width, height = work.plan.crop_w, work.plan.crop_h
    frame_w, frame_h = work.img.width, work.frame_height
    if (width, height) == (frame_w, frame_h):
        return
    gravity = work.options.gravity
    if gravity.mode != "point" and work.frames == 1:
        work.image = work.img.smartcrop(width, height, interesting=gravity.mode)
        return
    fx, fy = gravity.x, gravity.y
    if gravity.mode != "point":
        first = work.img.crop(0, 0, frame_w, frame_h)
        _, found = first.smartcrop(
            width, height, interesting="attention", attention_x=True, attention_y=True
        )
        fx, fy = found["attention_x"] / frame_w, found["attention_y"] / frame_h
    left = _offset(fx, frame_w, width)
    top = _offset(fy, frame_h, height)

    def apply(frame: pyvips.Image) -> pyvips.Image:
        return frame.crop(left, top, width, height)

    work.per_frame(apply)


def _offset(focus: float, size: int, window: int) -> int:
    """Centre the window on the focus, kept inside the image."""
    return min(max(round(focus * size - window / 2), 0), size - window)
