"""adjust: imgix ``bri``, ``con`` and ``sat`` (each -100..100, 0 unchanged) on the
8-bit sRGB pixels, alpha untouched.

- brightness adds ``bri`` percent of full scale (100 is white, -100 black), as imgix and
  Fastly describe it;
- contrast scales around mid-grey by the usual contrast-correction factor
  ``259 (C + 255) / (255 (259 - C))`` with ``C = con x 2.55``: -100 is flat grey, 100 a
  threshold;
- saturation scales the chroma in LCh by ``1 + sat / 100``: -100 is greyscale.
"""

from __future__ import annotations

import pyvips

from transforms.image.work import Work

MID_GREY = 127.5


def adjust(work: Work) -> None:
    options = work.options
    if not options.adjusted:
        return
    bri, con, sat = options.brightness, options.contrast, options.saturation
    work.per_frame(lambda frame: _adjust(frame, bri, con, sat))


def _adjust(frame: pyvips.Image, bri: float, con: float, sat: float) -> pyvips.Image:
    alpha = frame.extract_band(frame.bands - 1) if frame.hasalpha() else None
    colour = frame.extract_band(0, n=frame.bands - 1) if alpha is not None else frame
    colour = colour.copy(interpretation="srgb")
    if sat:
        lch = colour.colourspace("lch")
        colour = lch.linear([1.0, 1.0 + sat / 100, 1.0], [0.0, 0.0, 0.0]).colourspace("srgb")
    factor = contrast_factor(con)
    # One linear map for both: (x - mid) * factor + mid + offset.
    offset = bri * 2.55 + MID_GREY * (1 - factor)
    if factor != 1 or offset:
        colour = colour.linear(factor, offset)
    out = colour.cast("uchar")  # clips to 0..255
    if alpha is not None:
        out = out.bandjoin(alpha)
    return out.copy(interpretation="srgb")


def contrast_factor(con: float) -> float:
    c = con * 2.55
    return 259 * (c + 255) / (255 * (259 - c))
