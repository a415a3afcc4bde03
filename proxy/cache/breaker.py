"""A circuit breaker for a shared dependency (the Redis tier).

closed     calls go through; `failures` consecutive failures (errors or timeouts) open it
open       calls are refused without touching the network, for `backoff` seconds
half-open  one trial call goes through, the others are refused; its success closes the
           breaker, its failure opens it again for twice the backoff (at most `max_backoff`)

Pure bookkeeping: the clock is injected, there are no threads, tasks or locks (one event
loop owns it). Transitions are logged once each, at warning, with the failure that caused
them, so an outage costs a handful of log lines rather than one per request.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable

log = logging.getLogger("edgeshield.breaker")


class State(enum.IntEnum):
    # The values are the gauge values exported as metrics (the resilience4j convention).
    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2

    @property
    def label(self) -> str:
        return self.name.lower().replace("_", "-")


class Breaker:
    def __init__(
        self,
        name: str,
        *,
        failures: int = 3,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failures < 1:
            raise ValueError("failures must be >= 1")
        if backoff <= 0 or max_backoff < backoff:
            raise ValueError("need 0 < backoff <= max_backoff")
        self.name = name
        self.threshold = failures
        self.initial_backoff = backoff
        self.max_backoff = max_backoff
        self.clock = clock
        self._state = State.CLOSED
        self._consecutive = 0
        self._backoff = backoff
        self._open_until = 0.0
        self._trial_out = False
        # Counters for metrics.
        self.opened = 0
        self.rejected = 0

    @property
    def state(self) -> State:
        """The state as of now: an open breaker whose backoff has run out reads as
        half-open (the next call is the trial), without waiting for a call to notice."""
        if self._state is State.OPEN and self.clock() >= self._open_until:
            return State.HALF_OPEN
        return self._state

    @property
    def backoff(self) -> float:
        """How long the next opening lasts."""
        return self._backoff

    def allow(self) -> bool:
        """Whether a call may go out now. A True in half-open state is the trial: the
        caller must report it with success(), failure() or release()."""
        if self._state is State.CLOSED:
            return True
        if self._state is State.OPEN:
            if self.clock() < self._open_until:
                self.rejected += 1
                return False
            self._transition(State.HALF_OPEN, "backoff over, letting one trial call through")
        if self._trial_out:
            self.rejected += 1
            return False
        self._trial_out = True
        return True

    def success(self) -> None:
        self._consecutive = 0
        if self._state is State.HALF_OPEN:
            self._trial_out = False
            self._backoff = self.initial_backoff
            self._transition(State.CLOSED, "trial call succeeded")
        # A success that arrives while open comes from a call started before the breaker
        # opened; it does not shorten the backoff (only a trial decides).

    def failure(self, reason: str = "") -> None:
        if self._state is State.CLOSED:
            self._consecutive += 1
            if self._consecutive >= self.threshold:
                self._open(f"{self._consecutive} consecutive failures, last: {reason}")
        elif self._state is State.HALF_OPEN:
            self._trial_out = False
            self._backoff = min(self._backoff * 2, self.max_backoff)
            self._open(f"trial call failed: {reason}")
        # While open: late failures of calls started before it opened change nothing.

    def release(self) -> None:
        """The call ended without an outcome (cancelled by its caller): a trial slot it
        held goes back, so the next call can be the trial."""
        if self._state is State.HALF_OPEN:
            self._trial_out = False

    def _open(self, why: str) -> None:
        self._consecutive = 0
        self._open_until = self.clock() + self._backoff
        self.opened += 1
        self._transition(State.OPEN, f"{why}; calls refused for {self._backoff:g}s")

    def _transition(self, state: State, why: str) -> None:
        log.warning("%s circuit %s -> %s: %s", self.name, self._state.label, state.label, why)
        self._state = state
