"""free_rotate: angles that are not right angles (imgix ``rot=0..359``) turn the result,
on a canvas that grows to hold it; the corners get the background (transparent when the
output format has alpha and no ``bg`` is given)."""

from __future__ import annotations

import pyvips

from transforms.image.steps.background import fill_colour
from transforms.image.work import Work


def free_rotate(work: Work) -> None:
    angle = work.options.rotate
    if angle % 90 == 0:
        return
    colour = fill_colour(work)
    if colour[3] < 255 and not work.img.hasalpha():
        work.image = work.img.bandjoin_const([255])

    def apply(frame: pyvips.Image) -> pyvips.Image:
        values = list(colour) if frame.bands == 4 else list(colour[:3])
        return frame.rotate(float(angle), background=values)

    work.per_frame(apply)
