"""Origin groups: one `fetch` over several origins, health-aware, with retries, failover
and optional hedging. Every route targets a group; an origin named directly by a route
is an implicit group of one that behaves exactly like the bare origin (one attempt, no
deadline of its own, no passive ejection; its active probes, if configured, apply).

`OriginGroup.fetch(request)` returns `(response head, name of the origin that sent it)`:

1. Candidates are the members whose active probes say up and that passive outlier
   detection has not ejected (a half-open member gets one trial request). None: raise
   `AllOriginsDown` (503, `retry_after` seconds) before any attempt; the pipeline then
   serves a stale copy if it has one (stale-if-error) or a 503 with Retry-After.
2. The policy picks one: `failover` (configuration order), `weighted` (nginx's smooth
   weighted round robin) or `lowest-latency` (peak EWMA x requests in flight).
3. An attempt that fails in a way listed in `failover_on` (connect, timeout, 5xx, and
   optionally 404/403) is followed by one on another member, while attempts remain
   (`max_attempts`, hedges included), the `deadline` has not passed and the request is
   retryable: GET, HEAD or OPTIONS without a request body. (PUT and DELETE are
   idempotent per RFC 9110, but a pass-through write is never sent twice by us.) A
   failed response is closed before the next attempt; when nothing is left to try the
   last failed response is returned as is (a 5xx the pipeline may answer with stale),
   or the last error raised. Each attempt goes to a different member.
4. Hedging (`hedge_after`): when the head has not arrived after that delay (or the
   member's recent p95), the same request also goes to the next candidate; the first
   acceptable head wins and the other attempt is cancelled (its connection closed, its
   outcome recorded as "cancelled").
5. Only heads are retried. A body that breaks off after `fetch` returned is never
   retried here (bytes may have reached the client: the pipeline aborts that response);
   the pipeline reports it with `report_body_failure(origin)` so passive health sees it.

Per attempt, `edgeshield_origin_requests{origin,outcome}` (status code, "timeout",
"error" or "cancelled") and `edgeshield_origin_duration_seconds{origin}` (time to head)
are recorded into the Stats given.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from config.schema import GroupSettings, OutlierDetection, Settings
from routing.balance import SmoothWeighted, failover_pick, lowest_latency_pick, primaries
from routing.health import Clock, HealthChecker, OriginHealth, Outlier
from routing.origins.base import (
    BadOriginPath,
    Origin,
    OriginError,
    OriginRequest,
    OriginResponse,
    OriginTimeout,
)

log = logging.getLogger("edgeshield.groups")

# Retried (and hedged) only when the request has no body.
RETRY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Failure kinds that count against a member's passive health.
PASSIVE_FAILURES = frozenset({"connect", "timeout", "5xx"})
DEFAULT_FAILOVER_ON = ("connect", "timeout", "5xx")
# Hedging never fires sooner than this, whatever a percentile says.
MIN_HEDGE_DELAY = 0.001

Labels = tuple[str, ...]


class _Stats(Protocol):
    def inc(self, name: str, labels: Labels, amount: float = 1) -> None: ...

    def observe(self, name: str, labels: Labels, value: float) -> None: ...


class AllOriginsDown(OriginError):
    """No member of the group may be tried (all down or ejected). Answer stale if
    possible, else 503 with `Retry-After: retry_after`."""

    status = 503

    def __init__(self, group: str, retry_after: int) -> None:
        super().__init__(group, "all origins down")
        self.retry_after = retry_after


@dataclass(eq=False, slots=True)
class Member:
    origin: Origin
    weight: int
    health: OriginHealth  # shared with every group using the origin
    outlier: Outlier  # this group's passive view of it

    @property
    def name(self) -> str:
        return self.origin.name


@dataclass(eq=False, slots=True)
class _Attempt:
    member: Member
    trial: bool
    hedge: bool
    timed_out: bool = False  # cancelled because the group deadline passed


@dataclass(slots=True)
class _Result:
    attempt: _Attempt
    response: OriginResponse | None
    error: OriginError | None
    reason: str | None  # failure kind ("connect", "timeout", "5xx", "404", ...) or None


def failure_kind(status: int | None, error: OriginError | None) -> str | None:
    """The `failover_on` kind of an attempt's result, None for a good answer. An error
    class may say what it stands for with a `failover_kind` attribute (e.g. an S3
    "AccessDenied" error class could set "403", so that it fails over only when "403"
    is listed and does not count against the bucket's health)."""
    if error is not None:
        declared = getattr(error, "failover_kind", None)
        if isinstance(declared, str):
            return declared
        if isinstance(error, OriginTimeout):
            return "timeout"
        if isinstance(error, BadOriginPath):
            return "bad-request"  # the request cannot map to an origin: never retried
        return "connect"
    if status is None:
        return None
    if status >= 500:
        return "5xx"
    if status in (404, 403):
        return str(status)
    return None


class OriginGroup:
    def __init__(
        self,
        name: str,
        members: Sequence[tuple[Origin, int]],
        *,
        health: HealthChecker,
        stats: _Stats,
        policy: str = "failover",
        failover_on: Iterable[str] = DEFAULT_FAILOVER_ON,
        max_attempts: int = 1,
        deadline: float | None = None,
        attempt_timeout: float | None = None,
        hedge_after: float | str | None = None,
        outlier: OutlierDetection | None = None,
        implicit: bool = False,
        logger: logging.Logger | None = None,
    ) -> None:
        if not members:
            raise ValueError(f"group {name!r} has no members")
        self.name = name
        self.policy = policy
        self.failover_on = frozenset(failover_on)
        self.max_attempts = max(1, max_attempts)
        self.deadline = deadline
        self.attempt_timeout = attempt_timeout
        self.hedge_after = hedge_after
        self.implicit = implicit
        self.health = health
        self.stats = stats
        self.clock: Clock = health.clock
        self.log = logger or log
        self.members = [
            Member(origin, weight, health.states[origin.name], Outlier(outlier))
            for origin, weight in members
        ]
        self._by_name = {member.name: member for member in self.members}
        self._weights = [member.weight for member in self.members]
        self._latency = [member.health.latency for member in self.members]
        self._wrr = SmoothWeighted(self._weights)
        # One attempt, no deadline, no hedging: fetch inline, exactly like the bare origin.
        self._inline = self.max_attempts == 1 and deadline is None and hedge_after is None
        self._closing: set[asyncio.Task[Any]] = set()
        health.on_up.append(self._origin_up)

    # -- the request path --------------------------------------------------------------

    async def fetch(self, request: OriginRequest) -> tuple[OriginResponse, str]:
        """The response head and the name of the origin that sent it. Raises
        AllOriginsDown, or the last attempt's OriginError, or OriginTimeout when the
        group deadline passed."""
        if self._inline:
            return await self._fetch_inline(request)
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + self.deadline if self.deadline is not None else None
        retryable = request.method.upper() in RETRY_METHODS and not request.body
        budget = self.max_attempts if retryable else 1
        hedging = retryable and self.hedge_after is not None and budget > 1
        tried: set[int] = set()
        pending: dict[asyncio.Task[_Result], _Attempt] = {}
        fallback: _Result | None = None  # a failed response kept to return if all else fails
        last_error: OriginError | None = None
        attempts = 0
        last_start, last_member = started, None

        def launch(index: int, hedge: bool) -> None:
            nonlocal attempts, last_start, last_member
            member = self.members[index]
            tried.add(index)
            attempts += 1
            attempt = _Attempt(member, member.outlier.begin(self.clock()), hedge)
            task = loop.create_task(self._attempt(attempt, request))
            pending[task] = attempt
            last_start, last_member = loop.time(), member

        first = self._select(tried)
        if first is None:
            raise self._all_down()
        winner: _Result | None = None
        try:
            launch(first, hedge=False)
            while pending:
                hedge_at = None
                if hedging and attempts < budget and last_member is not None:
                    delay = self._hedge_delay(last_member)
                    if delay is not None:
                        hedge_at = last_start + delay
                wake = min((t for t in (hedge_at, deadline) if t is not None), default=None)
                timeout = None if wake is None else max(0.0, wake - loop.time())
                done, _ = await asyncio.wait(
                    pending, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                if not done:
                    if deadline is not None and loop.time() >= deadline:
                        for attempt in pending.values():
                            attempt.timed_out = True
                        last_error = OriginTimeout(self.name, "deadline exceeded")
                        break
                    index = self._select(tried)
                    if index is None:
                        hedging = False  # nobody left to hedge to: wait for what runs
                        continue
                    self.stats.inc("edgeshield_group_hedges", (self.name, "sent"))
                    launch(index, hedge=True)
                    continue
                for task in done:
                    attempt = pending.pop(task)
                    result = task.result()
                    if result.reason is None or (
                        result.response is not None and result.reason not in self.failover_on
                    ):
                        winner = result
                        break
                    if result.response is not None:
                        if fallback is not None:
                            self._close_later(fallback.response)
                        fallback = result
                    else:
                        last_error = result.error
                    if result.reason not in self.failover_on:
                        continue  # a final error: no further attempt, wait for running ones
                    if attempts >= budget or (deadline is not None and loop.time() >= deadline):
                        continue
                    index = self._select(tried)
                    if index is None:
                        continue
                    self.stats.inc("edgeshield_group_failovers", (self.name, result.reason))
                    if fallback is not None:
                        self._close_later(fallback.response)
                        fallback = None
                    launch(index, hedge=False)
                if winner is not None:
                    break
        finally:
            for task in pending:
                self._discard(task)
        if winner is None:
            winner, fallback = fallback, None
        if fallback is not None:
            self._close_later(fallback.response)
        if winner is not None and winner.response is not None:
            if winner.attempt.hedge:
                self.stats.inc("edgeshield_group_hedges", (self.name, "won"))
            return winner.response, winner.attempt.member.name
        assert last_error is not None
        raise last_error

    async def _fetch_inline(self, request: OriginRequest) -> tuple[OriginResponse, str]:
        index = self._select(())
        if index is None:
            raise self._all_down()
        member = self.members[index]
        result = await self._attempt(
            _Attempt(member, member.outlier.begin(self.clock()), False), request
        )
        if result.response is None:
            assert result.error is not None
            raise result.error
        return result.response, member.name

    async def _attempt(self, attempt: _Attempt, request: OriginRequest) -> _Result:
        """One exchange with one member, up to the head; records its outcome. Never
        raises OriginError (it is returned); CancelledError passes through."""
        member = attempt.member
        latency = member.health.latency
        started = time.perf_counter()
        response: OriginResponse | None = None
        error: OriginError | None = None
        latency.pending += 1
        try:
            try:
                if self.attempt_timeout is not None:
                    async with asyncio.timeout(self.attempt_timeout):
                        response = await member.origin.fetch(request)
                else:
                    response = await member.origin.fetch(request)
            except TimeoutError:
                error = OriginTimeout(member.name, "attempt timeout")
            except OriginError as exc:
                error = exc
            except asyncio.CancelledError:
                now = self.clock()
                if attempt.timed_out:
                    self.stats.inc("edgeshield_origin_requests", (member.name, "timeout"))
                    latency.record_failure(time.perf_counter() - started, now)
                    self._passive(member, now, attempt.trial, failed=True, reason="timeout")
                else:
                    self.stats.inc("edgeshield_origin_requests", (member.name, "cancelled"))
                    member.outlier.abort(attempt.trial)
                raise
        finally:
            latency.pending -= 1
        elapsed = time.perf_counter() - started
        now = self.clock()
        status = response.status if response is not None else None
        reason = failure_kind(status, error)
        if response is not None:
            self.stats.inc("edgeshield_origin_requests", (member.name, str(response.status)))
            self.stats.observe("edgeshield_origin_duration_seconds", (member.name,), elapsed)
            latency.record(elapsed, now)
        else:
            outcome = "timeout" if reason == "timeout" else "error"
            self.stats.inc("edgeshield_origin_requests", (member.name, outcome))
            if reason in PASSIVE_FAILURES:
                latency.record_failure(elapsed, now)
        if reason in PASSIVE_FAILURES:
            self._passive(
                member, now, attempt.trial, failed=True, reason=_describe(reason, error, status)
            )
        elif response is not None:
            self._passive(member, now, attempt.trial, failed=False, reason="")
        else:
            member.outlier.abort(attempt.trial)  # a request problem says nothing about health
        return _Result(attempt, response, error, reason)

    # -- choosing ----------------------------------------------------------------------

    def _select(self, tried: Iterable[int]) -> int | None:
        now = self.clock()
        members = self.members
        eligible = [
            i
            for i, member in enumerate(members)
            if i not in tried and member.health.up and member.outlier.available(now)
        ]
        if not eligible:
            return None
        if self.policy == "weighted":
            return self._wrr.pick(primaries(self._weights, eligible))
        if len(eligible) == 1:
            return eligible[0]
        if self.policy == "lowest-latency":
            return lowest_latency_pick(self._weights, eligible, self._latency, now)
        return failover_pick(self._weights, eligible)

    def _hedge_delay(self, member: Member) -> float | None:
        if self.hedge_after == "p95":
            p95 = member.health.latency.p95()
            return max(p95, MIN_HEDGE_DELAY) if p95 is not None else None
        if isinstance(self.hedge_after, int | float):
            return float(self.hedge_after)
        return None

    def _all_down(self) -> AllOriginsDown:
        now = self.clock()
        waits: list[float] = []
        for member in self.members:
            if not member.health.up:
                check = member.health.check
                waits.append(check.interval if check is not None else 1.0)
            elif not member.outlier.available(now):
                waits.append(member.outlier.remaining(now) or 1.0)
        self.stats.inc("edgeshield_group_unavailable", (self.name,))
        return AllOriginsDown(self.name, max(1, math.ceil(min(waits, default=1.0))))

    # -- passive health ----------------------------------------------------------------

    def report_body_failure(self, origin: str) -> None:
        """A body from `origin` broke off after the head (the pipeline saw it)."""
        member = self._by_name.get(origin)
        if member is not None:
            self._passive(member, self.clock(), False, failed=True, reason="broken body")

    def _passive(
        self, member: Member, now: float, trial: bool, *, failed: bool, reason: str
    ) -> None:
        outlier = member.outlier
        if failed:
            if outlier.failure(now, trial) == "ejected":
                self.stats.inc("edgeshield_origin_ejections", (self.name, member.name))
                self.log.warning(
                    "origin %s ejected from group %s for %.1f s (%s)",
                    member.name,
                    self.name,
                    outlier.remaining(now),
                    "half-open trial failed" if trial else f"last failure: {reason}",
                )
        elif outlier.success(now, trial) == "restored":
            self.log.warning(
                "origin %s restored in group %s (trial succeeded)", member.name, self.name
            )

    def _origin_up(self, origin: str) -> None:
        member = self._by_name.get(origin)
        if member is not None and member.outlier.reset():
            self.log.warning(
                "origin %s restored in group %s (health probes passed)", origin, self.name
            )

    def is_ejected(self, origin: str) -> bool:
        member = self._by_name.get(origin)
        return member is not None and not member.outlier.available(self.clock())

    # -- cleanup -----------------------------------------------------------------------

    def _discard(self, task: asyncio.Task[_Result]) -> None:
        """Cancel a losing attempt; close its response if it got one anyway."""
        task.cancel()
        task.add_done_callback(self._reap)

    def _reap(self, task: asyncio.Task[_Result]) -> None:
        if task.cancelled():
            return
        if task.exception() is not None:
            return  # retrieved: a bug in an origin, not worth more than its own log
        result = task.result()
        if result.response is not None:
            self._close_later(result.response)

    def _close_later(self, response: OriginResponse | None) -> None:
        if response is None:
            return
        task = asyncio.get_running_loop().create_task(_quiet_close(response))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    # -- views -------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        now = self.clock()
        return {
            "policy": self.policy,
            "implicit": self.implicit,
            "available": any(m.health.up and m.outlier.available(now) for m in self.members),
            "members": [
                {
                    "origin": m.name,
                    "weight": m.weight,
                    "up": m.health.up,
                    "passive": m.outlier.state(now) if m.outlier.settings else "off",
                    "ejected_for_s": round(m.outlier.remaining(now), 3),
                    "ejections": m.outlier.ejections,
                    "consecutive_failures": m.outlier.consecutive,
                }
                for m in self.members
            ],
        }


def _describe(reason: str | None, error: OriginError | None, status: int | None) -> str:
    if error is not None:
        return error.reason
    return f"status {status}" if status is not None else str(reason)


async def _quiet_close(response: OriginResponse) -> None:
    try:
        await response.aclose()
    except Exception as exc:  # closing a dead connection may fail; nothing to do about it
        log.debug("closing a discarded origin response failed: %r", exc)


# -- building ----------------------------------------------------------------------------


@dataclass(eq=False)
class OriginRouter:
    """Every group (explicit and implicit) plus the shared health checker."""

    groups: dict[str, OriginGroup]
    health: HealthChecker

    def group(self, name: str) -> OriginGroup:
        return self.groups[name]

    def start(self) -> None:
        """Start the health probes (call from the app lifespan, with the loop running)."""
        self.health.start()

    async def stop(self) -> None:
        await self.health.stop()

    def is_up(self, origin: str) -> bool:
        """Probes pass and no group has the origin ejected."""
        return self.health.is_up(origin) and not any(
            group.is_ejected(origin) for group in self.groups.values()
        )

    def up_series(self) -> dict[Labels, float]:
        """The `edgeshield_origin_up{origin}` gauge, sampled at scrape time."""
        return {(name,): 1.0 if self.is_up(name) else 0.0 for name in self.health.states}

    def snapshot(self) -> dict[str, Any]:
        """The `GET /_admin/origins` JSON document."""
        return {
            "origins": self.health.snapshot(),
            "groups": {name: group.snapshot() for name, group in self.groups.items()},
        }


class _Sampled(_Stats, Protocol):
    sampled: dict[str, Callable[[], dict[Labels, float]]]


def build_router(
    settings: Settings,
    origins: Mapping[str, Origin],
    stats: _Sampled,
    *,
    clock: Clock = time.monotonic,
) -> OriginRouter:
    """One group per `[groups.NAME]`, and an implicit group of one per origin (same
    name), so every route's `origin` resolves to `router.groups[name]`. Registers the
    `edgeshield_origin_up` gauge on `stats`."""
    checks = {name: spec.health for name, spec in settings.origins.items()}
    health = HealthChecker(origins, checks, stats, clock=clock)
    groups: dict[str, OriginGroup] = {}
    for name, spec in settings.groups.items():
        groups[name] = group_from_settings(name, spec, settings, origins, health, stats)
    for name, origin in origins.items():
        if name not in groups:
            groups[name] = OriginGroup(
                name, [(origin, 1)], health=health, stats=stats, implicit=True
            )
    router = OriginRouter(groups, health)
    stats.sampled["edgeshield_origin_up"] = router.up_series
    return router


def group_from_settings(
    name: str,
    spec: GroupSettings,
    settings: Settings,
    origins: Mapping[str, Origin],
    health: HealthChecker,
    stats: _Stats,
) -> OriginGroup:
    return OriginGroup(
        name,
        [(origins[member.origin], member.weight) for member in spec.members],
        health=health,
        stats=stats,
        policy=spec.policy,
        failover_on=spec.failover_on,
        max_attempts=spec.max_attempts,
        deadline=spec.deadline,
        attempt_timeout=spec.attempt_timeout,
        hedge_after=spec.hedge_after,
        outlier=spec.outlier_detection or settings.outlier_detection,
    )
