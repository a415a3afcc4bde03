"""Colour values of both syntaxes -> RGBA tuples (0..255)."""

from __future__ import annotations

import re

from transforms.image.options import Rgba

# CSS level 1 + a few common extras; imgix and Cloudflare accept keywords too.
KEYWORDS: dict[str, Rgba] = {
    "black": (0, 0, 0, 255),
    "white": (255, 255, 255, 255),
    "red": (255, 0, 0, 255),
    "green": (0, 128, 0, 255),
    "blue": (0, 0, 255, 255),
    "yellow": (255, 255, 0, 255),
    "cyan": (0, 255, 255, 255),
    "aqua": (0, 255, 255, 255),
    "magenta": (255, 0, 255, 255),
    "fuchsia": (255, 0, 255, 255),
    "gray": (128, 128, 128, 255),
    "grey": (128, 128, 128, 255),
    "silver": (192, 192, 192, 255),
    "maroon": (128, 0, 0, 255),
    "olive": (128, 128, 0, 255),
    "lime": (0, 255, 0, 255),
    "teal": (0, 128, 128, 255),
    "navy": (0, 0, 128, 255),
    "purple": (128, 0, 128, 255),
    "orange": (255, 165, 0, 255),
    "transparent": (0, 0, 0, 0),
}
_HEX = re.compile(r"[0-9a-fA-F]{3}|[0-9a-fA-F]{4}|[0-9a-fA-F]{6}|[0-9a-fA-F]{8}")
_FUNC = re.compile(r"(rgba?)\((.*)\)", re.IGNORECASE | re.DOTALL)
_NUMBER = re.compile(r"\d{1,3}(?:\.\d+)?%?|\.\d+%?")

IMGIX_ALLOWED = "a color keyword or 3, 4, 6 or 8 hex digits (RGB, ARGB, RRGGBB, AARRGGBB)"
CSS_ALLOWED = "a CSS color: a keyword, #RGB, #RGBA, #RRGGBB, #RRGGBBAA, rgb(r,g,b) or rgba(r,g,b,a)"


def parse_imgix_color(text: str) -> Rgba | None:
    """imgix ``bg``: keyword or hex with the alpha *first* (ARGB / AARRGGBB)."""
    value = text.strip().lower().removeprefix("#")
    if value in KEYWORDS:
        return KEYWORDS[value]
    if not _HEX.fullmatch(value):
        return None
    if len(value) in (3, 4):
        value = "".join(c * 2 for c in value)
    if len(value) == 8:
        value = value[2:] + value[:2]  # AARRGGBB -> RRGGBBAA
    else:
        value += "ff"
    return _from_hex(value)


def parse_css_color(text: str) -> Rgba | None:
    """Cloudflare ``background``: CSS syntax, alpha *last* (#RRGGBBAA, rgba())."""
    value = text.strip().lower()
    if value in KEYWORDS:
        return KEYWORDS[value]
    if value.startswith("#"):
        digits = value[1:]
        if not _HEX.fullmatch(digits):
            return None
        if len(digits) in (3, 4):
            digits = "".join(c * 2 for c in digits)
        return _from_hex(digits if len(digits) == 8 else digits + "ff")
    match = _FUNC.fullmatch(value)
    if not match:
        return None
    items = [item for item in re.split(r"[\s,/]+", match[2].strip()) if item]
    if len(items) not in (3, 4) or not all(_NUMBER.fullmatch(item) for item in items):
        return None
    rgb = [_channel(item) for item in items[:3]]
    alpha = _alpha(items[3]) if len(items) == 4 else 255
    if any(c is None for c in rgb) or alpha is None:
        return None
    r, g, b = (int(c) for c in rgb if c is not None)
    return (r, g, b, alpha)


def _from_hex(rrggbbaa: str) -> Rgba:
    r, g, b, a = (int(rrggbbaa[i : i + 2], 16) for i in range(0, 8, 2))
    return (r, g, b, a)


def _channel(item: str) -> int | None:
    if item.endswith("%"):
        pct = float(item[:-1])
        return round(pct * 2.55) if pct <= 100 else None
    number = float(item)
    return round(number) if number <= 255 else None


def _alpha(item: str) -> int | None:
    if item.endswith("%"):
        pct = float(item[:-1])
        return round(pct * 2.55) if pct <= 100 else None
    number = float(item)
    if number <= 1:
        return round(number * 255)
    # Cloudflare's own example writes rgba(255 255 0 100): treat values above 1 as percent.
    return round(number * 2.55) if number <= 100 else None
