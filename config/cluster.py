"""`[cluster]`: instances that share their misses by key ownership (proxy/cluster/).

Every key has one owner among `peers` (weighted rendezvous hashing); a miss on another
instance is fetched from the owner over an authenticated HTTP hop instead of from the
origin. With `registry`, the instances are also those that announce themselves in Redis
([redis]) with heartbeats; with `dns`, the addresses a name resolves to (a Kubernetes
headless Service). With `socket_dir`, the workers of one instance share their
misses the same way, each listening on its own unix socket in that folder. Off unless
`peers`, `registry`, `dns` or `socket_dir` is set."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from config.fields import SecretText

Positive = Annotated[float, Field(gt=0)]


def peer_url(value: str) -> str:
    """A peer's base URL, normalised: `http://host:port`, no path, query or credentials
    (so that every instance names a peer the same way, and hashes the same string)."""
    parts = urlsplit(value.strip())
    if parts.scheme != "http" or not parts.hostname or parts.port is None:
        raise ValueError(f"must be http://host:port (got {value!r})")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError(f"must be a plain http://host:port, without a path (got {value!r})")
    host = parts.hostname.lower()
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{parts.port}"


class PeerSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str
    # Its share of the keys relative to the others' (a bigger machine: a bigger weight).
    weight: float = Field(default=1.0, gt=0, le=1000)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return peer_url(value)


class ClusterSettings(BaseModel):
    model_config = ConfigDict(
        frozen=True, extra="forbid", hide_input_in_errors=True, populate_by_name=True
    )

    # Every instance of the cluster, this one included, as the others reach its cluster
    # listener: "http://10.0.0.5:8090", or {url = "...", weight = 2}. Empty: off.
    peers: tuple[PeerSettings, ...] = ()
    # This instance's entry in `peers`; its port is where the cluster listener listens.
    self_url: str | None = Field(default=None, alias="self")
    # Signs every hop (HMAC-SHA256 over method, host, target and time); the same on
    # every instance.
    secret: SecretText | None = None
    # Address the cluster listener binds (default: [server] host).
    host: str | None = None
    # A hop whose signature is older or newer than this is refused (clock skew included).
    replay_window: Positive = 30.0
    # The hop's limits: connect, time to the owner's response head, silence in its body.
    # A peer that exceeds one is skipped (the origin is asked) and marked down.
    connect_timeout: Positive = 0.5
    first_byte_timeout: Positive = 5.0
    read_timeout: Positive = 10.0
    # A peer that failed is skipped for this long, doubling on each further failure up
    # to `max_down_seconds`; one success resets it.
    down_seconds: Positive = 1.0
    max_down_seconds: Positive = 30.0
    max_connections: int = Field(default=100, ge=1)
    # Membership from Redis too ([redis] required): every worker adds `self` with the time
    # to one sorted set every `heartbeat_interval`; entries not renewed for `member_ttl`
    # are gone. `weight` is this instance's weight there.
    registry: bool = False
    weight: float = Field(default=1.0, gt=0, le=1000)
    heartbeat_interval: Positive = 1.0
    member_ttl: Positive = 5.0
    # Membership from DNS too: every A/AAAA record of this name, at `dns_port`, is an
    # instance (weight 1), resolved every `dns_interval`; the last good set is kept when
    # resolution fails. This instance is `self`, or else the record whose address is
    # local. A Kubernetes headless Service's name, for instance.
    dns: str | None = None
    # The cluster port of every instance found by `dns` (default: the port of `self`).
    dns_port: int | None = Field(default=None, ge=1, le=65535)
    dns_interval: Positive = 5.0
    # The workers of this instance as peers: each listens on <socket_dir>/<pid>.sock, and
    # the sockets of live workers there are the members. One folder per instance.
    socket_dir: Path | None = None
    # How often a worker looks at that folder for workers that came or went.
    membership_interval: Positive = 1.0
    # A worker relaying from the worker that owns a key keeps its own memory copy once
    # it was asked for the key this many times lately (admission's count, 1-15): hot
    # objects are then hits on every worker, without a hop, at the cost of memory the
    # cold tail had (docs/benchmarks.md). 0: one copy per instance.
    hot_copy_requests: int = Field(default=0, ge=0, le=15)

    @field_validator("peers", mode="before")
    @classmethod
    def _peer_strings(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return tuple({"url": v} if isinstance(v, str) else v for v in value)
        return value

    @field_validator("socket_dir")
    @classmethod
    def _socket_dir(cls, value: Path | None) -> Path | None:
        # A unix socket path holds at most 107 bytes: the folder, "/", a pid, ".sock".
        if value is not None and len(str(value).encode()) > 107 - len("/4194304.sock"):
            raise ValueError("too long for a unix socket path (at most 94 bytes)")
        return value

    @field_validator("self_url")
    @classmethod
    def _self(cls, value: str | None) -> str | None:
        return None if value is None else peer_url(value)

    @model_validator(mode="after")
    def _complete(self) -> ClusterSettings:
        if (self.instances_on or self.socket_dir is not None) and self.secret is None:
            raise ValueError("secret: required when peers, registry, dns or socket_dir is set")
        if (self.peers or self.registry) and self.self_url is None:
            raise ValueError("self: required with peers or registry (this instance's URL)")
        if self.dns is not None and self.port is None:
            raise ValueError("dns_port: required with dns when self is not set")
        if self.dns is not None and self.registry:
            raise ValueError("dns: membership from dns or from the registry, not both")
        if self.member_ttl <= self.heartbeat_interval:
            raise ValueError("member_ttl: must exceed heartbeat_interval")
        if self.max_down_seconds < self.down_seconds:
            raise ValueError("max_down_seconds: must be at least down_seconds")
        return self

    @field_validator("dns")
    @classmethod
    def _dns(cls, value: str | None) -> str | None:
        if value is None:
            return None
        name = value.strip().rstrip(".").lower()
        if not name or len(name) > 253 or any(c in name for c in "/:@ \t[]"):
            raise ValueError(f"must be a host name (got {value!r})")
        return name

    @property
    def instances_on(self) -> bool:
        """Whether instances share their misses (an instance ring and listener)."""
        return bool(self.peers or self.registry or self.dns)

    @property
    def port(self) -> int | None:
        """The cluster listener's port: the one `self` names, else `dns_port`."""
        return urlsplit(self.self_url).port if self.self_url else self.dns_port

    @property
    def dns_peer_port(self) -> int | None:
        """The port of the instances `dns` finds: `dns_port`, else the one of `self`."""
        return self.dns_port or self.port
