"""Cloudflare's path syntax -> ``ImageOptions``:
``/cdn-cgi/image/width=400,fit=cover,format=auto/images/photo.jpg``.

Options are comma-separated ``name=value`` pairs (full names or Cloudflare's short
aliases ``w h q f g``); values may be percent-encoded (``background=%23ff0000``). The rest
of the path is the source image, a path on the route's origin (absolute URLs are not
fetched: that would be an open proxy).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields as dataclass_fields
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from transforms.image.colors import CSS_ALLOWED, parse_css_color
from transforms.image.errors import ImageOptionError
from transforms.image.imgix import parse_preset
from transforms.image.options import MAX_DIMENSION, Fit, Gravity, ImageOptions, RequestedFormat
from transforms.image.parsing import boolean, check_policy, choice, integer, number

if TYPE_CHECKING:
    from config.images import ImageSettings, PresetValue

PREFIX = "/cdn-cgi/image/"
SUPPORTED = (
    "width",
    "height",
    "fit",
    "gravity",
    "format",
    "quality",
    "dpr",
    "background",
    "blur",
    "sharpen",
    "contrast",
    "saturation",
    "metadata",
    "anim",
    "rotate",
    "flip",
    "lqip",
    "preset",
)
ALIASES = {"w": "width", "h": "height", "q": "quality", "f": "format", "g": "gravity"}
FITS = {
    "scale-down": Fit.SCALE_DOWN,
    "contain": Fit.CONTAIN,
    "cover": Fit.COVER,
    "crop": Fit.CROP,
    "pad": Fit.PAD,
    "aspect-crop": Fit.ASPECT_CROP,
    "squeeze": Fit.STRETCH,
}
FORMATS: dict[str, tuple[RequestedFormat, bool | None]] = {
    "auto": ("auto", None),
    "avif": ("avif", None),
    "webp": ("webp", None),
    "jpeg": ("jpeg", True),
    "jpg": ("jpeg", True),
    "baseline-jpeg": ("jpeg", False),
    "png": ("png", None),
    "gif": ("gif", None),
    "json": ("json", None),
}
# Cloudflare's perceptual quality levels, as fixed numbers.
QUALITY_WORDS = {"high": 90, "medium-high": 80, "medium-low": 65, "low": 50}
GRAVITY_WORDS = {
    "auto": Gravity("attention"),
    # No face detector here: libvips' attention is the nearest (it favours skin tones).
    "face": Gravity("attention"),
    "center": Gravity(),
    "left": Gravity("point", 0.0, 0.5),
    "right": Gravity("point", 1.0, 0.5),
    "top": Gravity("point", 0.5, 0.0),
    "bottom": Gravity("point", 0.5, 1.0),
}
GRAVITY_ALLOWED = "auto, face, center, left, right, top, bottom or XxY (fractions, e.g. 0.5x0.3)"
METADATA = {"none": "none", "copyright": "copyright", "keep": "keep"}
ROTATIONS = {"0": 0, "90": 90, "180": 180, "270": 270}
FLIPS = {"h": "h", "v": "v", "hv": "hv", "vh": "hv"}
MAX_DPR = 3.0
MAX_BLUR = 250
MAX_OPTIONS = 40
# Cloudflare's contrast and saturation are factors (1 unchanged, 0 flat grey / greyscale);
# the engine's are imgix's -100..100.
MAX_CONTRAST = 10.0
MAX_SATURATION = 2.0


def parse_cloudflare_path(
    path: str,
    presets: Mapping[str, Mapping[str, PresetValue]] | None = None,
    *,
    settings: ImageSettings | None = None,
) -> tuple[ImageOptions, str] | None:
    """``/cdn-cgi/image/<options>/<source>`` -> (options, "/<source>"); None for any
    other path. ``presets``/``settings`` as for ``parse_query``. Raises only
    ``ImageOptionError``."""
    if not path.startswith(PREFIX):
        return None
    spec, slash, source = path[len(PREFIX) :].partition("/")
    if not slash or not source.strip("/"):
        raise ImageOptionError("path", "/cdn-cgi/image/<options>/<source image path>", path)
    if source.lower().startswith(("http:", "https:", "//")):
        raise ImageOptionError(
            "source", "a path on this origin (absolute URLs are not fetched)", source
        )
    params: dict[str, str] = {}
    spelt: dict[str, str] = {}
    items = _split(spec)
    if not items:
        raise ImageOptionError("options", "at least one name=value option", spec)
    if len(items) > MAX_OPTIONS:
        raise ImageOptionError("options", f"at most {MAX_OPTIONS} options", spec[:40])
    for item in items:
        key, eq, value = item.partition("=")
        key = key.strip().lower()
        if not eq:
            raise ImageOptionError(key or item, "name=value", item)
        name = ALIASES.get(key, key)
        if name not in SUPPORTED:
            raise ImageOptionError(key, SUPPORTED)
        if name in params:
            raise ImageOptionError(key, "a single value", f"{params[name]} and {value}")
        params[name] = unquote(value)
        spelt[name] = key
    if presets is None:
        presets = settings.presets if settings is not None else {}
    base: dict[str, Any] = {"fit": Fit.SCALE_DOWN}
    if "preset" in params:
        preset = params.pop("preset")
        if preset not in presets:
            raise ImageOptionError(
                "preset", sorted(presets) or "none (no presets are configured)", preset
            )
        options = parse_preset(presets[preset])
        base = {f.name: getattr(options, f.name) for f in dataclass_fields(options)}
    options = ImageOptions(**(base | _fields(params, spelt)))
    if settings is not None:
        check_policy(
            options,
            settings,
            width=spelt.get("width", "width"),
            height=spelt.get("height", "height"),
        )
    return options, "/" + source


def _fields(params: Mapping[str, str], spelt: Mapping[str, str]) -> dict[str, Any]:
    fields: dict[str, Any] = {}

    def name(key: str) -> str:
        return spelt.get(key, key)

    get = params.get
    if (text := get("width")) is not None:
        fields["width"] = integer(name("width"), text, 1, MAX_DIMENSION)
    if (text := get("height")) is not None:
        fields["height"] = integer(name("height"), text, 1, MAX_DIMENSION)
    if (text := get("fit")) is not None:
        fields["fit"] = choice("fit", text, FITS)
    if (text := get("gravity")) is not None:
        fields["gravity"] = _gravity(name("gravity"), text)
    if (text := get("format")) is not None:
        fields["format"], fields["progressive"] = choice(name("format"), text, FORMATS)
    if (text := get("quality")) is not None:
        word = text.strip().lower()
        if word in QUALITY_WORDS:
            fields["quality"] = QUALITY_WORDS[word]
        else:
            try:
                fields["quality"] = integer(name("quality"), text, 1, 100)
            except ImageOptionError:
                allowed = f"an integer from 1 to 100 or one of {', '.join(QUALITY_WORDS)}"
                raise ImageOptionError(name("quality"), allowed, text) from None
        # Cloudflare: WebP at quality=100 is lossless WebP.
        if fields["quality"] == 100:
            fields["lossless"] = True
    if (text := get("dpr")) is not None:
        fields["dpr"] = number("dpr", text, 0, MAX_DPR, open_low=True)
    if (text := get("background")) is not None:
        color = parse_css_color(text)
        if color is None:
            raise ImageOptionError("background", CSS_ALLOWED, text)
        fields["background"] = color
    if (text := get("blur")) is not None:
        # Cloudflare's blur is a radius (1..250); the engine's is a Gaussian sigma.
        fields["blur"] = number("blur", text, 0, MAX_BLUR) / 2
    if (text := get("sharpen")) is not None:
        fields["sharpen"] = number("sharpen", text, 0, 10)
    if (text := get("contrast")) is not None:
        fields["contrast"] = contrast_from_factor(number("contrast", text, 0, MAX_CONTRAST))
    if (text := get("saturation")) is not None:
        fields["saturation"] = (number("saturation", text, 0, MAX_SATURATION) - 1) * 100
    if (text := get("metadata")) is not None:
        fields["metadata"] = choice("metadata", text, METADATA)
    if (text := get("anim")) is not None:
        fields["anim"] = boolean("anim", text)
    if (text := get("rotate")) is not None:
        fields["rotate"] = choice("rotate", text, ROTATIONS)
    if (text := get("flip")) is not None:
        fields["flip"] = choice("flip", text, FLIPS)
    if (text := get("lqip")) is not None:
        fields["lqip"] = boolean("lqip", text)
    return fields


def contrast_from_factor(factor: float) -> float:
    """The imgix ``con`` whose contrast factor (steps/adjust.py) is ``factor``."""
    c = 66045 * (factor - 1) / (259 + 255 * factor)
    return max(-100.0, min(100.0, c / 2.55))


def _gravity(option: str, text: str) -> Gravity:
    word = text.strip().lower()
    if word in GRAVITY_WORDS:
        return GRAVITY_WORDS[word]
    x_text, sep, y_text = word.partition("x")
    if sep:
        try:
            return Gravity("point", number(option, x_text, 0, 1), number(option, y_text, 0, 1))
        except ImageOptionError:
            pass
    raise ImageOptionError(option, GRAVITY_ALLOWED, text)


def _split(spec: str) -> list[str]:
    """Split on commas outside parentheses: ``background=rgb(1,2,3),width=10``."""
    items: list[str] = []
    depth = 0
    start = 0
    for i, char in enumerate(spec):
        if char == "(":
            depth += 1
        elif char == ")":
            depth = max(depth - 1, 0)
        elif char == "," and depth == 0:
            items.append(spec[start:i])
            start = i + 1
    items.append(spec[start:])
    return [item for item in items if item.strip()]
