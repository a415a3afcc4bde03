"""Member choice: nginx's smooth weighted round robin, failover order, peak EWMA."""

from __future__ import annotations

from collections import Counter

import pytest

from routing.balance import (
    MIN_SAMPLES,
    LatencyStats,
    SmoothWeighted,
    failover_pick,
    lowest_latency_pick,
)


def test_smooth_wrr_matches_nginx_sequence() -> None:
    # nginx's ngx_http_upstream_round_robin.c comment: weights {5, 1, 1} -> a a b a c a a
    wrr = SmoothWeighted([5, 1, 1])
    picks = "".join("abc"[wrr.pick([0, 1, 2]) or 0] for _ in range(14))
    assert picks == "aabacaa" * 2


def test_smooth_wrr_shares_follow_weights_and_skip_ineligible() -> None:
    wrr = SmoothWeighted([3, 1, 2])
    counts = Counter(wrr.pick([0, 1, 2]) for _ in range(600))
    assert counts == {0: 300, 1: 100, 2: 200}
    # Member 0 down: the others share in their own proportion.
    counts = Counter(wrr.pick([1, 2]) for _ in range(300))
    assert counts == {1: 100, 2: 200}


def test_smooth_wrr_nothing_to_pick() -> None:
    assert SmoothWeighted([1, 1]).pick([]) is None


@pytest.mark.parametrize(
    ("weights", "eligible", "expected"),
    [
        ([1, 1, 1], [0, 1, 2], 0),  # configuration order
        ([1, 1, 1], [1, 2], 1),  # first down: the next one
        ([0, 1, 1], [0, 1, 2], 1),  # weight 0 is a backup, used last
        ([0, 1, 1], [0], 0),  # ... when nothing else is left
        ([1, 1], [], None),
    ],
)
def test_failover_order(weights: list[int], eligible: list[int], expected: int | None) -> None:
    assert failover_pick(weights, eligible) == expected


def _stats(*samples: float, now: float = 0.0) -> LatencyStats:
    stats = LatencyStats()
    for sample in samples:
        stats.record(sample, now)
    return stats


def test_lowest_latency_picks_the_fastest() -> None:
    stats = [_stats(0.2, 0.2), _stats(0.05, 0.05), _stats(0.1)]
    assert lowest_latency_pick([1, 1, 1], [0, 1, 2], stats, now=0.0) == 1
    assert lowest_latency_pick([1, 1, 1], [0, 2], stats, now=0.0) == 2


def test_lowest_latency_tries_unmeasured_members_first() -> None:
    stats = [_stats(0.01), LatencyStats()]
    assert lowest_latency_pick([1, 1], [0, 1], stats, now=0.0) == 1


def test_peak_ewma_reacts_to_slowdowns_at_once_and_forgives_gradually() -> None:
    stats = _stats(0.01, 0.01)
    stats.record(0.5, 0.0)
    assert stats.ewma == 0.5
    stats.record(0.01, 0.0)
    assert stats.ewma == pytest.approx(0.5 + 0.3 * (0.01 - 0.5))


def test_requests_in_flight_spread_load() -> None:
    fast, slow = _stats(0.010), _stats(0.015)
    fast.pending = 2  # 0.010 * 3 > 0.015 * 1
    assert lowest_latency_pick([1, 1], [0, 1], [fast, slow], now=0.0) == 1


def test_an_idle_slow_member_is_tried_again_later() -> None:
    fast, slow = _stats(0.05, now=100.0), _stats(1.0, now=0.0)
    assert lowest_latency_pick([1, 1], [0, 1], [fast, slow], now=1.0) == 0
    # 100 s idle: 1.0 * exp(-10) is well below 0.05.
    assert lowest_latency_pick([1, 1], [0, 1], [fast, slow], now=100.0) == 1


def test_failures_count_as_slow() -> None:
    stats = _stats(0.01)
    stats.record_failure(0.0001, 0.0)
    assert stats.ewma is not None and stats.ewma >= 1.0
    assert len(stats.ring) == 1  # the percentile only sees real heads


def test_p95_needs_enough_samples() -> None:
    stats = _stats(*([0.01] * (MIN_SAMPLES - 1)))
    assert stats.p95() is None
    for _ in range(100 - MIN_SAMPLES + 1):
        stats.record(0.01, 0.0)
    assert stats.p95() == 0.01
    for _ in range(10):
        stats.record(0.3, 0.0)  # 10 slow of the last 110 kept (ring holds 128)
    assert stats.p95() == 0.3
