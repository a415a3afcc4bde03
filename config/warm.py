"""`[warm]`: warming the cache on demand (`POST /_warm`, `edgeshield warm`) and, with
the Redis tier, each start's memory tier from the keys requested most (proxy/warm/)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

MiB = 1024 * 1024


class WarmSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # URLs of one job fetched at the same time (each through the normal request path).
    concurrency: int = Field(default=4, ge=1, le=64)
    # URLs one job may hold, a playlist's renditions and segments included; the rest
    # of a longer list is refused before anything is fetched.
    max_urls: int = Field(default=10_000, ge=1, le=1_000_000)
    # A POST body (URL list or sitemap), and a playlist read for its URIs.
    max_body_bytes: int = Field(default=8 * MiB, ge=1024, le=256 * MiB)
    # Jobs kept for `GET /_warm/<id>`: the oldest finished ones go first; when this many
    # are still running, a new one is refused with 429.
    max_jobs: int = Field(default=20, ge=1, le=1000)
    # With the Redis tier: the most requested keys written to Redis every
    # `top_keys_interval` seconds, and read back at start to fill the memory tier from
    # Redis (no origin fetch). 0 turns both off.
    startup_keys: int = Field(default=1000, ge=0, le=100_000)
    top_keys_interval: Annotated[float, Field(gt=0, le=86400)] = 60.0
