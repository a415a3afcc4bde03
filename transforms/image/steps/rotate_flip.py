"""rotate_flip: mirror (``flip=h|v|hv``), then turn by right angles, before resizing, so
width and height refer to the turned image. Other angles: see free_rotate."""

from __future__ import annotations

import pyvips

from transforms.image.work import Work


def rotate_flip(work: Work) -> None:
    flip, angle = work.options.flip, work.options.rotate
    turn = angle if angle in (90, 180, 270) else 0
    if not flip and not turn:
        return

    def apply(frame: pyvips.Image) -> pyvips.Image:
        if "h" in flip:
            frame = frame.fliphor()
        if "v" in flip:
            frame = frame.flipver()
        if turn:
            frame = frame.rot(f"d{turn}")
        return frame

    work.per_frame(apply)
