"""background: pad to the planned canvas (fit=pad; imgix ``fill-color`` when given) and
fill transparency. Outputs
without alpha (JPEG) are flattened onto the background (white by default); with
``bg``/``background`` given, transparent areas are composited over it in any format."""

from __future__ import annotations

import pyvips

from transforms.image.options import Rgba
from transforms.image.work import Work

WHITE: Rgba = (255, 255, 255, 255)
CLEAR: Rgba = (255, 255, 255, 0)


def background(work: Work) -> None:
    assert work.plan is not None
    plan = work.plan
    if (plan.canvas_w, plan.canvas_h) != (work.img.width, work.frame_height):
        colour = work.options.fill or fill_colour(work)
        if colour[3] < 255 and not work.img.hasalpha():
            work.image = work.img.bandjoin_const([255])
        left = (plan.canvas_w - work.img.width) // 2
        top = (plan.canvas_h - work.frame_height) // 2

        def pad(frame: pyvips.Image) -> pyvips.Image:
            values = list(colour) if frame.bands == 4 else list(colour[:3])
            return frame.embed(
                left, top, plan.canvas_w, plan.canvas_h, extend="background", background=values
            )

        work.per_frame(pad)
    if not work.img.hasalpha():
        return
    given = work.options.background
    if work.format == "jpeg" or (given is not None and given[3] == 255):
        rgb = list((given or WHITE)[:3])
        work.image = work.img.flatten(background=rgb)
    elif given is not None:
        plane = work.img.new_from_image(list(given)).copy(interpretation="srgb")
        work.image = plane.composite2(work.img, "over").cast("uchar")


def fill_colour(work: Work) -> Rgba:
    """The colour of new pixels (padding, rotation corners)."""
    if work.options.background is not None:
        return work.options.background
    return WHITE if work.format == "jpeg" else CLEAR
