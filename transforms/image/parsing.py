"""Value parsers shared by both URL syntaxes, and the deployment policy check. Every
failure is an ``ImageOptionError`` naming the option as the URL spelt it."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, TypeVar

from transforms.image.errors import ImageOptionError
from transforms.image.options import ImageOptions

if TYPE_CHECKING:
    from config.images import ImageSettings

_INT = re.compile(r"[0-9]{1,9}")
_FLOAT = re.compile(r"[0-9]{1,9}(?:\.[0-9]{0,20})?|\.[0-9]{1,20}")
_T = TypeVar("_T")

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})


def integer(option: str, text: str, low: int, high: int) -> int:
    value = text.strip()
    if not _INT.fullmatch(value) or not low <= int(value) <= high:
        raise ImageOptionError(option, f"an integer from {low} to {high}", text)
    return int(value)


def number(option: str, text: str, low: float, high: float, *, open_low: bool = False) -> float:
    value = text.strip()
    if open_low:
        allowed = f"a number above {_n(low)} and at most {_n(high)}"
    else:
        allowed = f"a number from {_n(low)} to {_n(high)}"
    if not _FLOAT.fullmatch(value):
        raise ImageOptionError(option, allowed, text)
    result = float(value)
    if not math.isfinite(result) or result > high or result < low or (open_low and result == low):
        raise ImageOptionError(option, allowed, text)
    return result


def signed(option: str, text: str, bound: float) -> float:
    """A number from -bound to bound, optionally signed (imgix adjustments)."""
    value = text.strip()
    sign = -1.0 if value.startswith("-") else 1.0
    magnitude = value[1:] if value[:1] in ("-", "+") else value
    try:
        return sign * number(option, magnitude, 0, bound)
    except ImageOptionError:
        raise ImageOptionError(option, f"a number from {_n(-bound)} to {_n(bound)}", text) from None


def boolean(option: str, text: str) -> bool:
    value = text.strip().lower()
    if value in TRUE_WORDS:
        return True
    if value in FALSE_WORDS:
        return False
    raise ImageOptionError(option, "true or false (1 or 0)", text)


def choice(option: str, text: str, table: dict[str, _T]) -> _T:
    value = text.strip().lower()
    if value not in table:
        raise ImageOptionError(option, list(table), text)
    return table[value]


def check_policy(
    options: ImageOptions,
    settings: ImageSettings,
    *,
    width: str = "width",
    height: str = "height",
    dpr: str = "dpr",
) -> ImageOptions:
    """The deployment's bounds on the option space: allowed widths/heights/dprs and the
    largest output. The keyword arguments are the option names to report (``w`` for
    imgix). Returns ``options`` unchanged; raises ``ImageOptionError`` (400)."""
    limits = settings.limits
    widths, heights, dprs = settings.allowed_widths, settings.allowed_heights, settings.allowed_dprs
    if widths and options.width is not None and options.width not in widths:
        raise ImageOptionError(width, _ints(widths), str(options.width))
    if heights and options.height is not None and options.height not in heights:
        raise ImageOptionError(height, _ints(heights), str(options.height))
    if (widths or heights) and options.dpr != 1.0 and options.dpr not in dprs:
        raise ImageOptionError(dpr, [_n(d) for d in dprs], _n(options.dpr))
    device_w, device_h = options.device_width, options.device_height
    if device_w is not None and device_w > limits.max_output_width:
        raise ImageOptionError(
            width,
            f"at most {limits.max_output_width} device pixels (width x dpr)",
            str(options.width),
        )
    if device_h is not None and device_h > limits.max_output_height:
        raise ImageOptionError(
            height,
            f"at most {limits.max_output_height} device pixels (height x dpr)",
            str(options.height),
        )
    return options


def _ints(values: Iterable[int]) -> list[str]:
    return [str(v) for v in sorted(set(values))]


def _n(value: float) -> str:
    return f"{value:g}"
