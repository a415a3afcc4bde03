"""loadtests/bench/online_bound.py: the posterior popularity, the fractional knapsack and
the bound they make, checked against brute force and closed forms; and the bound sits
between the online policies and Belady on admission_bench.py's own traces."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loadtests.bench.admission_bench import (
    KiB,
    replay_belady,
    replay_lru,
    replay_wtinylfu,
    zipf_trace,
)
from loadtests.bench.online_bound import Posterior, best_mass, online_bound

ZIPF = [1.0 / (rank + 1) for rank in range(2_000)]


def brute_mean(weights: list[float], c: int, n: int) -> float:
    """Every rank's term, none merged or left out."""
    total = sum(weights)
    w = [x / total for x in weights]
    logs = [c * math.log(x) + (n - c) * math.log1p(-x) for x in w]
    top = max(logs)
    terms = [math.exp(t - top) for t in logs]
    return sum(t * x for t, x in zip(terms, w, strict=True)) / sum(terms)


@given(c=st.integers(0, 300), extra=st.integers(0, 20_000))
@settings(max_examples=60, deadline=None)
def test_the_posterior_mean_matches_the_sum_over_every_rank(c: int, extra: int) -> None:
    n = c + extra
    assert Posterior(ZIPF).mean(c, n) == pytest.approx(brute_mean(ZIPF, c, n), rel=2e-3)


@given(c=st.integers(1, 200), extra=st.integers(1, 20_000))
@settings(max_examples=60, deadline=None)
def test_the_mean_grows_with_the_count_and_falls_with_the_requests(c: int, extra: int) -> None:
    """What the block bound relies on (equal to rounding once all of it is on rank 1)."""
    prior = Posterior(ZIPF)
    n = c + extra
    assert prior.mean(c + 1, n) >= prior.mean(c, n) * (1 - 1e-12)
    assert prior.mean(c, n + 1) <= prior.mean(c, n) * (1 + 1e-12)
    assert prior.mean(3, 1_000) > prior.mean(2, 1_000) > prior.mean(2, 2_000)


def test_a_flat_prior_learns_nothing() -> None:
    prior = Posterior([1.0] * 500)
    for c, n in ((0, 0), (1, 1), (3, 1_000), (40, 50)):
        assert prior.mean(c, n) == pytest.approx(1 / 500)


def test_a_count_above_the_requests_is_refused() -> None:
    with pytest.raises(ValueError):
        Posterior(ZIPF).mean(5, 4)


def test_the_knapsack_takes_the_densest_first_and_a_part_of_the_next() -> None:
    assert best_mass([1.0, 3.0, 2.0], [2, 1, 1], 3) == pytest.approx(3 + 2 + 0.5)
    assert best_mass([1.0, 3.0, 2.0], [2, 1, 1], 10) == pytest.approx(6)
    assert best_mass([], [], 10) == 0


def test_with_equal_odds_and_sizes_the_bound_is_the_share_of_seen_objects_kept() -> None:
    """k objects fit; before request i, min(k, seen) of them can be held, each asked for
    with chance 1/M: the bound in closed form, blocks of one request."""
    objects, k, size = 200, 30, 4 * KiB
    rng = random.Random(5)
    trace = [(rng.randrange(objects), size) for _ in range(3_000)]
    seen: set[int] = set()
    expected = 0.0
    for key, _ in trace:
        expected += min(k, len(seen)) / objects
        seen.add(key)
    got = online_bound(trace, k * size, Posterior([1.0] * objects), block_share=10**9)
    assert got == pytest.approx(expected / len(trace))


def test_longer_blocks_only_loosen_the_bound() -> None:
    trace, popularity = zipf_trace(random.Random(3), 1_000, 200, 1.0, 0)
    prior = Posterior(popularity.values())
    tight = online_bound(trace, 512 * KiB, prior, block_share=10**9)
    loose = online_bound(trace, 512 * KiB, prior, block_share=8)
    assert tight < loose


def test_online_policies_stay_under_the_bound_and_belady_goes_over_it() -> None:
    """Averaged over seeds (each a fixed trace): the bound is on expected hits, so one
    trace may be lucky; Belady knows the order of requests, not just their odds."""
    budget = 2 * 1024 * KiB
    sums = {"lru": 0.0, "policy": 0.0, "belady": 0.0, "bound": 0.0}
    for seed in range(4):
        trace, popularity = zipf_trace(random.Random(seed), 3_000, 400, 1.0, 0)
        sums["lru"] += replay_lru(trace, budget).object_ratio
        sums["policy"] += replay_wtinylfu(trace, budget).object_ratio
        sums["belady"] += replay_belady(trace, budget).object_ratio
        sums["bound"] += online_bound(trace, budget, Posterior(popularity.values()), 64)
    assert sums["lru"] < sums["policy"] < sums["bound"] < sums["belady"]


def test_blocks_of_one_request_are_the_per_request_bound() -> None:
    """Before each request: the knapsack of the posterior means of what was asked for."""
    trace, popularity = zipf_trace(random.Random(8), 400, 120, 1.0, 0)
    prior = Posterior(popularity.values())
    budget = 256 * KiB
    counts: dict[int, int] = {}
    sizes: dict[int, int] = {}
    expected = 0.0
    for n, (key, size) in enumerate(trace):
        if counts:
            keys = list(counts)
            values = [prior.mean(counts[k], n) for k in keys]
            expected += best_mass(values, [sizes[k] for k in keys], budget)
        counts[key] = counts.get(key, 0) + 1
        sizes[key] = size
    got = online_bound(trace, budget, prior, block_share=10**9)
    assert got == pytest.approx(expected / len(trace), rel=1e-12)
    assert online_bound(trace, budget, prior) >= got
