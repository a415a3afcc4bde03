"""Token buckets: the arithmetic with an injected clock, bounded memory, and the Redis
limiter against a real redis-server (two instances sharing one limit; Redis killed ->
local limiting, logged once per change of state)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis

from proxy.auth.ratelimit import (
    LocalRateLimiter,
    RateDecision,
    RedisRateLimiter,
    take,
    too_many_requests,
)
from tests.support.redis_server import RedisServer, running_redis


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_bucket_arithmetic() -> None:
    # Full bucket of 3, 1 token/s.
    assert take(3, 0, 0, rate=1, burst=3) == (True, 2, 0)
    assert take(0, 0, 0, rate=1, burst=3) == (False, 0, 1)
    assert take(0, 0, 0.25, rate=1, burst=3) == (False, 0.25, 0.75)
    assert take(0, 0, 100, rate=1, burst=3) == (True, 2, 0)  # capped at burst
    assert take(0.5, 10, 5, rate=1, burst=3) == (False, 0.5, 0.5)  # clock went back: no refill
    assert take(0, 0, 0, rate=4, burst=3, cost=2) == (False, 0, 0.5)


def test_local_limiter_with_injected_clock() -> None:
    clock = Clock()
    limiter = LocalRateLimiter(rate=2, burst=3, clock=clock)
    decisions = [limiter.take("a") for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert decisions[-1].retry_after == pytest.approx(0.5)
    assert limiter.take("b").allowed  # another client, another bucket
    clock.now += 0.25
    refused = limiter.take("a")
    assert not refused.allowed and refused.retry_after == pytest.approx(0.25)
    clock.now += 0.25
    assert limiter.take("a").allowed
    assert not limiter.take("a").allowed
    clock.now += 10  # idle: full again, and the bucket has expired from memory
    assert [limiter.take("a").allowed for _ in range(4)] == [True, True, True, False]


def test_retry_after_header_is_whole_seconds_at_least_one() -> None:
    assert RateDecision(False, 0, 0.2).headers() == [(b"retry-after", b"1")]
    assert RateDecision(False, 0, 2.01).headers() == [(b"retry-after", b"3")]
    assert RateDecision(True, 1, 0).headers() == []
    status, headers, body = too_many_requests(RateDecision(False, 0, 4))
    assert status == 429 and (b"retry-after", b"4") in headers and body


def test_bounded_memory_with_many_clients() -> None:
    clock = Clock()
    limiter = LocalRateLimiter(rate=1, burst=2, max_clients=1000, clock=clock)
    for i in range(50_000):
        limiter.take(f"client-{i}")
    assert len(limiter) <= 1000
    # Idle buckets expire once full again (burst / rate seconds).
    clock.now += 3
    limiter.take("fresh")
    assert len(limiter) == 1


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    with running_redis() as server:
        yield server


@pytest.fixture
async def clients(
    redis_server: RedisServer,
) -> AsyncIterator[tuple[aioredis.Redis, aioredis.Redis]]:
    if not redis_server.running:
        redis_server.start()
    a = aioredis.Redis(
        host="127.0.0.1", port=redis_server.port, socket_timeout=1, socket_connect_timeout=1
    )
    b = aioredis.Redis(
        host="127.0.0.1", port=redis_server.port, socket_timeout=1, socket_connect_timeout=1
    )
    await a.flushall()
    yield a, b
    await a.aclose()
    await b.aclose()


async def test_two_instances_share_one_limit(
    clients: tuple[aioredis.Redis, aioredis.Redis],
) -> None:
    a, b = clients
    one = RedisRateLimiter(a, rate=0.01, burst=5)
    two = RedisRateLimiter(b, rate=0.01, burst=5)
    results = []
    for i in range(8):
        limiter = one if i % 2 == 0 else two
        results.append(await limiter.acquire("client-1"))
    assert [r.allowed for r in results] == [True] * 5 + [False] * 3
    assert all(r.shared for r in results)
    assert results[-1].retry_after == pytest.approx(100, rel=0.05)  # (1 - ~0) / 0.01
    assert (await one.acquire("client-2")).allowed  # buckets are per client
    ttl = await a.pttl("edgeshield:rl:client-1")
    assert 0 < ttl <= 501_000  # expires once it would be full again


async def test_redis_refills_at_the_rate(clients: tuple[aioredis.Redis, aioredis.Redis]) -> None:
    import asyncio

    a, _ = clients
    limiter = RedisRateLimiter(a, rate=20, burst=1)
    assert (await limiter.acquire("c")).allowed
    denied = await limiter.acquire("c")
    assert not denied.allowed and 0 < denied.retry_after <= 0.05
    await asyncio.sleep(0.08)
    assert (await limiter.acquire("c")).allowed


async def test_redis_down_falls_back_to_local_and_logs_once_per_change(
    redis_server: RedisServer,
    clients: tuple[aioredis.Redis, aioredis.Redis],
    caplog: pytest.LogCaptureFixture,
) -> None:
    a, _ = clients
    logger = logging.getLogger("test.ratelimit")
    limiter = RedisRateLimiter(a, rate=0.01, burst=2, retry_interval=0, logger=logger)
    assert (await limiter.acquire("x")).shared
    redis_server.stop()
    with caplog.at_level(logging.INFO, logger="test.ratelimit"):
        decisions = [await limiter.acquire("x") for _ in range(4)]
    assert [d.shared for d in decisions] == [False] * 4
    # Local limiting still limits: a fresh local bucket of 2.
    assert [d.allowed for d in decisions] == [True, True, False, False]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "Redis unavailable" in warnings[0].getMessage()
    assert limiter.degraded
    caplog.clear()
    redis_server.start()
    with caplog.at_level(logging.INFO, logger="test.ratelimit"):
        back = [await limiter.acquire("y") for _ in range(3)]
    assert back[-1].shared and not limiter.degraded
    infos = [r for r in caplog.records if "back" in r.getMessage()]
    assert len(infos) == 1


async def test_retry_interval_skips_redis_while_degraded(redis_server: RedisServer) -> None:
    clock = Clock()
    client = aioredis.Redis(host="127.0.0.1", port=redis_server.port, socket_connect_timeout=1)
    limiter = RedisRateLimiter(client, rate=1, burst=10, retry_interval=5, clock=clock)
    redis_server.stop()
    try:
        assert not (await limiter.acquire("z")).shared
        calls = 0
        real = limiter.script

        async def counting(*args: object, **kwargs: object) -> object:
            nonlocal calls
            calls += 1
            return await real(*args, **kwargs)

        limiter.script = counting  # type: ignore[assignment]
        await limiter.acquire("z")
        assert calls == 0  # within retry_interval: local only
        clock.now += 6
        await limiter.acquire("z")
        assert calls == 1
    finally:
        redis_server.start()
        await client.aclose()
