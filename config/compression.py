"""Settings of response compression: ``[compression]`` in the file.

Stored entries of a compressible type are compressed once per encoding and kept beside
them (proxy/compress.py); these settings say which types, from what size and up to
what size, with which encodings and levels. A route turns it off with
``[routes.cache] compress = false``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

KiB = 1024
MiB = 1024 * KiB
Coding = Literal["br", "zstd", "gzip"]

# What nginx, Varnish and the CDNs compress for media delivery: text, scripts, JSON and
# XML (with their +json / +xml suffixes), SVG, HLS playlists, DASH manifests, WebVTT.
DEFAULT_TYPES = (
    "text/*",
    "application/json",
    "application/*+json",
    "application/javascript",
    "application/x-javascript",
    "application/ecmascript",
    "application/xml",
    "application/*+xml",
    "image/svg+xml",
    "application/vnd.apple.mpegurl",
    "application/x-mpegurl",
    "audio/mpegurl",
    "audio/x-mpegurl",
    "application/dash+xml",
    "text/vtt",
)


class CompressionSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    # Media types compressed: exact "type/subtype", "type/*", or "type/*+suffix".
    # text/event-stream is never compressed (a stream has no end to wait for).
    types: tuple[str, ...] = DEFAULT_TYPES
    # Bodies smaller than this stay as they are (nginx's gzip_min_length is 20 bytes;
    # below about 1 KiB the saving rarely pays for the headers and the CPU).
    min_bytes: int = Field(default=1 * KiB, ge=0)
    # Bodies larger than this are not compressed (nor an origin's coding decoded).
    max_bytes: int = Field(default=10 * MiB, ge=1 * KiB, le=256 * MiB)
    # Bodies up to this size are compressed on the event loop; larger ones on a thread.
    inline_bytes: int = Field(default=64 * KiB, ge=0)
    # Offered encodings; the client's q-values decide, ties go by this order.
    encodings: tuple[Coding, ...] = ("br", "zstd", "gzip")
    gzip_level: int = Field(default=6, ge=1, le=9)
    brotli_quality: int = Field(default=5, ge=0, le=11)
    zstd_level: int = Field(default=6, ge=1, le=19)

    @field_validator("types")
    @classmethod
    def _types(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        out = []
        for item in value:
            kind, slash, sub = item.strip().lower().partition("/")
            if not slash or not kind or not sub or kind == "*" or "*" in sub[1:]:
                raise ValueError(f"{item!r} is not a media type or type/* pattern")
            out.append(f"{kind}/{sub}")
        return tuple(out)

    @field_validator("encodings")
    @classmethod
    def _encodings(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("an encoding is listed twice")
        return value
