"""Health state machines, driven by tables and a fake clock (no sleeps)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from config.schema import HealthCheck, OutlierDetection
from routing.health import HealthChecker, Outlier, ProbeWindow
from routing.origins.base import OriginRequest, OriginUnavailable

# -- active probes: window / threshold ---------------------------------------------------


@pytest.mark.parametrize(
    ("window", "threshold", "initial", "results", "states"),
    [
        # Varnish default initial = threshold - 1: down at start, up after one pass.
        (5, 3, None, "", ""),
        (5, 3, None, "P", "U"),
        # From all-good, window 5 / threshold 3 goes down on the 3rd failure in a row.
        (5, 3, 5, "FFF", "UUD"),
        (5, 3, 5, "FFPFF", "UUUDD"),  # P slides in as an old P slides out
        # Up again after 3 passes.
        (5, 3, 0, "PPP", "DDU"),
        (5, 3, 5, "FFFPPP", "UUDDDU"),
        # Window 1 / threshold 1: every probe decides.
        (1, 1, 1, "FPFP", "DUDU"),
        # Starting healthy explicitly.
        (3, 2, 3, "F", "U"),
    ],
)
def test_probe_window(
    window: int, threshold: int, initial: int | None, results: str, states: str
) -> None:
    win = ProbeWindow(window, threshold, initial)
    seen = ""
    for result in results:
        win.record(result == "P")
        seen += "U" if win.healthy else "D"
    assert seen == states
    if not results:
        assert not win.healthy  # threshold - 1 initial passes: starts down


def test_probe_window_reports_changes_only() -> None:
    win = ProbeWindow(3, 2, 3)
    assert [win.record(ok) for ok in (False, False, False, True, True, True)] == [
        False,
        True,  # down
        False,
        False,
        True,  # up
        False,
    ]


# -- passive: consecutive failures, backoff, half-open -------------------------------------

SETTINGS = OutlierDetection(consecutive_failures=3, base_ejection=10, max_ejection=35)


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        # F = failure, S = success, "t=N" moves the clock; each step records the state.
        ("F F", "ok ok"),
        ("F F F", "ok ok ejected"),
        ("F F S F F", "ok ok ok ok ok"),  # a success resets the count
        ("F F F t=9.9", "ok ok ejected ejected"),
        ("F F F t=10", "ok ok ejected half-open"),
        ("F F F t=10 begin", "ok ok ejected half-open trial"),
        ("F F F t=10 begin S", "ok ok ejected half-open trial ok"),
        # A failed trial doubles the ejection: 20 s from t=10.
        ("F F F t=10 begin F t=29", "ok ok ejected half-open trial ejected ejected"),
        (
            "F F F t=10 begin F t=30 begin F t=65 begin",
            "ok ok ejected half-open trial ejected half-open trial ejected half-open trial",
        ),
        # A cancelled trial frees the slot for another.
        ("F F F t=10 begin abort", "ok ok ejected half-open trial half-open"),
        # Failures of older attempts while ejected change nothing.
        ("F F F F F t=10", "ok ok ejected ejected ejected half-open"),
    ],
)
def test_outlier_table(steps: str, expected: str) -> None:
    outlier = Outlier(SETTINGS)
    now, trial, states = 0.0, False, []
    for step in steps.split():
        if step.startswith("t="):
            now = float(step[2:])
        elif step == "begin":
            trial = outlier.begin(now)
            assert trial
        elif step == "abort":
            outlier.abort(trial)
            trial = False
        elif step == "F":
            outlier.failure(now, trial)
            trial = False
        elif step == "S":
            outlier.success(now, trial)
            trial = False
        states.append(outlier.state(now))
    assert " ".join(states) == expected


def test_ejection_backoff_caps_and_resets_after_a_healthy_spell() -> None:
    outlier = Outlier(OutlierDetection(consecutive_failures=1, base_ejection=10, max_ejection=35))
    durations = []
    now = 0.0
    for _ in range(4):
        outlier.failure(now, outlier.begin(now))
        durations.append(outlier.remaining(now))
        now = outlier.ejected_until or now
    assert durations == [10, 20, 35, 35]
    outlier.success(now, outlier.begin(now))
    now += 35  # healthy for max_ejection: the backoff starts over
    outlier.failure(now, False)
    assert outlier.remaining(now) == 10


def test_failure_rate_ejects() -> None:
    outlier = Outlier(
        OutlierDetection(consecutive_failures=100, failure_rate=0.5, failure_rate_window=4)
    )
    for failed in (True, False, True, False):
        (outlier.failure if failed else outlier.success)(0.0, False)
    assert outlier.state(0.0) == "ok"  # judged when a failure arrives
    outlier.failure(0.0, False)  # the last 4: S F S F -> 2 of 4 failed
    assert outlier.state(0.0) == "ejected"


def test_disabled_outlier_never_ejects() -> None:
    for settings in (None, OutlierDetection(enabled=False)):
        outlier = Outlier(settings)
        for _ in range(100):
            outlier.failure(0.0, False)
        assert outlier.available(0.0)


def test_reset_unejects() -> None:
    outlier = Outlier(SETTINGS)
    for _ in range(3):
        outlier.failure(0.0, False)
    assert not outlier.available(1.0)
    assert outlier.reset()
    assert outlier.available(1.0)
    assert not outlier.reset()


# -- the checker: probes through the origin's own fetch ------------------------------------


class _Response:
    def __init__(self, status: int) -> None:
        self.status = status
        self.headers: list[tuple[str, str]] = []
        self.content_length = 2
        self.closed = False

    async def body(self) -> AsyncIterator[bytes]:
        yield b"ok"

    async def aclose(self) -> None:
        self.closed = True


class _ScriptedOrigin:
    """Answers probes from a list: a status, or "down" for a refused connection."""

    def __init__(self, name: str, answers: list[int | str]) -> None:
        self.name = name
        self.answers = answers
        self.requests: list[OriginRequest] = []
        self.responses: list[_Response] = []

    async def fetch(self, request: OriginRequest) -> _Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if answer == "down":
            raise OriginUnavailable(self.name, "connect failed")
        assert isinstance(answer, int)
        response = _Response(answer)
        self.responses.append(response)
        return response

    async def aclose(self) -> None:
        return None


async def test_checker_logs_only_state_changes(caplog: pytest.LogCaptureFixture) -> None:
    origin = _ScriptedOrigin("a", [200, "down", "down", "down", "down", 200, 200, 200])
    check = HealthCheck(path="/health?deep=1", window=3, threshold=2)
    checker = HealthChecker({"a": origin}, {"a": check})
    assert not checker.is_up("a")  # initial = threshold - 1
    with caplog.at_level(logging.INFO, logger="edgeshield.health"):
        states = []
        for _ in range(8):
            await checker.probe("a")
            states.append(checker.is_up("a"))
    assert states == [True, True, False, False, False, False, True, True]
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3
    assert "is up" in messages[0] and "is down" in messages[1] and "is up" in messages[2]
    assert "connect failed" in messages[1]
    request = origin.requests[0]
    assert (request.method, request.path, request.query) == ("GET", "/health", "deep=1")
    assert all(response.closed for response in origin.responses)


async def test_checker_unexpected_status_fails_the_probe() -> None:
    origin = _ScriptedOrigin("a", [503])
    checker = HealthChecker({"a": origin}, {"a": HealthCheck(initial=5)})
    assert checker.is_up("a")
    assert not await checker.probe("a")
    snap = checker.snapshot()["a"]
    assert snap["probe"]["last"]["detail"] == "status 503"
    assert snap["probe"]["window"] == [1, 1, 1, 1, 0]
    assert snap["state"] == "up"  # 4 of 5 still passed


async def test_origins_without_checks_are_always_up() -> None:
    checker = HealthChecker({"a": _ScriptedOrigin("a", ["down"])}, {"a": None})
    assert checker.is_up("a")
    assert await checker.probe("a")
    checker.start()  # nothing to start
    await checker.stop()
    assert checker.snapshot()["a"]["probe"] is None


async def test_probe_tasks_start_and_stop() -> None:
    origin = _ScriptedOrigin("a", [200])
    checker = HealthChecker({"a": origin}, {"a": HealthCheck(interval=0.01, threshold=1)})
    checker.start()
    try:
        for _ in range(100):
            if len(origin.requests) >= 3:
                break
            await asyncio.sleep(0.01)
    finally:
        await checker.stop()
    assert len(origin.requests) >= 3
    assert checker.is_up("a")


async def test_a_crashing_origin_fails_the_probe_without_ending_it() -> None:
    class Broken(_ScriptedOrigin):
        async def fetch(self, request: OriginRequest) -> _Response:
            raise RuntimeError("bug")

    checker = HealthChecker({"a": Broken("a", [200])}, {"a": HealthCheck(initial=5)})
    assert not await checker.probe("a")
    assert checker.snapshot()["a"]["probe"]["last"]["detail"] == "probe error: RuntimeError"
