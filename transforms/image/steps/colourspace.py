"""colourspace: 8-bit sRGB for the web. Embedded ICC profiles are applied (CMYK JPEGs
without one use libvips' built-in CMYK profile); 16-bit and grey sources become 8-bit
sRGB. With ``metadata`` other than none an RGB source keeps its own profile untouched
(wide-gamut images stay wide-gamut, imgix ``cs=origin``) and only CMYK/grey are
converted. ``profile="srgb"`` (imgix ``cs=srgb``/``tinysrgb``) converts every source and
tags the result with libvips' compact sRGB profile."""

from __future__ import annotations

import pyvips

from transforms.image.work import Work


def colourspace(work: Work) -> None:
    image = work.img
    tag = work.options.profile == "srgb"
    keep_icc = work.options.metadata != "none" and not tag
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
    if tag and not image.get_typeof("icc-profile-data"):
        image = image.copy()
        image.set_type(pyvips.GValue.blob_type, "icc-profile-data", srgb_profile())
    work.image = image


def srgb_profile() -> bytes:
    """libvips' built-in sRGB profile, as icc_transform attaches it."""
    pixel = pyvips.Image.black(1, 1, bands=3).copy(interpretation="srgb").cast("uchar")
    converted = pixel.icc_transform("srgb", input_profile="srgb")
    return bytes(converted.get("icc-profile-data"))
