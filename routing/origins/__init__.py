"""Origin kinds: where the proxy fetches what it does not have cached."""

from __future__ import annotations

from config.schema import FsOrigin as FsOriginSettings
from config.schema import HttpOrigin as HttpOriginSettings
from config.schema import S3Origin as S3OriginSettings
from routing.origins.base import Origin
from routing.origins.fs import FsOrigin
from routing.origins.http import HttpOrigin
from routing.origins.s3 import S3Origin

__all__ = ["FsOrigin", "HttpOrigin", "S3Origin", "build_origin"]


def build_origin(
    name: str, settings: FsOriginSettings | HttpOriginSettings | S3OriginSettings
) -> Origin:
    """The Origin for one `[origins.<name>]` settings entry."""
    if isinstance(settings, FsOriginSettings):
        return FsOrigin(name, settings.root)
    if isinstance(settings, HttpOriginSettings):
        return HttpOrigin(name, settings)
    if isinstance(settings, S3OriginSettings):
        return S3Origin(name, settings)
    raise TypeError(f"unknown origin kind for {name!r}: {type(settings).__name__}")
