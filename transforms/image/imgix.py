"""imgix-compatible query parameters -> ``ImageOptions``.

``?w=400&h=300&fit=crop&crop=focalpoint&fp-x=.3&fp-y=.6&auto=format,compress&dpr=2``

Only imgix parameter names count: a query without any is not an image request
(``parse_query`` returns None and the URL is served untouched), other query parameters
(cache busters, signatures) are ignored. imgix parameters this engine does not implement
(``txt``, ``fp-z``, ``usm`` ...) are refused with 400 instead of being silently dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from transforms.image.colors import IMGIX_ALLOWED, parse_imgix_color
from transforms.image.errors import ImageOptionError
from transforms.image.options import (
    MAX_ASPECT,
    MAX_DIMENSION,
    MAX_DPR,
    MIN_ASPECT,
    Fit,
    Gravity,
    ImageOptions,
    Metadata,
    Profile,
    RequestedFormat,
)
from transforms.image.parsing import boolean, check_policy, choice, integer, number, signed

if TYPE_CHECKING:
    from config.images import ImageSettings, PresetValue
    from config.schema import Settings

SUPPORTED = (
    "w",
    "h",
    "fit",
    "crop",
    "fp-x",
    "fp-y",
    "fm",
    "auto",
    "q",
    "dpr",
    "blur",
    "sharp",
    "bg",
    "ar",
    "fill",
    "fill-color",
    "bri",
    "con",
    "sat",
    "rot",
    "flip",
    "rect",
    "lossless",
    "cs",
    "frame",
    "lqip",
    "preset",
)
ALIASES = {"width": "w", "height": "h", "f": "fit"}
# imgix rendering parameters that exist but are not implemented here: refused (400).
UNSUPPORTED = frozenset(
    {
        "exp",
        "gam",
        "high",
        "hue",
        "invert",
        "inv",
        "shad",
        "usm",
        "usmrad",
        "vib",
        "sepia",
        "htn",
        "mono",
        "px",
        "nr",
        "nrs",
        "duotone",
        "duotone-alpha",
        "fp-z",
        "fp-debug",
        "faceindex",
        "facepad",
        "faces",
        "fillcolor",
        "chromasub",
        "colorquant",
        "colors",
        "palette",
        "dpi",
        "mask",
        "corner-radius",
        "orient",
        "max-h",
        "max-w",
        "min-h",
        "min-w",
        "pad",
        "pad-left",
        "pad-right",
        "pad-top",
        "pad-bottom",
        "border",
        "border-radius",
        "border-radius-inner",
        "trim",
        "trim-color",
        "trim-md",
        "trim-pad",
        "trim-sd",
        "trim-tol",
        "blend",
        "blend-mode",
        "blend-alpha",
        "mark",
        "mark-align",
        "mark-alpha",
        "mark-scale",
        "txt",
        "txt-font",
        "txt-size",
        "txt-color",
        "ch",
    }
)
_KNOWN = frozenset(SUPPORTED) | UNSUPPORTED

FITS = {
    "clip": Fit.CONTAIN,
    "crop": Fit.COVER,
    "fill": Fit.PAD,
    "max": Fit.SCALE_DOWN,
    "min": Fit.ASPECT_CROP,
    "scale": Fit.STRETCH,
}
CROPS = ("top", "bottom", "left", "right", "center", "focalpoint", "entropy", "edges", "faces")
FORMATS: dict[str, tuple[RequestedFormat, bool | None]] = {
    "jpg": ("jpeg", False),
    "jpeg": ("jpeg", False),
    "pjpg": ("jpeg", True),
    "png": ("png", None),
    "webp": ("webp", None),
    "avif": ("avif", None),
    "gif": ("gif", None),
    "json": ("json", None),
}
AUTO = ("format", "compress")
FLIPS = {"h": "h", "v": "v", "hv": "hv", "vh": "hv"}
# cs -> (metadata, profile). libvips' own sRGB profile is already a compact one (480
# bytes), so tinysrgb is srgb; origin keeps an RGB source's profile and pixels.
COLOR_SPACES: dict[str, tuple[Metadata, Profile]] = {
    "origin": ("icc", ""),
    "srgb": ("icc", "srgb"),
    "tinysrgb": ("icc", "srgb"),
    "strip": ("none", ""),
}
FILLS = {"solid": "solid"}
# bri, con, sat: -100..100, 0 unchanged (imgix's ranges).
ADJUSTMENTS = {"bri": "brightness", "con": "contrast", "sat": "saturation"}
MAX_BLUR = 2000
MAX_SHARP = 100


def parse_query(
    query: str,
    presets: Mapping[str, Mapping[str, PresetValue]] | None = None,
    *,
    settings: ImageSettings | None = None,
) -> ImageOptions | None:
    """Parse a raw query string. None when it holds no imgix parameter. ``presets``
    defaults to ``settings.presets``; with ``settings`` the deployment policy (allowed
    widths, largest output) is checked too. Raises only ``ImageOptionError``."""
    params: dict[str, str] = {}
    spelt: dict[str, str] = {}
    for key, value in _pairs(query):
        name = ALIASES.get(key, key)
        if name not in _KNOWN:
            continue
        if name in params:
            raise ImageOptionError(key, "a single value", f"{params[name]} and {value}")
        params[name] = value
        spelt[name] = key
    if not params:
        return None
    if presets is None:
        presets = settings.presets if settings is not None else {}
    if "preset" in params:
        params = _with_preset(params.pop("preset"), presets) | params
    options = parse_params(params, spelt)
    if settings is not None:
        check_policy(options, settings, width=spelt.get("w", "w"), height=spelt.get("h", "h"))
    return options


def parse_params(params: Mapping[str, str], spelt: Mapping[str, str]) -> ImageOptions:
    """imgix parameters (canonical names, raw values) -> ``ImageOptions``. ``spelt``
    maps a name to how the URL wrote it (an alias), for error messages."""
    fields: dict[str, Any] = {"fit": Fit.CONTAIN}

    def name(key: str) -> str:
        return spelt.get(key, key)

    for key in params:
        if key not in SUPPORTED or key == "preset":
            raise ImageOptionError(name(key), [k for k in SUPPORTED])
    get = params.get
    if (text := get("w")) is not None:
        fields["width"] = integer(name("w"), text, 1, MAX_DIMENSION)
    if (text := get("h")) is not None:
        fields["height"] = integer(name("h"), text, 1, MAX_DIMENSION)
    if (text := get("fit")) is not None:
        fields["fit"] = choice(name("fit"), text, FITS)
    if (text := get("dpr")) is not None:
        fields["dpr"] = number("dpr", text, 0, MAX_DPR, open_low=True)
    fields["gravity"] = _gravity(get("crop"), get("fp-x"), get("fp-y"))
    auto = _auto(get("auto"))
    if (text := get("fm")) is not None:
        fields["format"], fields["progressive"] = choice("fm", text, FORMATS)
    elif "format" in auto:
        fields["format"] = "auto"
    fields["compress"] = "compress" in auto
    if (text := get("q")) is not None:
        fields["quality"] = max(1, integer("q", text, 0, 100))
    if (text := get("lossless")) is not None:
        fields["lossless"] = boolean("lossless", text)
    if (text := get("blur")) is not None:
        fields["blur"] = integer("blur", text, 0, MAX_BLUR) / 10
    if (text := get("sharp")) is not None:
        fields["sharpen"] = integer("sharp", text, 0, MAX_SHARP) / 10
    if (text := get("bg")) is not None:
        color = parse_imgix_color(text)
        if color is None:
            raise ImageOptionError("bg", IMGIX_ALLOWED, text)
        fields["background"] = color
    if (text := get("rot")) is not None:
        fields["rotate"] = integer("rot", text, 0, 359)
    if (text := get("flip")) is not None:
        fields["flip"] = choice("flip", text, FLIPS)
    if (text := get("rect")) is not None:
        fields["rect"] = _rect(text)
    if (text := get("cs")) is not None:
        fields["metadata"], fields["profile"] = choice("cs", text, COLOR_SPACES)
    if (text := get("ar")) is not None:
        fields["aspect"] = aspect_ratio("ar", text)
    fill = choice("fill", text, FILLS) if (text := get("fill")) is not None else "solid"
    if (text := get("fill-color")) is not None and fill == "solid":
        color = parse_imgix_color(text)
        if color is None:
            raise ImageOptionError("fill-color", IMGIX_ALLOWED, text)
        fields["fill"] = color
    for key, field in ADJUSTMENTS.items():
        if (text := get(key)) is not None:
            fields[field] = signed(key, text, 100)
    if (text := get("frame")) is not None:
        integer("frame", text, 1, 1)
        fields["anim"] = False
    if (text := get("lqip")) is not None:
        fields["lqip"] = boolean("lqip", text)
    return ImageOptions(**fields)


def _pairs(query: str) -> list[tuple[str, str]]:
    try:
        return parse_qsl(query, keep_blank_values=True, max_num_fields=200)
    except ValueError:
        raise ImageOptionError("query", "at most 200 parameters") from None


def _with_preset(name: str, presets: Mapping[str, Mapping[str, PresetValue]]) -> dict[str, str]:
    if name not in presets:
        raise ImageOptionError(
            "preset", sorted(presets) or "none (no presets are configured)", name
        )
    return {ALIASES.get(k, k): _text(v) for k, v in presets[name].items()}


def parse_preset(params: Mapping[str, PresetValue]) -> ImageOptions:
    """A configured preset (imgix names, TOML values) -> ``ImageOptions``."""
    if "preset" in params:
        raise ImageOptionError("preset", "not inside a preset", _text(params["preset"]))
    return parse_params({ALIASES.get(k, k): _text(v) for k, v in params.items()}, {})


def preset_errors(settings: Settings) -> list[tuple[tuple[str, ...], str]]:
    """Every configured preset parsed as a URL naming it will be: (field path, reason)
    for each option that does not parse. `edgeshield serve` and `check-config` run this
    as a settings check (config.loader `checks`): a bad preset is a configuration error."""
    problems: list[tuple[tuple[str, ...], str]] = []
    for name, params in settings.images.presets.items():
        try:
            parse_preset(params)
        except ImageOptionError as exc:
            problems.append((("images", "presets", name, exc.option), exc.describe()))
    return problems


def _text(value: PresetValue) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def _auto(text: str | None) -> set[str]:
    if text is None:
        return set()
    values = {item.strip().lower() for item in text.split(",") if item.strip()}
    if not values or not values <= set(AUTO):
        raise ImageOptionError("auto", AUTO, text)
    return values


def _gravity(crop: str | None, fp_x: str | None, fp_y: str | None) -> Gravity:
    x = number("fp-x", fp_x, 0, 1) if fp_x is not None else 0.5
    y = number("fp-y", fp_y, 0, 1) if fp_y is not None else 0.5
    if crop is None:
        return Gravity()
    modes = {item.strip().lower() for item in crop.split(",") if item.strip()}
    if not modes or not modes <= set(CROPS):
        raise ImageOptionError("crop", CROPS, crop)
    if "focalpoint" in modes:
        return Gravity("point", x, y)
    if "entropy" in modes:
        return Gravity("entropy")
    if "edges" in modes or "faces" in modes:
        # No face detector here: libvips' attention (edges, skin tones, saturation).
        return Gravity("attention")
    x = 0.5 + 0.5 * (("right" in modes) - ("left" in modes))
    y = 0.5 + 0.5 * (("bottom" in modes) - ("top" in modes))
    return Gravity("point", x, y)


def aspect_ratio(option: str, text: str) -> float:
    """imgix ``ar=W:H`` (positive numbers, ``16:9``, ``0.85:1``) -> W / H."""
    allowed = f"W:H, two positive numbers with W/H from {MIN_ASPECT:g} to {MAX_ASPECT:g}"
    width, colon, height = text.partition(":")
    try:
        if not colon:
            raise ImageOptionError(option, allowed, text)
        w = number(option, width, 0, 1e6, open_low=True)
        h = number(option, height, 0, 1e6, open_low=True)
    except ImageOptionError:
        raise ImageOptionError(option, allowed, text) from None
    if not MIN_ASPECT <= w / h <= MAX_ASPECT:
        raise ImageOptionError(option, allowed, text)
    return w / h


def _rect(text: str) -> tuple[int, int, int, int]:
    parts = text.split(",")
    allowed = "x,y,w,h in source pixels (integers, w and h at least 1)"
    if len(parts) != 4:
        raise ImageOptionError("rect", allowed, text)
    try:
        x, y, w, h = (integer("rect", part, 0, 10 * MAX_DIMENSION) for part in parts)
    except ImageOptionError:
        raise ImageOptionError("rect", allowed, text) from None
    if w < 1 or h < 1:
        raise ImageOptionError("rect", allowed, text)
    return (x, y, w, h)
