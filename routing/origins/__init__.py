"""Origin kinds: where the proxy fetches what it does not have cached."""

from __future__ import annotations

from config.schema import FsOrigin as FsOriginSettings
from config.schema import HttpOrigin as HttpOriginSettings
from routing.origins.base import Origin
from routing.origins.fs import FsOrigin
from routing.origins.http import HttpOrigin

__all__ = ["FsOrigin", "HttpOrigin", "build_origin"]


def build_origin(name: str, settings: FsOriginSettings | HttpOriginSettings) -> Origin:
    """The Origin for one `[origins.<name>]` settings entry."""
    if isinstance(settings, FsOriginSettings):
        return FsOrigin(name, settings.root)
    if isinstance(settings, HttpOriginSettings):
        return HttpOrigin(name, settings)
    raise TypeError(f"unknown origin kind for {name!r}: {type(settings).__name__}")
