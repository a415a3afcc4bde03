"""``ImageOptions``: the one canonical, hashable description of a transform.

Both URL syntaxes (imgix query parameters, Cloudflare ``/cdn-cgi/image/`` paths) parse into
it. Construction normalises it (options that cannot change the output are reset to their
defaults), so equivalent requests compare equal and ``cache_key()`` gives them one key
whatever the parameter order, the aliases used or the defaults spelt out.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from enum import StrEnum
from typing import Literal

# Hard bounds of the option syntax; ImageSettings.limits narrows them per deployment.
MAX_DIMENSION = 8192
MAX_DPR = 5.0
MAX_BLUR_SIGMA = 250.0
MAX_SHARPEN = 10.0
# Aspect ratios (width / height) accepted by imgix `ar`.
MIN_ASPECT = 0.01
MAX_ASPECT = 100.0

RequestedFormat = Literal["auto", "jpeg", "png", "webp", "avif", "gif", "json"]
OutputFormat = Literal["jpeg", "png", "webp", "avif", "gif", "json"]
Metadata = Literal["none", "icc", "copyright", "keep"]
# "": as `metadata` says (none: sRGB, untagged; otherwise the source's RGB profile kept);
# "srgb": converted to sRGB and tagged with libvips' compact (480 byte) sRGB profile.
Profile = Literal["", "srgb"]
Flip = Literal["", "h", "v", "hv"]
Rgba = tuple[int, int, int, int]
Rect = tuple[int, int, int, int]

CONTENT_TYPES: dict[str, str] = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "avif": "image/avif",
    "gif": "image/gif",
    "json": "application/json",
}


class Fit(StrEnum):
    """How the image meets a width x height box (imgix name / Cloudflare name)."""

    CONTAIN = "contain"  # clip / contain: inside the box, aspect kept, may upscale
    SCALE_DOWN = "scale-down"  # max / scale-down: like contain, never upscales
    COVER = "cover"  # crop / cover: fills the box, overflow cropped, may upscale
    CROP = "crop"  # - / crop: like cover but never upscales (smaller stays smaller)
    ASPECT_CROP = "aspect-crop"  # min / aspect-crop: crop to the box's aspect, never up
    PAD = "pad"  # fill / pad: inside the box, the rest filled with the background
    STRETCH = "stretch"  # scale / squeeze: exactly the box, aspect not kept


# Fits whose result depends on where the crop falls.
CROPPING = frozenset({Fit.COVER, Fit.CROP, Fit.ASPECT_CROP})
# Fits that never make the image bigger than the source.
DOWN_ONLY = frozenset({Fit.SCALE_DOWN, Fit.CROP, Fit.ASPECT_CROP})


@dataclass(frozen=True, slots=True)
class Gravity:
    """Where a crop is anchored: a point (fractions of width and height, 0.5/0.5 is the
    centre; sides are 0 or 1) or a libvips smart crop ("attention" or "entropy")."""

    mode: Literal["point", "attention", "entropy"] = "point"
    x: float = 0.5
    y: float = 0.5

    def __post_init__(self) -> None:
        if self.mode != "point":
            object.__setattr__(self, "x", 0.5)
            object.__setattr__(self, "y", 0.5)
        else:
            object.__setattr__(self, "x", round(min(max(float(self.x), 0.0), 1.0), 4))
            object.__setattr__(self, "y", round(min(max(float(self.y), 0.0), 1.0), 4))

    def key(self) -> str:
        return self.mode if self.mode != "point" else f"{_num(self.x)}x{_num(self.y)}"


CENTER = Gravity()


@dataclass(frozen=True, slots=True)
class ImageOptions:
    """One transform. Sizes are CSS pixels; the output is ``width * dpr`` device pixels.
    ``None`` means "not given" (keep the source's size / format / encoder default)."""

    width: int | None = None
    height: int | None = None
    dpr: float = 1.0
    fit: Fit = Fit.SCALE_DOWN
    gravity: Gravity = CENTER
    # Source rectangle (x, y, w, h) in source pixels, cut before anything else (imgix rect).
    rect: Rect | None = None
    # "auto" negotiates from Accept; None keeps the source's format.
    format: RequestedFormat | None = None
    quality: int | None = None
    # imgix auto=compress: a lower default quality when `quality` is not given.
    compress: bool = False
    lossless: bool = False
    # JPEG only: True progressive, False baseline, None the configured default.
    progressive: bool | None = None
    # Gaussian sigma in output pixels; 0 = none.
    blur: float = 0.0
    # Sharpening strength 0..10 (Cloudflare's scale); 0 = none.
    sharpen: float = 0.0
    # Fill for transparency (when the output has none, or `background` is given), for
    # the padding of fit=pad and the corners of free rotation. RGBA, 0..255.
    background: Rgba | None = None
    # The padding of fit=pad only (imgix fill=solid&fill-color); None: `background`.
    fill: Rgba | None = None
    # Width / height of the box when the fit crops or pads (imgix `ar`); with one side
    # given the other is derived, with neither the box is the source's, reframed.
    aspect: float | None = None
    # imgix adjustments, each -100..100 with 0 unchanged: brightness (an offset, 100 is
    # white), contrast (100 is a threshold, -100 flat grey), saturation (-100 is grey).
    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    # Clockwise degrees, 0..359. Right angles turn the source before resizing (sizes
    # refer to the rotated image); other angles turn the result.
    rotate: int = 0
    flip: Flip = ""
    metadata: Metadata = "none"
    profile: Profile = ""
    anim: bool = True
    lqip: bool = False
    # A plain URL on a route with `auto_format`: the same pixels in a better format, or
    # the original bytes when that cannot be had (see steps/keep_original.py).
    original: bool = False

    def __post_init__(self) -> None:
        _normalise(self)

    def cache_key(self, format: str | None = None) -> str:
        """Canonical text of the options: equal for equivalent requests, different for
        anything that changes the output. ``format`` replaces the requested format, for
        the negotiated one (see ``transforms.image.negotiate.variant_key``)."""
        parts: list[str] = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "format" and format is not None:
                value = format
            if value == f.default:
                continue
            parts.append(f"{_KEY_NAMES[f.name]}={_key_value(value)}")
        return "img1:" + ",".join(parts)

    @property
    def adjusted(self) -> bool:
        """Brightness, contrast or saturation change the pixels."""
        return bool(self.brightness or self.contrast or self.saturation)

    @property
    def device_width(self) -> int | None:
        return None if self.width is None else max(1, round(self.width * self.dpr))

    @property
    def device_height(self) -> int | None:
        return None if self.height is None else max(1, round(self.height * self.dpr))

    def with_changes(self, **changes: object) -> ImageOptions:
        return replace(self, **changes)  # type: ignore[arg-type]


_KEY_NAMES = {
    "width": "w",
    "height": "h",
    "dpr": "dpr",
    "fit": "fit",
    "gravity": "g",
    "rect": "rect",
    "format": "f",
    "quality": "q",
    "compress": "compress",
    "lossless": "lossless",
    "progressive": "prog",
    "blur": "blur",
    "sharpen": "sharp",
    "background": "bg",
    "fill": "fill",
    "aspect": "ar",
    "brightness": "bri",
    "contrast": "con",
    "saturation": "sat",
    "rotate": "rot",
    "flip": "flip",
    "metadata": "meta",
    "profile": "cs",
    "anim": "anim",
    "lqip": "lqip",
    "original": "orig",
}


def _normalise(o: ImageOptions) -> None:
    """Reset what cannot matter, so equivalent options are equal (the dataclass is
    frozen: object.__setattr__ is the documented way to set fields in __post_init__)."""

    def put(name: str, value: object) -> None:
        object.__setattr__(o, name, value)

    put("fit", Fit(o.fit))
    put("dpr", round(float(o.dpr), 3))
    put("blur", round(float(o.blur), 1))
    put("sharpen", round(float(o.sharpen), 2))
    for name in ("brightness", "contrast", "saturation"):
        put(name, round(float(getattr(o, name)), 1))
    put("rotate", int(o.rotate) % 360)
    if o.format == "json":
        # JSON describes the source; nothing else changes the answer.
        for f in fields(o):
            if f.name != "format":
                put(f.name, f.default)
        return
    if o.lqip:
        # The placeholder's size, blur and quality come from the settings.
        for name in ("width", "height", "dpr", "quality", "compress", "blur", "sharpen"):
            put(name, _DEFAULTS[name])
        put("fit", Fit.SCALE_DOWN)
    _normalise_aspect(o)
    if o.width is None and o.height is None:
        if o.aspect is None:
            put("fit", Fit.SCALE_DOWN)
        put("dpr", 1.0)
    elif o.width is None or o.height is None:
        # With one side given every fit keeps the aspect ratio.
        put("fit", Fit.SCALE_DOWN if o.fit in DOWN_ONLY else Fit.CONTAIN)
    boxed = (o.width is not None and o.height is not None) or o.aspect is not None
    if o.fit not in CROPPING or not boxed:
        put("gravity", CENTER)
    if o.fit is not Fit.PAD or o.fill == o.background:
        put("fill", None)
    if o.quality is not None:
        put("compress", False)
    if o.format in ("png", "gif"):
        put("quality", None)
        put("compress", False)
    if o.format in ("jpeg", "png", "gif"):
        put("lossless", False)
    if o.format not in (None, "auto", "jpeg"):
        put("progressive", None)
    if o.background is not None:
        put("background", tuple(int(c) for c in o.background))
    if o.fill is not None:
        put("fill", tuple(int(c) for c in o.fill))
    if o.profile and o.metadata == "none":
        put("metadata", "icc")  # the profile is written, so the saver keeps ICC


def _normalise_aspect(o: ImageOptions) -> None:
    """`ar` acts with the fits that crop or pad (as on imgix). With one side given it
    only says the other, so ``w=280&ar=2:1`` is ``w=280&h=140``; with both it has no
    say; with neither it stays, and the plan reframes the source (geometry.py)."""
    aspect = o.aspect
    if aspect is None:
        return
    keep = o.fit in CROPPING or o.fit is Fit.PAD
    if keep and (o.width is None) != (o.height is None):
        if o.width is not None:
            object.__setattr__(o, "height", max(1, round(o.width / aspect)))
        elif o.height is not None:
            object.__setattr__(o, "width", max(1, round(o.height * aspect)))
    if not keep or o.width is not None or o.height is not None:
        object.__setattr__(o, "aspect", None)
    else:
        object.__setattr__(o, "aspect", round(float(aspect), 4))


_DEFAULTS = {f.name: f.default for f in fields(ImageOptions)}


def _num(value: float) -> str:
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    return text or "0"


def _key_value(value: object) -> str:
    if isinstance(value, Gravity):
        return value.key()
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return _num(value)
    if isinstance(value, tuple):
        return ".".join(str(v) for v in value)
    if value is None:
        return "-"
    return str(value)
