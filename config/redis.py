"""`[redis]`: the shared L2 cache tier (proxy/cache/redis_tier.py). Off unless `url` or
`cluster_nodes` is set."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

MiB = 1024 * 1024
Positive = Annotated[float, Field(gt=0)]


class RedisSettings(BaseModel):
    # Frozen and strict like config.schema's models; a printed ValidationError must not
    # echo the password.
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    # One Redis: redis://host:port/db or rediss:// for TLS. The password goes in
    # `password` (EDGESHIELD_REDIS__PASSWORD), not in the URL.
    url: str | None = None
    # Redis Cluster: "host:port" seed nodes (the rest of the cluster is discovered).
    cluster_nodes: tuple[str, ...] = ()
    # TLS to the cluster nodes (a single node takes it from the rediss:// scheme).
    tls: bool = False
    username: str | None = None
    password: SecretStr | None = None
    # Prepended to every key, so several deployments can share one Redis.
    key_prefix: str = "es:"
    # Bound on every Redis operation, connecting included: an L2 that is slower than
    # this is treated as down. It must exceed a connect (TCP, plus TLS) to Redis.
    op_timeout: Positive = 0.05
    # Extra time allowed to write a large entry, per MiB of it.
    put_timeout_per_mib: Annotated[float, Field(ge=0)] = 0.01
    # Socket connect timeout of the client (the warm-up ping waits this long).
    connect_timeout: Positive = 0.5
    # Entries larger than this (encoded) are not written to Redis.
    max_object_bytes: Annotated[int, Field(ge=1)] = 8 * MiB
    max_connections: Annotated[int, Field(ge=1)] = 64
    # Circuit breaker: this many consecutive failures open it; it stays open for
    # breaker_backoff seconds, doubled after each failed trial up to breaker_backoff_max.
    breaker_failures: Annotated[int, Field(ge=1)] = 3
    breaker_backoff: Positive = 1.0
    breaker_backoff_max: Positive = 30.0

    @property
    def enabled(self) -> bool:
        return self.url is not None or bool(self.cluster_nodes)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("redis", "rediss"):
            raise ValueError("must be a redis:// or rediss:// URL")
        if not parts.hostname:
            raise ValueError("needs a host (redis://host:port/db)")
        if parts.password is not None:
            # A URL is printed and logged as is; the secret belongs in `password`.
            raise ValueError(
                "must not contain a password: set redis.password "
                "(EDGESHIELD_REDIS__PASSWORD) instead"
            )
        try:
            parts.port  # noqa: B018 - raises on a malformed port
        except ValueError:
            raise ValueError("has an invalid port") from None
        return value

    @field_validator("cluster_nodes")
    @classmethod
    def _nodes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for node in value:
            host, sep, port = node.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"{node!r} is not host:port")
        return value

    @model_validator(mode="after")
    def _one_target(self) -> RedisSettings:
        if self.url is not None and self.cluster_nodes:
            raise ValueError("url: give url (one Redis) or cluster_nodes (a cluster), not both")
        if self.tls and self.url is not None:
            raise ValueError("tls: for cluster_nodes only; a single Redis uses rediss://")
        if self.breaker_backoff_max < self.breaker_backoff:
            raise ValueError(
                f"breaker_backoff_max: must be >= breaker_backoff ({self.breaker_backoff})"
            )
        return self

    def cluster_addresses(self) -> list[tuple[str, int]]:
        out = []
        for node in self.cluster_nodes:
            host, _, port = node.rpartition(":")
            out.append((host.strip("[]"), int(port)))
        return out
