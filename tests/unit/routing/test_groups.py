"""OriginGroup logic against in-process fake origins (the real-process version is
tests/integration/test_failover.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from config.schema import HealthCheck, OutlierDetection
from proxy.serve.metrics import Stats
from routing.groups import AllOriginsDown, OriginGroup, failure_kind
from routing.health import HealthChecker
from routing.origins.base import (
    BadOriginPath,
    OriginRequest,
    OriginTimeout,
    OriginUnavailable,
)


class FakeResponse:
    def __init__(self, origin: str, status: int) -> None:
        self.origin = origin
        self.status = status
        self.headers: list[tuple[str, str]] = []
        self.content_length = 0
        self.closed = False

    async def body(self) -> AsyncIterator[bytes]:
        if False:
            yield b""

    async def aclose(self) -> None:
        self.closed = True


class FakeOrigin:
    """Answers `status` after `delay` seconds, or raises `error` ("down", "timeout",
    "bad"); every call is recorded, and whether it was cancelled."""

    def __init__(self, name: str, status: int = 200, delay: float = 0.0) -> None:
        self.name = name
        self.status = status
        self.delay = delay
        self.error: str | None = None
        self.calls = 0
        self.cancelled = 0
        self.responses: list[FakeResponse] = []

    async def fetch(self, request: OriginRequest) -> FakeResponse:
        self.calls += 1
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        if self.error == "down":
            raise OriginUnavailable(self.name, "connect failed")
        if self.error == "timeout":
            raise OriginTimeout(self.name, "first byte timeout")
        if self.error == "bad":
            raise BadOriginPath(self.name, "invalid path")
        response = FakeResponse(self.name, self.status)
        self.responses.append(response)
        return response

    async def aclose(self) -> None:
        return None


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


GET = OriginRequest("GET", "/a")


def make_group(
    *origins: FakeOrigin,
    weights: list[int] | None = None,
    checks: dict[str, HealthCheck] | None = None,
    clock: Clock | None = None,
    stats: Stats | None = None,
    **options: object,
) -> OriginGroup:
    health = HealthChecker(
        {o.name: o for o in origins}, checks or {}, stats, clock=clock or Clock()
    )
    weights = weights or [1] * len(origins)
    return OriginGroup(
        "g",
        list(zip(origins, weights, strict=True)),
        health=health,
        stats=stats or Stats(),
        **options,  # type: ignore[arg-type]
    )


async def test_single_origin_is_one_attempt_like_the_bare_origin() -> None:
    a = FakeOrigin("a", status=503)
    group = make_group(a, implicit=True)
    response, name = await group.fetch(GET)
    assert (response.status, name, a.calls) == (503, "a", 1)
    a.error = "down"
    with pytest.raises(OriginUnavailable):
        await group.fetch(GET)
    assert a.calls == 2


async def test_failover_on_connect_error_and_5xx() -> None:
    a, b = FakeOrigin("a"), FakeOrigin("b")
    stats = Stats()
    group = make_group(a, b, max_attempts=2, deadline=5, stats=stats)
    a.error = "down"
    response, name = await group.fetch(GET)
    assert (response.status, name) == (200, "b")
    a.error, a.status = None, 502
    response, name = await group.fetch(GET)
    assert (response.status, name) == (200, "b")
    await asyncio.sleep(0.01)
    assert a.responses[-1].closed  # the 5xx was closed, b tried instead
    failovers = stats.counters["edgeshield_group_failovers"]
    assert failovers == {("g", "connect"): 1, ("g", "5xx"): 1}
    outcomes = stats.counters["edgeshield_origin_requests"]
    assert outcomes[("a", "error")] == 1 and outcomes[("a", "502")] == 1
    assert outcomes[("b", "200")] == 2


async def test_attempts_exhausted_returns_last_response_or_raises_last_error() -> None:
    a, b = FakeOrigin("a", status=500), FakeOrigin("b", status=503)
    group = make_group(a, b, max_attempts=2, deadline=5)
    response, name = await group.fetch(GET)
    assert (response.status, name, response.closed) == (503, "b", False)
    b.error = "timeout"
    with pytest.raises(OriginTimeout):
        await group.fetch(GET)


@pytest.mark.parametrize(
    ("failover_on", "status", "served_by"),
    [
        (("connect", "timeout", "5xx"), 404, "a"),
        (("connect", "timeout", "5xx", "404"), 404, "b"),
        (("connect", "timeout", "5xx", "403"), 403, "b"),
        (("connect", "timeout"), 500, "a"),  # 5xx not listed: the 500 is the answer
    ],
)
async def test_failover_on_is_honoured(
    failover_on: tuple[str, ...], status: int, served_by: str
) -> None:
    a, b = FakeOrigin("a", status=status), FakeOrigin("b")
    group = make_group(a, b, max_attempts=2, deadline=5, failover_on=failover_on)
    _, name = await group.fetch(GET)
    assert name == served_by


@pytest.mark.parametrize(
    "request_",
    [
        OriginRequest("POST", "/a", body=b"x"),
        OriginRequest("PUT", "/a", body=b"x"),
        OriginRequest("DELETE", "/a"),
        OriginRequest("GET", "/a", body=b"x"),
    ],
    ids=["post", "put", "delete", "get-with-body"],
)
async def test_no_retry_for_non_retryable_requests(request_: OriginRequest) -> None:
    a, b = FakeOrigin("a"), FakeOrigin("b")
    a.error = "down"
    group = make_group(a, b, max_attempts=3, deadline=5)
    with pytest.raises(OriginUnavailable):
        await group.fetch(request_)
    assert b.calls == 0


async def test_bad_request_is_not_retried() -> None:
    a, b = FakeOrigin("a"), FakeOrigin("b")
    a.error = "bad"
    group = make_group(a, b, max_attempts=2, deadline=5)
    with pytest.raises(BadOriginPath):
        await group.fetch(GET)
    assert b.calls == 0


async def test_deadline_cancels_a_hanging_attempt() -> None:
    a, b = FakeOrigin("a", delay=10), FakeOrigin("b")
    stats = Stats()
    group = make_group(a, b, max_attempts=2, deadline=0.1, stats=stats)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(OriginTimeout) as info:
        await group.fetch(GET)
    assert info.value.status == 504 and info.value.reason == "deadline exceeded"
    assert 0.09 <= loop.time() - started < 0.5
    await asyncio.sleep(0)
    assert a.cancelled == 1 and b.calls == 0
    assert stats.counters["edgeshield_origin_requests"][("a", "timeout")] == 1


async def test_attempt_timeout_moves_on() -> None:
    a, b = FakeOrigin("a", delay=10), FakeOrigin("b")
    group = make_group(a, b, max_attempts=2, deadline=5, attempt_timeout=0.05)
    _, name = await group.fetch(GET)
    assert name == "b"


async def test_hedge_wins_and_loser_is_cancelled() -> None:
    a, b = FakeOrigin("a", delay=0.5), FakeOrigin("b", delay=0.02)
    stats = Stats()
    group = make_group(a, b, max_attempts=2, deadline=5, hedge_after=0.05, stats=stats)
    loop = asyncio.get_running_loop()
    started = loop.time()
    _, name = await group.fetch(GET)
    elapsed = loop.time() - started
    assert name == "b"
    assert 0.06 <= elapsed < 0.3
    await asyncio.sleep(0)
    assert a.cancelled == 1
    assert stats.counters["edgeshield_group_hedges"] == {("g", "sent"): 1, ("g", "won"): 1}
    assert stats.counters["edgeshield_origin_requests"][("a", "cancelled")] == 1


async def test_no_hedge_when_the_first_answers_in_time() -> None:
    a, b = FakeOrigin("a", delay=0.01), FakeOrigin("b")
    group = make_group(a, b, max_attempts=2, deadline=5, hedge_after=0.2)
    _, name = await group.fetch(GET)
    assert (name, b.calls) == ("a", 0)


async def test_hedge_after_p95_waits_for_samples() -> None:
    a, b = FakeOrigin("a"), FakeOrigin("b")
    group = make_group(a, b, max_attempts=2, deadline=5, hedge_after="p95")
    for _ in range(30):
        await group.fetch(GET)
    assert b.calls == 0
    a.delay = 0.3  # far above a's recent p95 (microseconds)
    _, name = await group.fetch(GET)
    assert name == "b"


async def test_hedged_5xx_does_not_win() -> None:
    a, b = FakeOrigin("a", delay=0.1), FakeOrigin("b", status=503)
    group = make_group(a, b, max_attempts=2, deadline=5, hedge_after=0.01)
    response, name = await group.fetch(GET)
    assert (response.status, name) == (200, "a")
    await asyncio.sleep(0.01)  # discarded responses are closed in the background
    assert b.responses[0].closed


async def test_losing_response_that_arrived_anyway_is_closed() -> None:
    a, b = FakeOrigin("a", delay=0.05), FakeOrigin("b", delay=0.05)
    group = make_group(a, b, max_attempts=2, deadline=5, hedge_after=0.0001)
    response, _ = await group.fetch(GET)
    await asyncio.sleep(0.1)
    others = [r for r in a.responses + b.responses if r is not response]
    assert all(r.closed for r in others)
    assert not response.closed


async def test_fetch_cancelled_by_the_caller_cancels_attempts() -> None:
    a, b = FakeOrigin("a", delay=10), FakeOrigin("b", delay=10)
    group = make_group(a, b, max_attempts=2, deadline=50, hedge_after=0.01)
    task = asyncio.ensure_future(group.fetch(GET))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0)
    assert (a.cancelled, b.cancelled) == (1, 1)


async def test_weighted_policy_spreads_by_weight() -> None:
    a, b = FakeOrigin("a"), FakeOrigin("b")
    group = make_group(a, b, weights=[3, 1], policy="weighted", max_attempts=2, deadline=5)
    names = [(await group.fetch(GET))[1] for _ in range(8)]
    assert names.count("a") == 6 and names.count("b") == 2


async def test_lowest_latency_policy_prefers_the_faster() -> None:
    a, b = FakeOrigin("a", delay=0.02), FakeOrigin("b", delay=0.001)
    group = make_group(a, b, policy="lowest-latency", max_attempts=2, deadline=5)
    names = [(await group.fetch(GET))[1] for _ in range(10)]
    assert names[0] == "a"  # neither measured yet: configuration order
    assert names[1] == "b" and names[-5:] == ["b"] * 5


async def test_down_members_are_skipped_and_all_down_raises_503() -> None:
    a, b = FakeOrigin("a"), FakeOrigin("b")
    checks = {"a": HealthCheck(interval=7), "b": HealthCheck(interval=3)}
    stats = Stats()
    group = make_group(a, b, checks=checks, max_attempts=2, deadline=5, stats=stats)
    with pytest.raises(AllOriginsDown) as info:
        await group.fetch(GET)  # initial = threshold - 1: both start down
    assert info.value.status == 503 and info.value.retry_after == 3
    assert a.calls == b.calls == 0
    assert stats.counters["edgeshield_group_unavailable"] == {("g",): 1}
    await group.health.probe("b")
    _, name = await group.fetch(GET)
    assert name == "b"


async def test_passive_ejection_and_half_open_trial() -> None:
    clock = Clock()
    a, b = FakeOrigin("a"), FakeOrigin("b")
    a.error = "down"
    stats = Stats()
    group = make_group(
        a,
        b,
        clock=clock,
        stats=stats,
        max_attempts=2,
        deadline=5,
        outlier=OutlierDetection(consecutive_failures=3, base_ejection=10, max_ejection=60),
    )
    for _ in range(3):
        assert (await group.fetch(GET))[1] == "b"
    assert a.calls == 3
    assert stats.counters["edgeshield_origin_ejections"] == {("g", "a"): 1}
    assert group.is_ejected("a")
    for _ in range(5):
        await group.fetch(GET)
    assert a.calls == 3  # ejected: not tried
    clock.now += 10
    await group.fetch(GET)  # the half-open trial fails: ejected for 20 s
    assert a.calls == 4
    clock.now += 19
    await group.fetch(GET)
    assert a.calls == 4
    clock.now += 1
    a.error = None
    assert (await group.fetch(GET))[1] == "a"  # trial succeeds: restored
    assert not group.is_ejected("a")
    snap = group.snapshot()
    assert snap["members"][0]["ejections"] == 2 and snap["members"][0]["passive"] == "ok"


async def test_body_failures_count_toward_ejection() -> None:
    a, b = FakeOrigin("a"), FakeOrigin("b")
    group = make_group(
        a, b, max_attempts=2, deadline=5, outlier=OutlierDetection(consecutive_failures=2)
    )
    group.report_body_failure("a")
    group.report_body_failure("a")
    group.report_body_failure("nope")  # unknown names are ignored
    assert (await group.fetch(GET))[1] == "b"


async def test_whole_group_ejected_raises_with_retry_after() -> None:
    clock = Clock()
    a = FakeOrigin("a")
    a.error = "down"
    group = make_group(
        a,
        clock=clock,
        max_attempts=2,
        deadline=5,
        outlier=OutlierDetection(consecutive_failures=1, base_ejection=4.2),
    )
    with pytest.raises(OriginUnavailable):
        await group.fetch(GET)
    with pytest.raises(AllOriginsDown) as info:
        await group.fetch(GET)
    assert info.value.retry_after == 5


async def test_probes_coming_back_up_uneject() -> None:
    a, b = FakeOrigin("a"), FakeOrigin("b")
    a.error = "down"
    group = make_group(
        a,
        b,
        checks={"a": HealthCheck(window=1, threshold=1, initial=1)},
        max_attempts=2,
        deadline=5,
        outlier=OutlierDetection(consecutive_failures=1, base_ejection=100),
    )
    await group.fetch(GET)
    assert group.is_ejected("a")
    await group.health.probe("a")  # down
    a.error = None
    await group.health.probe("a")  # up again: the ejection is lifted
    assert not group.is_ejected("a")
    assert (await group.fetch(GET))[1] == "a"


class _AccessDenied(OriginUnavailable):
    failover_kind = "403"


@pytest.mark.parametrize(
    ("status", "error", "kind"),
    [
        (200, None, None),
        (304, None, None),
        (404, None, "404"),
        (403, None, "403"),
        (500, None, "5xx"),
        (None, OriginUnavailable("a", "connect failed"), "connect"),
        (None, OriginTimeout("a", "first byte timeout"), "timeout"),
        (None, BadOriginPath("a", "invalid path"), "bad-request"),
        (None, _AccessDenied("a", "s3 AccessDenied"), "403"),
    ],
)
def test_failure_kind(status: int | None, error: Exception | None, kind: str | None) -> None:
    assert failure_kind(status, error) == kind  # type: ignore[arg-type]


def test_s3_access_denied_fails_over_only_as_a_403() -> None:
    from routing.groups import failure_kind
    from routing.origins.s3 import S3AccessDenied, S3SlowDown

    assert failure_kind(None, S3AccessDenied("bucket", "s3 AccessDenied", "AccessDenied")) == "403"
    assert failure_kind(None, S3SlowDown("bucket", "s3 SlowDown", "SlowDown")) == "connect"
