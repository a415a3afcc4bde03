"""plan: the sizes of every later step, from the header alone (and the output limits)."""

from __future__ import annotations

from transforms.image.errors import ImageOptionError
from transforms.image.geometry import plan as make_plan
from transforms.image.work import Work


def plan(work: Work) -> None:
    info, options, limits = work.info, work.options, work.settings.limits
    assert info is not None
    width, height = info.oriented
    if options.rect is not None:
        x, y, w, h = options.rect
        if x >= width or y >= height:
            raise ImageOptionError(
                "rect",
                f"a rectangle inside the {width}x{height} source",
                ",".join(map(str, options.rect)),
            )
        width, height = min(w, width - x), min(h, height - y)
    if options.rotate in (90, 270):
        width, height = height, width
    work.plan = make_plan(width, height, options, limits.max_output_width, limits.max_output_height)
