"""resize: Lanczos3 to the planned size (exact integers; alpha premultiplied so edges
do not darken)."""

from __future__ import annotations

import pyvips

from transforms.image.work import Work


def resize(work: Work) -> None:
    assert work.plan is not None
    width, height = work.plan.resize_w, work.plan.resize_h
    if work.img.width == width and work.frame_height == height:
        return

    def apply(frame: pyvips.Image) -> pyvips.Image:
        hscale, vscale = width / frame.width, height / frame.height
        if frame.hasalpha():
            done = frame.premultiply().resize(hscale, vscale=vscale, kernel="lanczos3")
            return done.unpremultiply().cast(frame.format)
        return frame.resize(hscale, vscale=vscale, kernel="lanczos3")

    work.per_frame(apply)
