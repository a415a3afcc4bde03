"""lqip: a low-quality image placeholder is a tiny, blurred, low-quality variant. The
size, blur and quality come from ``[images.lqip]``; the rest of the options still apply."""

from __future__ import annotations

from transforms.image.work import Work


def lqip(work: Work) -> None:
    if not work.options.lqip:
        return
    placeholder = work.settings.lqip
    work.options = work.options.with_changes(
        lqip=False,
        width=placeholder.width,
        blur=placeholder.blur,
        quality=placeholder.quality,
        metadata="none",
    )
