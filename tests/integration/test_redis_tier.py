"""The Redis tier against real redis-server processes: a single node, a dead one, one that
never answers, and a 3-node Redis Cluster. A Redis problem may cost a request at most
op_timeout and never an exception."""

from __future__ import annotations

import asyncio
import binascii
import time
from collections.abc import AsyncIterator, Iterator

import pytest
import redis
from pydantic import ValidationError
from redis.crc import key_slot

from config.redis import RedisSettings
from proxy.cache import codec
from proxy.cache.breaker import State
from proxy.cache.entry import Entry
from proxy.cache.redis_tier import RedisTier
from proxy.http.freshness import Freshness
from tests.support.redis_server import (
    HOST,
    RedisCluster,
    RedisServer,
    running_redis,
    running_redis_cluster,
)

OP_TIMEOUT = 0.05
# Scheduling slack on a busy 2-core CI machine (a hang guard: a call the op timeout did
# not bound would take seconds); the counters say which limit ended each call.
MARGIN = 1.0


class Clock:
    """The breaker's clock, moved by hand so backoffs need no sleeping."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make_entry(
    body: bytes = b"hello",
    *,
    response_time: float | None = None,
    lifetime: float = 60.0,
    swr: float = 30.0,
    sie: float = 600.0,
) -> Entry:
    return Entry(
        status=200,
        headers=[(b"content-type", b"text/plain"), (b"etag", b'"x"')],
        origin_headers=[("content-type", "text/plain"), ("etag", '"x"')],
        body=body,
        etag='"x"',
        last_modified=1700000000.0,
        content_type="text/plain",
        response_time=time.time() if response_time is None else response_time,
        freshness=Freshness(True, "", lifetime, 2.0, swr, sie, False, False),
        upstream_status=None,
    )


def same_entry(a: Entry, b: Entry) -> bool:
    fields = ("status", "headers", "origin_headers", "body", "etag", "response_time")
    return all(getattr(a, f) == getattr(b, f) for f in fields) and a.freshness == b.freshness


def tier_for(url: str, clock: Clock | None = None, **settings: object) -> RedisTier:
    cfg = RedisSettings.model_validate({"url": url, "op_timeout": OP_TIMEOUT, **settings})
    return RedisTier.from_settings(cfg, clock=clock or Clock())


async def timed(coro: object) -> tuple[object, float]:
    start = time.perf_counter()
    result = await coro  # type: ignore[misc]
    return result, time.perf_counter() - start


# -- single node ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def redis_module() -> Iterator[RedisServer]:
    with running_redis() as server:
        yield server


@pytest.fixture
def server(redis_module: RedisServer) -> RedisServer:
    if not redis_module.running:
        redis_module.start()
    with redis.Redis(host=HOST, port=redis_module.port) as client:
        client.flushall()
    return redis_module


@pytest.fixture
def sync(server: RedisServer) -> Iterator[redis.Redis]:
    with redis.Redis(host=HOST, port=server.port) as client:
        yield client


@pytest.fixture
async def tier(server: RedisServer) -> AsyncIterator[RedisTier]:
    t = tier_for(server.url)
    yield t
    await t.close()


async def test_round_trip(tier: RedisTier, sync: redis.Redis) -> None:
    entry = make_entry(b"x" * 10_000)
    assert await tier.put("example.com/a.mp4", entry, time.time())
    assert sync.exists(b"es:example.com/a.mp4")
    got = await tier.get("example.com/a.mp4")
    assert got is not None and same_entry(got, entry)
    assert got.fresh_until == entry.fresh_until and got.full_headers == entry.full_headers
    assert await tier.get("example.com/other") is None
    s = tier.stats()
    assert (s["hits"], s["misses"], s["stores"], s["errors"], s["timeouts"]) == (1, 1, 1, 0, 0)
    assert s["bytes_written"] == s["bytes_read"] == len(codec.encode(entry))
    assert s["circuit_state"] == "closed" and s["circuit_state_code"] == 0


async def test_keys_are_prefixed_and_taken_as_given(server: RedisServer) -> None:
    t = tier_for(server.url, key_prefix="shield7:")
    try:
        key = "host/p\x00accept-encoding=gzip \u00e9"  # a variant key: NUL and non-ASCII
        assert await t.put(key, make_entry(), time.time())
        with redis.Redis(host=HOST, port=server.port) as client:
            assert client.keys() == [("shield7:" + key).encode()]
        assert await t.get(key) is not None
    finally:
        await t.close()


async def test_ttl_follows_the_last_stale_window(tier: RedisTier, sync: redis.Redis) -> None:
    now = time.time()
    # fresh until now + 60 - 2, stale-if-error 600 s beyond that
    assert await tier.put("k1", make_entry(response_time=now), now)
    assert 657_000 < sync.pttl(b"es:k1") <= 658_000
    assert await tier.put("k2", make_entry(response_time=now, swr=0, sie=0), now)
    assert 57_000 < sync.pttl(b"es:k2") <= 58_000
    # Past every window: nothing is written.
    old = make_entry(response_time=now - 10_000)
    assert not await tier.put("k3", old, now)
    assert not sync.exists(b"es:k3")
    assert tier.stats()["expired"] == 1


async def test_too_large_is_not_stored(server: RedisServer, sync: redis.Redis) -> None:
    t = tier_for(server.url, max_object_bytes=4096)
    try:
        assert not await t.put("big", make_entry(b"x" * 5000), time.time())
        # The body fits, the encoded entry (with its metadata) does not.
        assert not await t.put("edge", make_entry(b"x" * 4000), time.time())
        assert await t.put("small", make_entry(b"x" * 1000), time.time())
        assert sync.keys() == [b"es:small"]
        assert t.stats()["too_large"] == 2
    finally:
        await t.close()


async def test_corrupt_value_is_a_miss_and_deleted(tier: RedisTier, sync: redis.Redis) -> None:
    blob = codec.encode(make_entry(b"y" * 1000))
    sync.set(b"es:truncated", blob[:-10], px=60_000)
    sync.set(b"es:flipped", blob[:-1] + b"z", px=60_000)
    sync.set(b"es:garbage", b"not an entry", px=60_000)
    for key in ("truncated", "flipped", "garbage"):
        assert await tier.get(key) is None
        assert not sync.exists(b"es:" + key.encode())
    s = tier.stats()
    assert s["corrupt"] == 3 and s["hits"] == 0 and s["errors"] == 0
    assert tier.circuit_state is State.CLOSED


async def test_delete(tier: RedisTier) -> None:
    now = time.time()
    for key in ("a", "b", "c"):
        await tier.put(key, make_entry(), now)
    assert await tier.delete("a", "b", "missing") == 2
    assert await tier.delete() == 0
    assert await tier.get("a") is None
    assert await tier.get("c") is not None


async def test_late_reply_never_answers_the_next_call(tier: RedisTier, server: RedisServer) -> None:
    """A call abandoned at its deadline must not leave its reply on a pooled connection,
    where the next GET would read it: the wrong object, with a valid checksum."""
    now = time.time()
    a, b = make_entry(b"A" * 100), make_entry(b"B" * 100)
    assert await tier.put("a", a, now) and await tier.put("b", b, now)

    def block_server() -> None:
        with redis.Redis(host=HOST, port=server.port) as client:
            client.execute_command("DEBUG", "SLEEP", "0.2")

    blocker = asyncio.get_running_loop().run_in_executor(None, block_server)
    await asyncio.sleep(0.05)
    assert await tier.get("a") is None  # timed out; its reply comes later
    await blocker
    got = await tier.get("b")
    assert got is not None and got.body == b.body
    assert tier.stats()["timeouts"] == 1


async def test_redis_stopped_then_restarted(server: RedisServer) -> None:
    clock = Clock()
    t = tier_for(server.url, clock, breaker_failures=3, breaker_backoff=1.0)
    try:
        assert await t.ping()
        assert await t.put("k", make_entry(), time.time())
        server.stop()
        # Each call fails fast and quietly; three failures open the circuit.
        for i in range(3):
            result, took = await timed(t.get("k") if i % 2 else t.put("k", make_entry(), 0.0))
            assert result in (None, False)
            assert took < OP_TIMEOUT + MARGIN
        assert t.circuit_state is State.OPEN
        errors = t.stats()["errors"] + t.stats()["timeouts"]
        assert errors == 3
        # Open: refused without touching the network.
        for _ in range(20):
            assert await t.get("k") is None
        assert not await t.put("k", make_entry(), time.time())
        s = t.stats()
        assert s["short_circuited"] == 21 and s["errors"] + s["timeouts"] == errors
        assert s["circuit_state"] == "open" and s["circuit_state_code"] == 1
        # The trial after the backoff fails while Redis is still down: open for longer.
        clock.now += 1.0
        assert t.circuit_state is State.HALF_OPEN
        assert await t.get("k") is None
        assert t.circuit_state is State.OPEN and t.breaker.backoff == 2.0

        server.start()
        clock.now += 1.0
        assert await t.get("k") is None  # still open: 2 s backoff
        clock.now += 1.0
        # The trial reaches the restarted (empty) Redis, the circuit closes.
        assert await t.put("k", make_entry(), time.time())
        assert t.circuit_state is State.CLOSED and t.breaker.backoff == 1.0
        assert await t.get("k") is not None
        assert t.stats()["circuit_opened"] == 2
    finally:
        await t.close()


async def test_outage_never_raises_nor_blocks_concurrent_requests(server: RedisServer) -> None:
    t = tier_for(server.url)
    try:
        await t.put("k", make_entry(), time.time())
        server.stop()
        start = time.perf_counter()
        results = await asyncio.gather(*(t.get("k") for _ in range(50)))
        assert results == [None] * 50
        assert time.perf_counter() - start < OP_TIMEOUT + MARGIN
        assert t.circuit_state is State.OPEN
        assert await t.delete("k") == 0
        assert not await t.ping()
    finally:
        await t.close()


# -- a Redis that accepts connections and never answers ---------------------------------


@pytest.fixture
async def silent_port() -> AsyncIterator[int]:
    writers: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)  # keep the connection open, read nothing, answer nothing

    srv = await asyncio.start_server(swallow, HOST, 0)
    try:
        yield srv.sockets[0].getsockname()[1]
    finally:
        for w in writers:
            w.close()
        srv.close()
        await srv.wait_closed()


async def test_unresponsive_redis_costs_at_most_the_timeout(silent_port: int) -> None:
    clock = Clock()
    t = tier_for(f"redis://{HOST}:{silent_port}/0", clock, breaker_failures=2)
    try:
        for call in (t.get("k"), t.put("k", make_entry(), time.time())):
            result, took = await timed(call)
            assert result in (None, False)
            assert OP_TIMEOUT * 0.9 < took < OP_TIMEOUT + MARGIN
        assert t.stats()["timeouts"] == 2
        assert t.circuit_state is State.OPEN
        assert await t.get("k") is None
        assert t.stats()["short_circuited"] == 1  # refused without touching the network
        # Half-open: of many concurrent calls one is the trial, the rest are refused.
        clock.now += 1.0
        start = time.perf_counter()
        results = await asyncio.gather(*(t.get("k") for _ in range(10)))
        assert results == [None] * 10
        assert time.perf_counter() - start < OP_TIMEOUT + MARGIN
        assert t.stats()["timeouts"] == 3
        assert t.circuit_state is State.OPEN and t.breaker.backoff == 2.0
    finally:
        await t.close()


async def test_cancelled_trial_frees_the_trial_slot(silent_port: int) -> None:
    clock = Clock()
    t = tier_for(f"redis://{HOST}:{silent_port}/0", clock, breaker_failures=1, op_timeout=5.0)
    try:
        t.breaker.failure("test")  # open
        clock.now += 1.0
        trial = asyncio.create_task(t.get("k"))
        await asyncio.sleep(0.05)
        assert await t.get("other") is None  # refused: the trial is out
        trial.cancel()
        with pytest.raises(asyncio.CancelledError):
            await trial
        assert t.circuit_state is State.HALF_OPEN
        assert t.breaker.allow()  # the next call may be the trial
    finally:
        await t.close()


# -- Redis Cluster ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisCluster]:
    with running_redis_cluster(3) as c:
        yield c


def node_keys(cluster: RedisCluster) -> list[list[bytes]]:
    out = []
    for node in cluster.nodes:
        with redis.Redis(host=HOST, port=node.port) as client:
            out.append(sorted(client.keys()))
    return out


async def test_cluster_round_trip_across_nodes(cluster: RedisCluster) -> None:
    nodes = [f"{h}:{p}" for h, p in cluster.startup_nodes]
    cfg = RedisSettings(cluster_nodes=(nodes[0],), op_timeout=0.5)  # discovers the others
    t = RedisTier.from_settings(cfg)
    try:
        now = time.time()
        keys = [f"media.example/v/{i}.ts" for i in range(30)]
        entries = {key: make_entry(key.encode() * 50) for key in keys}
        for key in keys:
            assert await t.put(key, entries[key], now)
        per_node = node_keys(cluster)
        assert all(per_node), "keys should land on every node"
        assert sum(map(len, per_node)) == 30
        for key in keys:
            got = await t.get(key)
            assert got is not None and same_entry(got, entries[key])
        # DEL of keys in different slots (redis-py splits it per node).
        assert await t.delete(*keys[:10], "missing") == 10
        assert sum(map(len, node_keys(cluster))) == 20
        assert t.stats()["errors"] == 0 and t.stats()["timeouts"] == 0
    finally:
        await t.close()


async def test_cluster_hashes_whole_keys(cluster: RedisCluster) -> None:
    """A "{...}" in a URL must not pick the slot (it would let clients pin entries to one
    node); the tier makes Redis hash the whole key."""
    nodes = tuple(f"{h}:{p}" for h, p in cluster.startup_nodes)
    cfg = RedisSettings(cluster_nodes=nodes, op_timeout=2.0)  # a hang guard on a busy machine
    t = RedisTier.from_settings(cfg)
    try:
        keys = [f"h/{i}{{pin}}.jpg" for i in range(12)]
        # As given, every key would hash "pin" alone: one slot.
        assert len({key_slot(b"es:" + key.encode()) for key in keys}) == 1
        for key in keys:
            skey = t.storage_key(key)
            assert key_slot(skey) == binascii.crc_hqx(skey, 0) % 16384  # the whole key
        assert len({key_slot(t.storage_key(key)) for key in keys}) > 1
        with redis.Redis(host=HOST, port=cluster.nodes[0].port) as client:
            for key in keys[:3]:
                skey = t.storage_key(key)
                assert client.execute_command("CLUSTER", "KEYSLOT", skey) == key_slot(skey)
        for key in keys:
            assert await t.put(key, make_entry(), time.time())
            assert await t.get(key) is not None
        assert sum(1 for keys_on_node in node_keys(cluster) if keys_on_node) > 1
    finally:
        await t.close()


async def test_cluster_node_down_costs_only_its_keys(cluster: RedisCluster) -> None:
    cfg = RedisSettings(cluster_nodes=(f"{HOST}:{cluster.nodes[0].port}",), op_timeout=0.5)
    t = RedisTier.from_settings(cfg)
    dead = cluster.nodes[1]
    try:
        keys = [f"seg/{i}.m4s" for i in range(24)]
        for key in keys:
            assert await t.put(key, make_entry(), time.time())
        on_dead = {k for k in keys if cluster.node_for_slot(key_slot(t.storage_key(k))) is dead}
        assert 0 < len(on_dead) < len(keys)
        dead.stop()
        for key in keys:
            got, took = await timed(t.get(key))
            assert (got is None) == (key in on_dead), key
            assert took < cfg.op_timeout + MARGIN
        s = t.stats()
        assert s["errors"] + s["timeouts"] == len(on_dead)
    finally:
        await t.close()
        cluster.restart_stopped()


# -- settings ---------------------------------------------------------------------------


def test_settings() -> None:
    assert not RedisSettings().enabled
    s = RedisSettings(url="rediss://cache.internal:6380/2", password="pw")  # type: ignore[arg-type]
    assert s.enabled and s.op_timeout == 0.05 and s.max_object_bytes == 8 * 1024 * 1024
    assert "pw" not in repr(s)
    c = RedisSettings(cluster_nodes=("10.0.0.1:7000", "[::1]:7001"))
    assert c.cluster_addresses() == [("10.0.0.1", 7000), ("::1", 7001)]
    for bad in (
        {"url": "http://x"},
        {"url": "redis://:secret@x:6379"},
        {"url": "redis://x:6379", "cluster_nodes": ["y:1"]},
        {"cluster_nodes": ["nohost"]},
        {"url": "redis://x", "tls": True},
        {"breaker_backoff": 5, "breaker_backoff_max": 1},
        {"op_timeout": 0},
        {"unknown": 1},
    ):
        with pytest.raises(ValidationError) as info:
            RedisSettings.model_validate(bad)
        assert "secret" not in str(info.value)
