"""The typed settings schema: one immutable Settings object, built once by config.loader."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator, model_validator

Seconds = Annotated[float, Field(ge=0)]
Bytes = Annotated[int, Field(ge=0)]
MiB = 1024 * 1024


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ServerSettings(_Frozen):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    workers: int = Field(default=1, ge=1, le=256)
    # "-" is stdout; a path appends to that file; "off" disables the access log.
    access_log: str = "-"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # Requests beyond these get 414 / 431 before any work is done.
    max_url_bytes: int = Field(default=8192, ge=256)
    max_header_bytes: int = Field(default=32768, ge=1024)
    # Where worker processes share metric snapshots; `serve --workers N` uses a fresh
    # temporary directory when unset.
    metrics_dir: Path | None = None


class CacheSettings(_Frozen):
    # The memory tier is bounded in bytes (bodies + headers), not in entries.
    memory_bytes: Bytes = 256 * MiB
    memory_max_object_bytes: Bytes = 16 * MiB
    # Distinct Vary variants kept per URL; further variants are served but not stored.
    max_variants: int = Field(default=16, ge=1, le=1024)
    heuristic_fraction: float = Field(default=0.1, ge=0, le=1)
    heuristic_max: Seconds = 86400


class CachePolicy(_Frozen):
    """Per-route caching rules layered over what the origin says (RFC 9111)."""

    enabled: bool = True
    # Freshness when the origin gives none (instead of the Last-Modified heuristic).
    default_ttl: Seconds | None = None
    # Freshness that replaces whatever the origin says (no-store and private still apply).
    override_ttl: Seconds | None = None
    # Defaults for RFC 5861 when the origin does not send the directives.
    stale_while_revalidate: Seconds = 0
    stale_if_error: Seconds = 0
    # 404 and 410 without explicit freshness are cached this long.
    negative_ttl: Seconds = 10
    # Targeted cache-control fields (RFC 9213), highest precedence first; the first one
    # present in a response replaces Cache-Control for this cache.
    targeted_fields: tuple[str, ...] = ("cdn-cache-control", "surrogate-control")
    # Targeted fields removed from responses to clients (CDN-Cache-Control is kept so a
    # CDN in front of the shield can still read it).
    strip_fields: tuple[str, ...] = ("surrogate-control",)
    # When set, replaces Cache-Control on responses to clients.
    downstream_cache_control: str | None = None


class FsOrigin(_Frozen):
    kind: Literal["fs"]
    root: Path


class HttpOrigin(_Frozen):
    kind: Literal["http"]
    url: HttpUrl
    host_header: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    connect_timeout: Seconds = 3.0
    # Time until the response headers arrive (Varnish: first_byte_timeout).
    first_byte_timeout: Seconds = 15.0
    # Longest silence between two body chunks (Varnish: between_bytes_timeout).
    read_timeout: Seconds = 10.0
    # Deadline for the whole exchange including the body; None = no deadline.
    total_timeout: Seconds | None = None
    max_connections: int = Field(default=100, ge=1)
    verify_tls: bool = True


OriginSettings = Annotated[FsOrigin | HttpOrigin, Field(discriminator="kind")]


class RouteSettings(_Frozen):
    host: str = "*"
    path_prefix: str = "/"
    origin: str
    read_only: bool = False
    cache: CachePolicy = CachePolicy()

    # A field validator (not a model one) so it is reported together with other errors.
    @field_validator("path_prefix")
    @classmethod
    def _prefix_is_absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must start with '/'")
        return value


class Settings(_Frozen):
    server: ServerSettings = ServerSettings()
    cache: CacheSettings = CacheSettings()
    origins: dict[str, OriginSettings]
    routes: tuple[RouteSettings, ...]

    # Messages are "<field path>: <reason>"; config.loader reports them at that path.
    @model_validator(mode="after")
    def _routes_name_known_origins(self) -> Settings:
        if not self.routes:
            raise ValueError("routes: at least one route is required")
        for i, route in enumerate(self.routes):
            if route.origin not in self.origins:
                known = ", ".join(sorted(self.origins)) or "none"
                raise ValueError(
                    f"routes[{i}].origin: unknown origin {route.origin!r} (known: {known})"
                )
        return self
