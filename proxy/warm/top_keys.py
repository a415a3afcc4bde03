"""The memory tier filled at start from Redis with the keys requested most.

Every `[warm] top_keys_interval` seconds each worker adds what its top-objects table
(proxy/ops/top_objects.py, fast-path hits included) counted since its last write to one
Redis sorted set, `<key_prefix>warm:top`, after halving the scores already there, and
keeps the `startup_keys` highest: a decayed request count over the whole fleet, bounded
in size, that expires when nobody writes it. At start, a worker reads those keys and
looks each up (`Cache.find`), which promotes a Redis (or disk) copy into memory: no
origin request, and only what the shared tiers still hold. Every call runs under the
Redis tier's operation timeout scaled to its size; a Redis that is down costs one
warning per write and an empty start."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from proxy.ops.status import fast_hits
from proxy.warm.jobs import Job, Warmer

if TYPE_CHECKING:
    from proxy.fastpath import HitFastPath
    from proxy.serve.state import AppState

# Redis calls of one write or read, each bounded by op_timeout; the whole by this many.
CALLS_BUDGET = 20
# Unwritten for this many intervals (and at least EXPIRE_MIN seconds), the set expires.
EXPIRE_INTERVALS = 10
EXPIRE_MIN = 600


def set_name(state: AppState) -> str:
    return f"{state.settings.redis.key_prefix}warm:top"


def deltas(counts: Iterable[tuple[str, int]], written: dict[str, int]) -> dict[str, int]:
    """What each key gained since the counts last written (a key pruned from the table
    and counted again from 1 gains nothing until it passes its old count)."""
    return {key: n - written.get(key, 0) for key, n in counts if n > written.get(key, 0)}


async def keep_writing(state: AppState, counts: Callable[[], list[tuple[str, int]]]) -> None:
    """The lifespan task: this worker's requests added to the shared set, periodically."""
    settings = state.settings.warm
    written: dict[str, int] = {}
    while True:
        await asyncio.sleep(settings.top_keys_interval)
        now = counts()
        gained = deltas(now, written)
        if gained and await write(state, gained):
            written = dict(now)


async def write(state: AppState, gained: dict[str, int]) -> bool:
    redis = state.redis
    if redis is None:
        return False
    settings = state.settings.warm
    name = set_name(state)
    ttl = max(EXPIRE_MIN, int(settings.top_keys_interval * EXPIRE_INTERVALS))
    try:
        async with asyncio.timeout(redis.op_timeout * CALLS_BUDGET):
            # One key, so one slot: the same pipeline works on a cluster.
            pipe = redis.client.pipeline(transaction=False)
            pipe.zinterstore(name, {name: 0.5})  # halve what is there: older counts fade
            for key, n in gained.items():
                pipe.zincrby(name, n, key.encode("utf-8", "surrogateescape"))
            pipe.zremrangebyrank(name, 0, -settings.startup_keys - 1)
            pipe.expire(name, ttl)
            await pipe.execute()
    except Exception as exc:  # Redis down or slow: the next interval tries again
        state.log.warning("warm: writing the top keys to Redis failed: %r", exc)
        return False
    return True


async def read(state: AppState) -> list[str]:
    redis = state.redis
    if redis is None:
        return []
    limit = state.settings.warm.startup_keys
    try:
        async with asyncio.timeout(redis.op_timeout * CALLS_BUDGET):
            raw = await redis.client.zrevrange(set_name(state), 0, limit - 1)
    except Exception as exc:
        state.log.warning("warm: reading the top keys from Redis failed: %r", exc)
        return []
    return [k.decode("utf-8", "surrogateescape") if isinstance(k, bytes) else str(k) for k in raw]


async def warm_memory(state: AppState, warmer: Warmer, job: Job) -> None:
    """The start's job (source "redis"): each key looked up, a few at a time."""
    keys = await read(state)
    job.total = len(keys)
    queue: asyncio.Queue[str] = asyncio.Queue()
    for key in keys:
        queue.put_nowait(key)

    async def worker() -> None:
        while not queue.empty():
            key = queue.get_nowait()
            found = await state.cache.find(key, {})
            entry = found.entry
            await found.close()
            if entry is not None and found.tier != "memory":
                job.warmed += 1
                job.done += 1
                job.bytes += len(entry.body)
                state.stats.inc("edgeshield_warm_urls", ("warmed",))
            elif entry is not None:
                job.hits += 1
                job.done += 1
                state.stats.inc("edgeshield_warm_urls", ("hit",))
            else:
                job.fail(key, "not in a shared tier")
                state.stats.inc("edgeshield_warm_urls", ("failed",))

    try:
        concurrency = state.settings.warm.concurrency
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    finally:
        warmer.finish(job)


def start_warming(state: AppState, warmer: Warmer, fast: HitFastPath | None) -> None:
    """With the Redis tier and `startup_keys` > 0: the start's job and the periodic
    writes, as tasks of the app state (cancelled at shutdown)."""
    limit = state.settings.warm.startup_keys
    if state.redis is None or not limit:
        return
    state.spawn(warm_memory(state, warmer, warmer.new_job("redis")))
    state.spawn(keep_writing(state, lambda: state.top_objects.top(limit, fast_hits(fast))))
