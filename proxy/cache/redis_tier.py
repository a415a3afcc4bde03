"""L2: entries shared by every worker and every shield node, in Redis or Redis Cluster.

A cache below memory must never make a request fail or wait: every operation is bounded
by `op_timeout` (connecting included) and goes through a circuit breaker, so while Redis
is down or slow a call is refused at once, without touching the network. Any failure is a
miss (get) or not stored (put), counted, and logged once per breaker transition.

Values are proxy.cache.codec's bytes (CRC-checked), written with SET ... PX so that Redis
drops an entry when its last stale window closes. Only single-key commands are used, so
Redis Cluster needs no hash tags.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import redis.exceptions
from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from config.redis import RedisSettings
from proxy.cache import codec
from proxy.cache.breaker import Breaker, State
from proxy.cache.entry import Entry

if TYPE_CHECKING:
    from proxy.serve.metrics import Stats

log = logging.getLogger("edgeshield.redis")

MiB = 1024 * 1024
T = TypeVar("T")


class _Failed:
    """The outcome of a call that did not happen or did not succeed (None is a result)."""


FAILED = _Failed()


class RedisTier:
    name = "redis"

    def __init__(
        self,
        client: Redis | RedisCluster,
        *,
        key_prefix: str = "es:",
        op_timeout: float = 0.05,
        put_timeout_per_mib: float = 0.01,
        connect_timeout: float = 0.5,
        max_object_bytes: int = 8 * MiB,
        breaker: Breaker | None = None,
    ) -> None:
        self.client = client
        self.cluster = isinstance(client, RedisCluster)
        # Cluster hashes the first non-empty {...} of a key. Cache keys carry URLs, so a
        # client could otherwise pin any number of entries to one slot (one node) with a
        # "{x}" in the path; an empty "{}" ahead of the key makes Redis hash the whole key.
        self._prefix = key_prefix + "{}" if self.cluster and "{" not in key_prefix else key_prefix
        self.op_timeout = op_timeout
        self.put_timeout_per_mib = put_timeout_per_mib
        self.connect_timeout = connect_timeout
        self.max_object_bytes = max_object_bytes
        self.breaker = breaker or Breaker("redis")
        self.hits = 0
        self.misses = 0
        self.errors = 0
        self.timeouts = 0
        self.short_circuited = 0
        self.corrupt = 0
        self.stores = 0
        self.too_large = 0
        self.expired = 0
        self.bytes_read = 0
        self.bytes_written = 0

    @classmethod
    def from_settings(
        cls, settings: RedisSettings, *, clock: Callable[[], float] = time.monotonic
    ) -> RedisTier:
        if not settings.enabled:
            raise ValueError("redis: neither url nor cluster_nodes is set")
        password = settings.password.get_secret_value() if settings.password else None
        # One immediate retry: a pooled connection to a Redis that restarted fails once
        # and is replaced within the same call. The deadline is op_timeout either way.
        common: dict[str, Any] = {
            "username": settings.username,
            "password": password,
            "socket_connect_timeout": settings.connect_timeout,
            "max_connections": settings.max_connections,
            "retry": Retry(NoBackoff(), 1),
            "client_name": "edgeshield",
        }
        client: Redis | RedisCluster
        if settings.url is not None:
            client = Redis.from_url(settings.url, **common)
        else:
            client = RedisCluster(
                startup_nodes=[ClusterNode(h, p) for h, p in settings.cluster_addresses()],
                ssl=settings.tls,
                # A lost shard should cost its keys only, not the whole tier.
                require_full_coverage=False,
                **common,
            )
        breaker = Breaker(
            "redis",
            failures=settings.breaker_failures,
            backoff=settings.breaker_backoff,
            max_backoff=settings.breaker_backoff_max,
            clock=clock,
        )
        return cls(
            client,
            key_prefix=settings.key_prefix,
            op_timeout=settings.op_timeout,
            put_timeout_per_mib=settings.put_timeout_per_mib,
            connect_timeout=settings.connect_timeout,
            max_object_bytes=settings.max_object_bytes,
            breaker=breaker,
        )

    def storage_key(self, key: str) -> bytes:
        """The Redis key of a cache key (surrogateescape: any str maps, none raises)."""
        return (self._prefix + key).encode("utf-8", "surrogateescape")

    def accepts(self, key: str, size: int) -> bool:
        """Placement: entries up to max_object_bytes (Entry.size, headers included), of
        any key (Redis evicts by its own policy)."""
        return size <= self.max_object_bytes

    async def get(self, key: str) -> Entry | None:
        skey = self.storage_key(key)
        blob = await self._call(lambda: self.client.get(skey), self.op_timeout)
        if isinstance(blob, _Failed):
            return None
        if blob is None:
            self.misses += 1
            return None
        try:
            if not isinstance(blob, bytes):  # decode_responses is off: never happens
                raise codec.CorruptEntry("not bytes")
            self.bytes_read += len(blob)
            entry = codec.decode(blob)
        except codec.CorruptEntry as exc:
            # Never served; dropped so the next miss stores a good copy.
            self.corrupt += 1
            log.debug("redis: corrupt entry %r dropped: %s", skey, exc)
            await self._call(lambda: self.client.delete(skey), self.op_timeout)
            return None
        self.hits += 1
        return entry

    async def put(self, key: str, entry: Entry, now: float) -> bool:
        """Store `entry` until its last stale window closes; False when it was not stored
        (too large, already expired, Redis down or slow)."""
        # Checked on the body first so an oversized object is not encoded (copied) for nothing.
        if len(entry.body) > self.max_object_bytes:
            self.too_large += 1
            return False
        ttl = codec.ttl_for(entry, now)
        if ttl <= 0:
            self.expired += 1
            return False
        if not self._admit():
            return False
        blob = codec.encode(entry)
        if len(blob) > self.max_object_bytes:
            self.too_large += 1
            self.breaker.release()  # an admitted trial that never went out
            return False
        skey = self.storage_key(key)
        px = max(1, math.ceil(ttl * 1000))
        # A large write takes longer without Redis being unwell.
        limit = self.op_timeout + len(blob) / MiB * self.put_timeout_per_mib
        stored = await self._run(lambda: self.client.set(skey, blob, px=px), limit)
        if isinstance(stored, _Failed):
            return False
        self.stores += 1
        self.bytes_written += len(blob)
        return True

    async def delete(self, *keys: str) -> int:
        """Remove entries; how many existed (0 when Redis could not be reached)."""
        if not keys:
            return 0
        skeys = [self.storage_key(key) for key in keys]
        # redis-py splits a multi-key DEL by slot on a cluster, so this works on both.
        removed = await self._call(lambda: self.client.delete(*skeys), self.op_timeout)
        return 0 if isinstance(removed, _Failed) else int(removed)

    async def ping(self) -> bool:
        """Reach Redis once (bounded by connect_timeout): a warm-up at start, so the
        first requests find a pooled connection, and a readiness detail."""
        ok = await self._call(lambda: self.client.ping(), self.connect_timeout)
        return not isinstance(ok, _Failed)

    async def close(self) -> None:
        try:
            await self.client.aclose()
        except Exception as exc:  # closing a dead connection must not fail shutdown
            log.debug("redis: close: %s", exc)

    def stats(self) -> dict[str, Any]:
        state = self.breaker.state
        return {
            "hits": self.hits,
            "misses": self.misses,
            "errors": self.errors,
            "timeouts": self.timeouts,
            "short_circuited": self.short_circuited,
            "corrupt": self.corrupt,
            "stores": self.stores,
            "too_large": self.too_large,
            "expired": self.expired,
            "bytes_read": self.bytes_read,
            "bytes_written": self.bytes_written,
            "circuit_state": state.label,
            "circuit_state_code": int(state),
            "circuit_opened": self.breaker.opened,
        }

    def register_metrics(self, stats: Stats) -> None:
        stats.sample_lower_tier(self.name, self.stats)
        breaker = self.breaker
        stats.sample("edgeshield_redis_circuit_state", self.name, lambda: {(): int(breaker.state)})
        stats.sample("edgeshield_redis_circuit_opened", self.name, lambda: {(): breaker.opened})

    @property
    def circuit_state(self) -> State:
        return self.breaker.state

    def _admit(self) -> bool:
        if self.breaker.allow():
            return True
        self.short_circuited += 1
        return False

    async def _call(self, op: Callable[[], Awaitable[T]], limit: float) -> T | _Failed:
        if not self._admit():
            return FAILED
        return await self._run(op, limit)

    async def _run(self, op: Callable[[], Awaitable[T]], limit: float) -> T | _Failed:
        """One admitted Redis call under its deadline; every outcome reaches the breaker."""
        try:
            async with asyncio.timeout(limit):
                result = await op()
        except (TimeoutError, redis.exceptions.TimeoutError):
            self.timeouts += 1
            self.breaker.failure(f"no answer within {limit * 1000:.0f} ms")
            return FAILED
        except Exception as exc:
            # Whatever went wrong below us is a miss, never the request's failure.
            self.errors += 1
            self.breaker.failure(f"{type(exc).__name__}: {exc}")
            log.debug("redis: %s: %s", type(exc).__name__, exc)
            return FAILED
        except BaseException:
            # Cancelled by its caller: no outcome, but a trial slot must not stay taken.
            self.breaker.release()
            raise
        self.breaker.success()
        return result
