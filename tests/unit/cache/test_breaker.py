from __future__ import annotations

import logging

import pytest

from proxy.cache.breaker import Breaker, State


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def breaker(clock: Clock, failures: int = 3, backoff: float = 1.0, cap: float = 8.0) -> Breaker:
    return Breaker("test", failures=failures, backoff=backoff, max_backoff=cap, clock=clock)


def test_opens_after_consecutive_failures_only(clock: Clock) -> None:
    b = breaker(clock)
    b.failure("x")
    b.failure("x")
    b.success()  # breaks the run
    b.failure("x")
    b.failure("x")
    assert b.state is State.CLOSED and b.allow()
    b.failure("x")
    assert b.state is State.OPEN
    assert b.opened == 1


def test_open_refuses_until_backoff_then_one_trial(clock: Clock) -> None:
    b = breaker(clock, failures=1, backoff=2.0)
    b.failure("boom")
    assert not b.allow()
    clock.now += 1.9
    assert not b.allow()
    assert b.rejected == 2
    clock.now += 0.1
    assert b.state is State.HALF_OPEN  # readable before any call notices
    assert b.allow()  # the trial
    assert not b.allow()  # everyone else waits for its outcome
    assert b.state is State.HALF_OPEN


def test_trial_success_closes_and_resets_backoff(clock: Clock) -> None:
    b = breaker(clock, failures=1, backoff=1.0)
    b.failure("a")
    clock.now += 1
    assert b.allow()
    b.failure("trial")  # backoff doubles
    assert b.backoff == 2.0
    clock.now += 2
    assert b.allow()
    b.success()
    assert b.state is State.CLOSED
    assert b.backoff == 1.0
    assert all(b.allow() for _ in range(5))


def test_backoff_grows_to_the_cap(clock: Clock) -> None:
    b = breaker(clock, failures=1, backoff=1.0, cap=5.0)
    b.failure("down")
    waits = []
    for _ in range(5):
        waits.append(b.backoff)
        clock.now += b.backoff
        assert b.allow()
        b.failure("still down")
    assert waits == [1.0, 2.0, 4.0, 5.0, 5.0]
    # Open for exactly the capped backoff.
    clock.now += 4.99
    assert not b.allow()
    clock.now += 0.01
    assert b.allow()


def test_released_trial_lets_the_next_call_try(clock: Clock) -> None:
    b = breaker(clock, failures=1)
    b.failure("x")
    clock.now += 1
    assert b.allow()
    b.release()  # e.g. the trial's request was cancelled
    assert b.state is State.HALF_OPEN
    assert b.allow()
    assert not b.allow()


def test_late_results_while_open_change_nothing(clock: Clock) -> None:
    b = breaker(clock, failures=2, backoff=3.0)
    b.failure("a")
    b.failure("b")
    b.success()  # a call started before the breaker opened
    b.failure("c")
    assert b.state is State.OPEN
    clock.now += 3
    assert b.state is State.HALF_OPEN
    assert b.opened == 1


def test_each_transition_logged_once(clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    b = breaker(clock, failures=2, backoff=1.0)
    with caplog.at_level(logging.WARNING, logger="edgeshield.breaker"):
        for _ in range(50):
            b.failure("connection refused")
            b.allow()
        clock.now += 1
        for _ in range(10):
            if b.allow():
                b.success()
        for _ in range(10):
            b.allow()
            b.success()
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3, messages
    assert "closed -> open" in messages[0] and "connection refused" in messages[0]
    assert "open -> half-open" in messages[1]
    assert "half-open -> closed" in messages[2]
    assert all(r.levelno == logging.WARNING for r in caplog.records)


def test_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError):
        Breaker("x", failures=0)
    with pytest.raises(ValueError):
        Breaker("x", backoff=2.0, max_backoff=1.0)
