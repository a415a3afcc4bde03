"""colourspace: 8-bit sRGB for the web. Embedded ICC profiles are applied (CMYK JPEGs
without one use libvips' built-in CMYK profile); 16-bit and grey sources become 8-bit
sRGB. With ``metadata`` other than none an RGB source keeps its own profile untouched
(wide-gamut images stay wide-gamut) and only CMYK/grey are converted."""

from __future__ import annotations

import pyvips

from transforms.image.work import Work


def colourspace(work: Work) -> None:
    image = work.img
    keep_icc = work.options.metadata != "none"
    interpretation = str(image.interpretation)
    has_profile = bool(image.get_typeof("icc-profile-data"))
    rgb = interpretation in ("srgb", "rgb", "rgb16", "scrgb")
    try:
        if has_profile and not (keep_icc and rgb):
            image = image.icc_transform("srgb", embedded=True, intent="perceptual")
        elif interpretation == "cmyk":
            image = image.icc_transform("srgb", input_profile="cmyk", intent="perceptual")
    except pyvips.Error:
        # A broken embedded profile: fall back to a plain conversion below.
        if has_profile:
            image = image.copy()
            image.remove("icc-profile-data")
    if str(image.interpretation) != "srgb" or str(image.format) != "uchar":
        image = image.colourspace("srgb")
        if str(image.format) != "uchar":
            image = image.cast("uchar")
    work.image = image
