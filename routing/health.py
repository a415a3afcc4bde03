"""Origin health: active probes (Varnish-style window/threshold) and passive outlier
detection (consecutive failures or a failure rate eject a member from a group, with
exponential backoff and a half-open trial request, like a circuit breaker).

- `ProbeWindow` and `Outlier` are pure state machines: the time is passed in, so tests
  drive them with a fake clock and no sleeps.
- `HealthChecker` owns one `OriginHealth` per origin (probe window, latency record) and
  one probe task per origin that has `[origins.NAME.health]`. The app lifespan calls
  `start()` and `await stop()`. Probes go through the origin's own `fetch` (a GET of the
  probe path), so http, s3 and fs origins are probed alike.
- Nothing here logs per request or per probe: only state changes (up -> down, down ->
  up, ejected, restored) are logged, once each.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from config.schema import HealthCheck, OutlierDetection
from routing.balance import LatencyStats
from routing.origins.base import Origin, OriginError, OriginRequest

log = logging.getLogger("edgeshield.health")

Clock = Callable[[], float]
# A probe reads at most this much of the body before closing the response.
PROBE_BODY_LIMIT = 64 * 1024
PROBE_HEADERS = [("user-agent", "edgeshield-health-probe"), ("accept", "*/*")]


class _Counter(Protocol):
    def inc(self, name: str, labels: tuple[str, ...], amount: float = 1) -> None: ...


class ProbeWindow:
    """The last `window` probe results; healthy while at least `threshold` passed.
    `initial` results count as passed at start (Varnish: threshold - 1, so an origin
    starts down and comes up with its first passing probe)."""

    __slots__ = ("passed", "results", "threshold")

    def __init__(self, window: int, threshold: int, initial: int | None = None) -> None:
        if initial is None:
            initial = max(0, threshold - 1)
        initial = min(initial, window)
        self.threshold = threshold
        # Oldest first; the initial passes are the most recent, as in Varnish.
        self.results: deque[bool] = deque(
            [False] * (window - initial) + [True] * initial, maxlen=window
        )
        self.passed = initial

    @property
    def healthy(self) -> bool:
        return self.passed >= self.threshold

    def record(self, ok: bool) -> bool:
        """Add one result; True when the healthy state changed."""
        before = self.healthy
        if len(self.results) == self.results.maxlen and self.results[0]:
            self.passed -= 1
        self.results.append(ok)
        if ok:
            self.passed += 1
        return self.healthy != before


class Outlier:
    """Passive health of one member in one group (per group, like Envoy's per-cluster
    outlier detection). States: ok -> ejected (for base * 2**n seconds, at most max) ->
    half-open (the ejection has passed: exactly one trial request may go) -> ok on
    success, or ejected again for twice as long on failure. The count of ejections in a
    row starts over once the member stayed healthy for max_ejection seconds."""

    __slots__ = (
        "consecutive",
        "ejected_until",
        "ejections",
        "in_a_row",
        "recent",
        "recent_failures",
        "restored_at",
        "settings",
        "trial",
    )

    def __init__(self, settings: OutlierDetection | None) -> None:
        self.settings = settings if settings is not None and settings.enabled else None
        self.consecutive = 0
        self.ejected_until: float | None = None
        self.trial = False  # a half-open trial request is in flight
        self.in_a_row = 0  # ejections in a row (the backoff exponent)
        self.ejections = 0  # total, for the admin view
        self.restored_at = -float("inf")
        window = settings.failure_rate_window if settings and settings.failure_rate else 0
        self.recent: deque[bool] | None = deque(maxlen=window) if window else None
        self.recent_failures = 0

    def state(self, now: float) -> str:
        if self.ejected_until is None:
            return "ok"
        if now < self.ejected_until:
            return "ejected"
        return "trial" if self.trial else "half-open"

    def available(self, now: float) -> bool:
        """May a request go to this member now (ok, or half-open with no trial yet)?"""
        until = self.ejected_until
        return until is None or (now >= until and not self.trial)

    def begin(self, now: float) -> bool:
        """An attempt starts; True when it is the half-open trial (pass it back to
        success/failure/abort)."""
        until = self.ejected_until
        if until is not None and now >= until and not self.trial:
            self.trial = True
            return True
        return False

    def abort(self, trial: bool) -> None:
        """The attempt was cancelled before it had a result: free the trial slot."""
        if trial:
            self.trial = False

    def success(self, now: float, trial: bool) -> str | None:
        """Returns "restored" when a trial brought the member back."""
        if trial:
            self.trial = False
            self.ejected_until = None
            self.restored_at = now
            self._clear()
            return "restored"
        if self.ejected_until is None:
            self.consecutive = 0
            self._remember(False)
        return None

    def failure(self, now: float, trial: bool) -> str | None:
        """Returns "ejected" when this failure ejected the member."""
        settings = self.settings
        if settings is None:
            return None
        if trial:
            self.trial = False
            self._eject(now, settings)
            return "ejected"
        if self.ejected_until is not None:
            return None  # already ejected: late failures of older attempts change nothing
        self.consecutive += 1
        self._remember(True)
        if self.consecutive >= settings.consecutive_failures or self._rate_exceeded(settings):
            self._eject(now, settings)
            return "ejected"
        return None

    def reset(self) -> bool:
        """Un-eject (the active probes saw the origin come back up). True if it was."""
        was = self.ejected_until is not None
        self.ejected_until = None
        self.trial = False
        self._clear()
        return was

    def remaining(self, now: float) -> float:
        return max(0.0, self.ejected_until - now) if self.ejected_until is not None else 0.0

    def _eject(self, now: float, settings: OutlierDetection) -> None:
        # From ok (not a failed trial) after a healthy spell: the backoff starts over.
        if self.ejected_until is None and now - self.restored_at >= settings.max_ejection:
            self.in_a_row = 0
        duration = min(settings.base_ejection * 2**self.in_a_row, settings.max_ejection)
        self.in_a_row += 1
        self.ejections += 1
        self.ejected_until = now + duration
        self._clear()

    def _clear(self) -> None:
        self.consecutive = 0
        if self.recent is not None:
            self.recent.clear()
            self.recent_failures = 0

    def _remember(self, failed: bool) -> None:
        recent = self.recent
        if recent is None:
            return
        if len(recent) == recent.maxlen and recent[0]:
            self.recent_failures -= 1
        recent.append(failed)
        if failed:
            self.recent_failures += 1

    def _rate_exceeded(self, settings: OutlierDetection) -> bool:
        recent = self.recent
        if recent is None or settings.failure_rate is None or len(recent) < (recent.maxlen or 0):
            return False
        return self.recent_failures >= settings.failure_rate * len(recent)


@dataclass(eq=False)
class OriginHealth:
    """Everything known about one origin's health, shared by every group using it."""

    name: str
    check: HealthCheck | None
    window: ProbeWindow | None
    latency: LatencyStats
    last_probe: dict[str, Any] | None = None
    probes_passed: int = 0
    probes_failed: int = 0

    @property
    def up(self) -> bool:
        """Active health: up while the probe window is healthy (always, without probes)."""
        return self.window is None or self.window.healthy


