"""keep_original: a plain URL on a route with ``auto_format`` is made into AVIF or WebP
only when that is the same picture: a still JPEG or PNG (an animated PNG would lose its
frames), kept at its own size, going to a format the client named. Otherwise the
transform stops with ``KeepOriginal`` before any pixel is decoded, and the proxy answers
the original bytes."""

from __future__ import annotations

from transforms.image.errors import KeepOriginal
from transforms.image.sniff import is_animated_png
from transforms.image.work import Work

CONVERTED = frozenset({"jpeg", "png"})


def keep_original(work: Work) -> None:
    if not work.options.original:
        return
    info, plan = work.info, work.plan
    assert info is not None and plan is not None
    if info.format not in CONVERTED or info.frames > 1:
        raise KeepOriginal(f"a {info.format} source is answered as it is")
    if info.format == "png" and is_animated_png(work.source):
        raise KeepOriginal("an animated PNG is answered as it is")
    if (plan.canvas_w, plan.canvas_h) != info.oriented:
        raise KeepOriginal("the source is larger than the largest output")
    if work.format not in ("avif", "webp"):
        raise KeepOriginal("the client takes neither AVIF nor WebP")
