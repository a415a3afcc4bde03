"""The three ways a transform request fails, each mapped to one HTTP answer."""

from __future__ import annotations

from collections.abc import Iterable


class ImageOptionError(ValueError):
    """An unknown or invalid option in the URL (or a preset): 400. ``option`` names it,
    ``allowed`` says what it accepts (a list of values or a range), ``value`` is what
    was given (None when the option itself is unknown)."""

    status = 400

    def __init__(self, option: str, allowed: str | Iterable[str], value: str | None = None):
        self.option = option
        self.allowed = allowed if isinstance(allowed, str) else ", ".join(allowed)
        self.value = value
        super().__init__(option, self.allowed, value)

    def describe(self) -> str:
        if self.value is None:
            return f"unknown option (allowed options: {self.allowed})"
        return f"invalid value {_show(self.value)} (allowed: {self.allowed})"

    def __str__(self) -> str:
        return f"image option {self.option!r}: {self.describe()}"

    @property
    def reason(self) -> str:
        """The text for the 400 body."""
        return str(self)


class ImageLimitError(Exception):
    """The source or the requested output is beyond a limit, or cannot be decoded.
    ``status`` is 400 (output too large), 413 (input too large: bytes, pixels, frames)
    or 422 (not an allowed or decodable image)."""

    def __init__(self, status: int, reason: str):
        self.status = status
        self.reason = reason
        super().__init__(status, reason)

    def __str__(self) -> str:
        return f"{self.status}: {self.reason}"


class KeepOriginal(ImageLimitError):
    """A plain URL's negotiated conversion does not apply to this source (see
    steps/keep_original.py): the proxy answers the original bytes instead."""

    def __init__(self, reason: str):
        super().__init__(422, reason)


class Overloaded(Exception):
    """Every worker is busy and the queue is full: answer 503 with Retry-After."""

    status = 503

    def __init__(self, retry_after: int):
        self.retry_after = retry_after
        super().__init__(retry_after)

    def __str__(self) -> str:
        return f"image workers overloaded, retry after {self.retry_after}s"


def _show(value: str, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"