class HealthChecker:
    """Active probes and per-origin health state. Create in the app state, `start()` in
    the lifespan (needs a running loop), `await stop()` at shutdown."""

    def __init__(
        self,
        origins: Mapping[str, Origin],
        checks: Mapping[str, HealthCheck | None],
        stats: _Counter | None = None,
        *,
        clock: Clock = time.monotonic,
        logger: logging.Logger | None = None,
    ) -> None:
        self.origins = dict(origins)
        self.clock = clock
        self.stats = stats
        self.log = logger or log
        self.states: dict[str, OriginHealth] = {}
        for name in origins:
            check = checks.get(name)
            window = ProbeWindow(check.window, check.threshold, check.initial) if check else None
            self.states[name] = OriginHealth(name, check, window, LatencyStats())
        # Called with an origin name when its probes bring it back up.
        self.on_up: list[Callable[[str], None]] = []
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def is_up(self, name: str) -> bool:
        state = self.states.get(name)
        return state is None or state.up

    def latency(self, name: str) -> LatencyStats:
        return self.states[name].latency

    # -- probes ------------------------------------------------------------------------

    def start(self) -> None:
        """One probe task per origin with a health check; the first probe runs at once."""
        for name, state in self.states.items():
            if state.check is not None and name not in self._tasks:
                self._tasks[name] = asyncio.get_running_loop().create_task(
                    self._loop(state, state.check), name=f"health-probe:{name}"
                )

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task

    async def _loop(self, state: OriginHealth, check: HealthCheck) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            await self.probe(state.name)  # never raises but CancelledError
            # Fixed rate; a probe slower than the interval is followed by the next at once.
            next_at = max(next_at + check.interval, loop.time())
            await asyncio.sleep(next_at - loop.time())

    async def probe(self, name: str) -> bool:
        """Run one probe now and record it; True when it passed."""
        state = self.states[name]
        check = state.check
        if check is None:
            return True
        ok, detail, started = False, "", time.perf_counter()
        path, _, query = check.path.partition("?")
        request = OriginRequest("GET", path, query, list(PROBE_HEADERS))
        try:
            async with asyncio.timeout(check.timeout):
                response = await self.origins[name].fetch(request)
                try:
                    ok = response.status == check.expected_status
                    detail = f"status {response.status}"
                    if ok:
                        read = 0
                        async for chunk in response.body():
                            read += len(chunk)
                            if read >= PROBE_BODY_LIMIT:
                                break
                finally:
                    await response.aclose()
        except TimeoutError:
            ok, detail = False, "timeout"
        except OriginError as exc:
            ok, detail = False, exc.reason
        except Exception as exc:  # an origin bug: a failed probe, not a dead probe loop
            ok, detail = False, f"probe error: {type(exc).__name__}"
            self.log.debug("health probe of origin %s raised", name, exc_info=True)
        elapsed = time.perf_counter() - started
        self._record(state, ok, detail, elapsed)
        return ok

    def _record(self, state: OriginHealth, ok: bool, detail: str, elapsed: float) -> None:
        assert state.window is not None and state.check is not None
        if ok:
            state.probes_passed += 1
        else:
            state.probes_failed += 1
        state.last_probe = {
            "ok": ok,
            "detail": detail,
            "ms": round(elapsed * 1000, 3),
            "at": time.time(),
        }
        if self.stats is not None:
            self.stats.inc("edgeshield_origin_probes", (state.name, "pass" if ok else "fail"))
        if not state.window.record(ok):
            return
        window = state.window
        if window.healthy:
            self.log.warning(
                "origin %s is up: %d of the last %d probes passed",
                state.name,
                window.passed,
                len(window.results),
            )
            for listener in self.on_up:
                listener(state.name)
        else:
            self.log.warning(
                "origin %s is down: %d of the last %d probes passed (last: %s)",
                state.name,
                window.passed,
                len(window.results),
                detail,
            )

    # -- views -------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        now = self.clock()
        out: dict[str, Any] = {}
        for name, state in self.states.items():
            latency = state.latency
            ewma = latency.decayed(now)
            p95 = latency.p95()
            probe: dict[str, Any] | None = None
            if state.check is not None and state.window is not None:
                probe = {
                    "path": state.check.path,
                    "interval": state.check.interval,
                    "window": [int(r) for r in state.window.results],
                    "passed": state.window.passed,
                    "threshold": state.check.threshold,
                    "last": state.last_probe,
                    "passes": state.probes_passed,
                    "failures": state.probes_failed,
                }
            out[name] = {
                "state": "up" if state.up else "down",
                "probe": probe,
                "latency": {
                    "ewma_ms": round(ewma * 1000, 3) if ewma is not None else None,
                    "p95_ms": round(p95 * 1000, 3) if p95 is not None else None,
                    "samples": latency.samples,
                },
                "inflight": latency.pending,
            }
        return out
