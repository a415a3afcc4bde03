"""Pure size arithmetic: from the source's size and the options to the sizes each step
produces. No pixels are touched here, so the plan (and its limits) is known before a
single pixel is decoded."""

from __future__ import annotations

from dataclasses import dataclass

from transforms.image.errors import ImageLimitError
from transforms.image.options import DOWN_ONLY, Fit, ImageOptions


@dataclass(frozen=True, slots=True)
class Plan:
    """Resize the (oriented, rect-cut, right-angle-rotated) source to ``resize``, crop
    that to ``crop``, then centre it on a ``canvas`` (only fit=pad makes it larger)."""

    resize_w: int
    resize_h: int
    crop_w: int
    crop_h: int
    canvas_w: int
    canvas_h: int

    @property
    def pixels(self) -> int:
        return self.canvas_w * self.canvas_h


def plan(src_w: int, src_h: int, options: ImageOptions, max_w: int, max_h: int) -> Plan:
    """Raises ``ImageLimitError(400)`` when the result would exceed ``max_w`` x
    ``max_h``; a source that is simply bigger than that and asks for no size is scaled
    down to fit instead."""
    box_w, box_h = options.device_width, options.device_height
    fit = options.fit
    if box_w is None and box_h is None and options.aspect is not None:
        # Like a source asked for no size: scaled down to the largest output if need be.
        box_w, box_h = reframe(src_w, src_h, options.aspect, pad=fit is Fit.PAD)
        box_w, box_h = _scaled(box_w, box_h, min(1.0, max_w / box_w, max_h / box_h))
    if box_w is None and box_h is None:
        scale = min(1.0, max_w / src_w, max_h / src_h)
        rw, rh = _scaled(src_w, src_h, scale)
        return _checked(Plan(rw, rh, rw, rh, rw, rh), max_w, max_h)
    if box_w is None or box_h is None:
        scale = box_w / src_w if box_w is not None else (box_h or 1) / src_h
        if fit in DOWN_ONLY and scale > 1:
            rw, rh = src_w, src_h
        elif box_w is not None:
            rw, rh = box_w, _side(src_h * scale)
        else:
            rw, rh = _side(src_w * scale), box_h or 1
        return _checked(Plan(rw, rh, rw, rh, rw, rh), max_w, max_h)
    sx, sy = box_w / src_w, box_h / src_h
    if fit is Fit.STRETCH:
        result = Plan(box_w, box_h, box_w, box_h, box_w, box_h)
    elif fit in (Fit.CONTAIN, Fit.SCALE_DOWN, Fit.PAD):
        scale = min(sx, sy)
        if fit is Fit.SCALE_DOWN and scale >= 1:
            rw, rh = src_w, src_h
        elif sx <= sy:
            rw, rh = box_w, min(box_h, _side(src_h * scale))
        else:
            rw, rh = min(box_w, _side(src_w * scale)), box_h
        canvas = (box_w, box_h) if fit is Fit.PAD else (rw, rh)
        result = Plan(rw, rh, rw, rh, *canvas)
    else:  # COVER, CROP, ASPECT_CROP
        scale = max(sx, sy)
        if fit is not Fit.COVER and scale >= 1:
            rw, rh = src_w, src_h
        elif sx >= sy:
            rw, rh = box_w, max(box_h, _side(src_h * scale))
        else:
            rw, rh = max(box_w, _side(src_w * scale)), box_h
        if fit is Fit.ASPECT_CROP:
            aspect = box_w / box_h
            cw, ch = min(rw, _side(rh * aspect)), min(rh, _side(rw / aspect))
        else:
            cw, ch = min(rw, box_w), min(rh, box_h)
        result = Plan(rw, rh, cw, ch, cw, ch)
    return _checked(result, max_w, max_h)


def reframe(src_w: int, src_h: int, aspect: float, *, pad: bool) -> tuple[int, int]:
    """The box of ``aspect`` (width / height) for a source at its own size: the largest
    one inside it (a crop), or with ``pad`` the smallest one holding it."""
    if pad:
        return max(src_w, _side(src_h * aspect)), max(src_h, _side(src_w / aspect))
    return min(src_w, _side(src_h * aspect)), min(src_h, _side(src_w / aspect))


def _scaled(w: int, h: int, scale: float) -> tuple[int, int]:
    if scale >= 1:
        return w, h
    return _side(w * scale), _side(h * scale)


def _side(value: float) -> int:
    return max(1, round(value))


def _checked(result: Plan, max_w: int, max_h: int) -> Plan:
    if (
        result.resize_w > max_w * 4
        or result.resize_h > max_h * 4
        or (result.canvas_w > max_w or result.canvas_h > max_h)
    ):
        raise ImageLimitError(
            400,
            f"output would be {result.canvas_w}x{result.canvas_h} "
            f"(resized {result.resize_w}x{result.resize_h}); the limit is {max_w}x{max_h}",
        )
    return result


__all__ = ["DOWN_ONLY", "Plan", "plan"]
