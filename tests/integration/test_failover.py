"""OriginGroup against REAL origin processes: kill, restart, scripted 5xx/404, hangs and
stalls (tests.support.origin_server). The group is exercised directly, not through the
proxy, so each behaviour is seen at the group's own boundary."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from config.schema import HealthCheck, OutlierDetection
from config.schema import HttpOrigin as HttpOriginSettings
from proxy.serve.metrics import Stats
from routing.groups import AllOriginsDown, OriginGroup
from routing.health import HealthChecker
from routing.origins.base import OriginRequest, OriginResponse, OriginTimeout
from routing.origins.http import HttpOrigin
from tests.support.origin_server import OriginServer, gen_bytes, running_origin

FAST = {"connect_timeout": 1.0, "first_byte_timeout": 3.0, "read_timeout": 2.0}


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[OriginServer, OriginServer]]:
    with running_origin() as primary, running_origin() as secondary:
        yield primary, secondary


@pytest.fixture
def pair(servers: tuple[OriginServer, OriginServer]) -> tuple[OriginServer, OriginServer]:
    for server in servers:
        if not server.running:
            server.restart()
        server.reset()
    return servers


class Clock:
    def __init__(self) -> None:
        self.now = time.monotonic()

    def __call__(self) -> float:
        return self.now


@dataclass
class Setup:
    group: OriginGroup
    health: HealthChecker
    stats: Stats


@pytest.fixture
async def build(
    pair: tuple[OriginServer, OriginServer],
) -> AsyncIterator[Any]:
    made: list[tuple[HealthChecker, list[HttpOrigin]]] = []

    def factory(
        checks: dict[str, HealthCheck] | None = None, clock: Any = time.monotonic, **options: Any
    ) -> Setup:
        primary, secondary = pair
        origins = [
            HttpOrigin(
                name, HttpOriginSettings.model_validate({"kind": "http", "url": s.url, **FAST})
            )
            for name, s in (("primary", primary), ("secondary", secondary))
        ]
        stats = Stats()
        health = HealthChecker({o.name: o for o in origins}, checks or {}, stats, clock=clock)
        options = {"max_attempts": 2, "deadline": 5.0, **options}
        group = OriginGroup(
            "media", [(o, 1) for o in origins], health=health, stats=stats, **options
        )
        made.append((health, origins))
        return Setup(group, health, stats)

    yield factory
    for health, origins in made:
        await health.stop()
        for origin in origins:
            await origin.aclose()


async def get(group: OriginGroup, path: str) -> tuple[OriginResponse, str, bytes]:
    response, name = await group.fetch(OriginRequest("GET", path))
    body = b"".join([chunk async for chunk in response.body()])
    return response, name, body


async def test_primary_killed_next_request_served_by_secondary(
    pair: tuple[OriginServer, OriginServer], build: Any
) -> None:
    primary, _ = pair
    setup = build()
    _, name, _ = await get(setup.group, "/gen/1000")
    assert name == "primary"  # a pooled keep-alive connection to the primary now exists
    primary.kill()
    response, name, body = await get(setup.group, "/gen/1000")
    assert (response.status, name, body) == (200, "secondary", gen_bytes(0, 1000))
    assert setup.stats.counters["edgeshield_group_failovers"] == {("media", "connect"): 1}


async def test_5xx_from_primary_fails_over(
    pair: tuple[OriginServer, OriginServer], build: Any
) -> None:
    primary, secondary = pair
    primary.script("/x", status=503, body="busy")
    secondary.script("/x", body="from secondary")
    setup = build()
    response, name, body = await get(setup.group, "/x")
    assert (response.status, name, body) == (200, "secondary", b"from secondary")
    assert primary.requests("/x") == 1 and secondary.requests("/x") == 1


@pytest.mark.parametrize(
    ("failover_on", "expected"),
    [
        (("connect", "timeout", "5xx"), (404, "primary")),
        (("connect", "timeout", "5xx", "404"), (200, "secondary")),
    ],
)
async def test_404_fails_over_only_when_configured(
    pair: tuple[OriginServer, OriginServer],
    build: Any,
    failover_on: tuple[str, ...],
    expected: tuple[int, str],
) -> None:
    _, secondary = pair
    secondary.script("/moved.jpg", body="migrated")  # the primary has no such object
    setup = build(failover_on=failover_on)
    response, name, _ = await get(setup.group, "/moved.jpg")
    assert (response.status, name) == expected


async def test_deadline_respected_with_a_hanging_primary(
    pair: tuple[OriginServer, OriginServer], build: Any
) -> None:
    primary, secondary = pair
    primary.script("/hang", mode="hang")
    setup = build(deadline=0.3)
    started = time.perf_counter()
    with pytest.raises(OriginTimeout) as info:
        await setup.group.fetch(OriginRequest("GET", "/hang"))
    elapsed = time.perf_counter() - started
    # The group's deadline ended it (its reason), not the primary's own timeout; a lower
    # bound on the clock cannot flake, an upper one could.
    assert info.value.status == 504 and info.value.reason == "deadline exceeded"
    assert elapsed >= 0.29
    assert secondary.requests("/hang") == 0
    # With a per-attempt limit under the deadline the secondary gets its turn.
    secondary.script("/hang", body="ok")
    setup = build(deadline=2.0, attempt_timeout=0.2)
    started = time.perf_counter()
    _, name, body = await get(setup.group, "/hang")
    assert (name, body) == ("secondary", b"ok")
    assert time.perf_counter() - started < 1.0


async def test_hedged_request_wins_and_primary_is_cancelled(
    pair: tuple[OriginServer, OriginServer], build: Any
) -> None:
    primary, secondary = pair
    primary.script("/seg.ts", delay=0.3, body="slow")
    secondary.script("/seg.ts", body="fast")
    setup = build(hedge_after=0.05)
    # Warm both pools so connection set-up does not blur the timing.
    await get(setup.group, "/gen/1")
    secondary_alone = time.perf_counter()
    warm = await setup.group.members[1].origin.fetch(OriginRequest("GET", "/gen/1"))
    secondary_alone = time.perf_counter() - secondary_alone
    await warm.aclose()
    started = time.perf_counter()
    _, name, body = await get(setup.group, "/seg.ts")
    elapsed = time.perf_counter() - started
    assert (name, body) == ("secondary", b"fast")
    # hedge delay + the secondary's own time (+ scheduling slack), far below the stall
    assert 0.05 <= elapsed < 0.05 + secondary_alone + 0.15
    assert elapsed < 0.3
    assert primary.requests("/seg.ts") == 1
    await asyncio.sleep(0.01)  # the loser is cancelled in the background
    counters = setup.stats.counters
    assert counters["edgeshield_origin_requests"][("primary", "cancelled")] == 1
    assert counters["edgeshield_group_hedges"] == {("media", "sent"): 1, ("media", "won"): 1}
    # The cancelled exchange closed its connection (the pooled warm-up one, reused):
    # nothing is left open at the primary once its stalled handler gives up.
    stats = primary.wait_for(lambda stats: stats["open_connections"] == 0, timeout=2.0)
    assert stats["connections"] == 1


async def test_active_probes_mark_down_and_up(
    pair: tuple[OriginServer, OriginServer], build: Any
) -> None:
    primary, _ = pair
    interval, window, threshold = 0.1, 3, 2
    check = HealthCheck(
        path="/gen/10", interval=interval, timeout=0.5, window=window, threshold=threshold
    )
    # interval x threshold, +1 interval for the probe phase, +50 ms scheduling slack
    bound = interval * threshold + interval + 0.05
    setup = build(checks={"primary": check})
    setup.health.start()
    await _until(lambda: setup.health.is_up("primary"), 1.0)
    primary.kill()
    killed = time.perf_counter()
    await _until(lambda: not setup.health.is_up("primary"), 2.0)
    assert time.perf_counter() - killed <= bound
    _, name, _ = await get(setup.group, "/gen/5")
    assert name == "secondary"
    primary.restart()
    restarted = time.perf_counter()
    await _until(lambda: setup.health.is_up("primary"), 2.0)
    assert time.perf_counter() - restarted <= bound
    _, name, _ = await get(setup.group, "/gen/5")
    assert name == "primary"
    snap = setup.health.snapshot()["primary"]
    assert snap["state"] == "up" and snap["probe"]["failures"] >= 2


async def test_all_members_down_raises_503(
    pair: tuple[OriginServer, OriginServer], build: Any
) -> None:
    primary, secondary = pair
    check = HealthCheck(path="/gen/10", interval=0.05, timeout=0.5, window=1, threshold=1)
    setup = build(checks={"primary": check, "secondary": check})
    setup.health.start()
    await _until(lambda: setup.health.is_up("primary") and setup.health.is_up("secondary"), 1)
    primary.kill()
    secondary.kill()
    await _until(
        lambda: not setup.health.is_up("primary") and not setup.health.is_up("secondary"), 1
    )
    with pytest.raises(AllOriginsDown) as info:
        await setup.group.fetch(OriginRequest("GET", "/gen/10"))
    assert (info.value.status, info.value.retry_after) == (503, 1)


async def test_passive_ejection_then_half_open_trial(
    pair: tuple[OriginServer, OriginServer], build: Any
) -> None:
    primary, _ = pair
    primary.script("/p", status=500, body="broken")
    clock = Clock()
    setup = build(
        clock=clock,
        outlier=OutlierDetection(consecutive_failures=3, base_ejection=10, max_ejection=60),
    )
    for _ in range(5):
        _, name, _ = await get(setup.group, "/p")
        assert name == "secondary"
    assert primary.requests("/p") == 3  # ejected after the third failure
    assert setup.stats.counters["edgeshield_origin_ejections"] == {("media", "primary"): 1}
    primary.script("/p", body="fixed")
    clock.now += 10  # ejection over: one trial request goes to the primary
    _, name, body = await get(setup.group, "/p")
    assert (name, body) == ("primary", b"fixed")
    assert not setup.group.is_ejected("primary")
    _, name, _ = await get(setup.group, "/p")
    assert name == "primary"


async def _until(predicate: Any, limit: float) -> None:
    deadline = time.perf_counter() + limit
    while not predicate():
        if time.perf_counter() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.005)
