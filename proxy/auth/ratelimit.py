"""Per-client rate limiting with token buckets.

A bucket holds up to ``burst`` tokens and refills at ``rate`` tokens per second; a
request takes one token or is refused with ``Retry-After`` = the time until one is back.

* ``LocalRateLimiter``: buckets in a bounded cachetools TTL/LRU cache; a bucket untouched
  for ``burst / rate`` seconds is full again, so dropping it then loses nothing.
* ``RedisRateLimiter``: the same arithmetic in a Lua script run with EVALSHA against
  Redis, atomically per key with Redis' own clock, so every instance sharing the Redis
  shares the limit. While Redis fails it limits locally (a ``LocalRateLimiter``) and
  logs once per change of state; it tries Redis again after ``retry_interval``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from cachetools import TTLCache
from redis.exceptions import RedisError

log = logging.getLogger("edgeshield.ratelimit")

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class RateDecision:
    allowed: bool
    remaining: float  # tokens left after this request
    retry_after: float  # seconds until a token is available (0 when allowed)
    shared: bool = False  # decided by Redis

    def headers(self) -> list[tuple[bytes, bytes]]:
        """Headers for a 429 answer: ``Retry-After`` in whole seconds, at least 1."""
        if self.allowed:
            return []
        return [(b"retry-after", str(max(1, math.ceil(self.retry_after))).encode())]


def too_many_requests(decision: RateDecision) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    headers = [
        *decision.headers(),
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"cache-control", b"no-store"),
    ]
    return 429, headers, b"too many requests\n"


def take(
    tokens: float, stamp: float, now: float, *, rate: float, burst: float, cost: float = 1.0
) -> tuple[bool, float, float]:
    """Token-bucket step: (allowed, tokens left, retry after) for a bucket that held
    ``tokens`` at ``stamp``. A refused request takes nothing."""
    elapsed = max(0.0, now - stamp)
    tokens = min(burst, tokens + elapsed * rate)
    if tokens >= cost:
        return True, tokens - cost, 0.0
    return False, tokens, (cost - tokens) / rate


class RateLimiter(Protocol):
    async def acquire(self, key: str, cost: float = 1.0) -> RateDecision: ...


class LocalRateLimiter:
    """Buckets of one process, at most ``max_clients`` of them (least recently used
    dropped first). Not thread-safe: one per event loop."""

    def __init__(
        self,
        rate: float,
        burst: float,
        *,
        max_clients: int = 100_000,
        clock: Clock = time.monotonic,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = float(burst)
        self.clock = clock
        self.buckets: TTLCache[str, list[float]] = TTLCache(
            maxsize=max_clients, ttl=self.burst / rate, timer=clock
        )

    def take(self, key: str, cost: float = 1.0, now: float | None = None) -> RateDecision:
        now = self.clock() if now is None else now
        bucket = self.buckets.get(key)
        tokens, stamp = (self.burst, now) if bucket is None else (bucket[0], bucket[1])
        allowed, left, wait = take(tokens, stamp, now, rate=self.rate, burst=self.burst, cost=cost)
        self.buckets[key] = [left, now]  # re-inserting refreshes the entry's TTL
        return RateDecision(allowed, left, wait)

    async def acquire(self, key: str, cost: float = 1.0) -> RateDecision:
        return self.take(key, cost)

    def __len__(self) -> int:
        return len(self.buckets)


# KEYS[1] bucket; ARGV rate, burst, cost. Redis' clock, so instances agree on time.
# Returns {allowed, tokens left * 1000, retry-after in ms}.
LUA_TOKEN_BUCKET = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
local elapsed = now - ts
if elapsed < 0 then elapsed = 0 end
tokens = math.min(burst, tokens + elapsed * rate)
local allowed = 0
local wait = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
else
  wait = (cost - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {allowed, math.floor(tokens * 1000), math.ceil(wait * 1000)}
"""


class RedisRateLimiter:
    """Shared buckets in Redis (``redis.asyncio`` client), local fallback on errors."""

    def __init__(
        self,
        client: Any,
        rate: float,
        burst: float,
        *,
        prefix: str = "edgeshield:rl:",
        max_clients: int = 100_000,
        timeout: float = 0.25,
        retry_interval: float = 1.0,
        clock: Clock = time.monotonic,
        logger: logging.Logger = log,
    ) -> None:
        self.client = client
        self.rate = rate
        self.burst = float(burst)
        self.prefix = prefix
        self.timeout = timeout
        self.retry_interval = retry_interval
        self.clock = clock
        self.log = logger
        self.local = LocalRateLimiter(rate, burst, max_clients=max_clients, clock=clock)
        self.script = client.register_script(LUA_TOKEN_BUCKET)
        self.degraded = False
        self._retry_at = 0.0

    async def acquire(self, key: str, cost: float = 1.0) -> RateDecision:
        if self.degraded and self.clock() < self._retry_at:
            return self.local.take(key, cost)
        try:
            allowed, left, wait_ms = await asyncio.wait_for(
                self.script(keys=[self.prefix + key], args=[self.rate, self.burst, cost]),
                self.timeout,
            )
        except (TimeoutError, RedisError, OSError) as exc:
            self._retry_at = self.clock() + self.retry_interval
            if not self.degraded:
                self.degraded = True
                self.log.warning(
                    "rate limit: Redis unavailable (%s); limiting per instance",
                    type(exc).__name__,
                )
            return self.local.take(key, cost)
        if self.degraded:
            self.degraded = False
            self.log.info("rate limit: Redis is back; limits are shared again")
        return RateDecision(bool(allowed), int(left) / 1000, int(wait_ms) / 1000, shared=True)
