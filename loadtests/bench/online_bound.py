"""The ceiling of every online policy on admission_bench.py's Zipf traces.

A cache that is not told the future learns popularity only from the requests so far. On
these traces each request is drawn independently, from a Zipf law over a shuffled
order of the objects, with sizes that say nothing about popularity. So, given every
request before request i, the chance that request i asks for object x is the mean of
x's popularity under its posterior: the prior is "x has one of the Zipf weights, each
as likely", updated by x's count c among the n requests so far. Whatever a cache holds
before request i is a set of objects already asked for whose sizes fit the budget; its
chance of a hit is that set's posterior mass, at most the best set's, which a
fractional knapsack bounds. The sum over the trace bounds the expected hits, over
traces drawn like this one, of every cache that keeps only objects it was asked for
(no prefetching or warm-up), one that knows the trace's exact prior (skew and object
count) included. One trace may do better by luck: a bound on expectations.

Where it is approximate (checked against exact computations by a review, 2026-12-06):
- Requests are taken in blocks of at most n/`block_share`, each bounded at once by the
  counts at the block's end and n at its start (the posterior mean grows with c and
  falls with n): above the per-request bound by about 0.0013 at n/256, 0.014 at n/32.
- Ranks are treated as independent, though they are a permutation (a count that marks
  one object as the most popular says something about the others). With 10,000 objects
  that raised the bound by 0.001-0.003 over most of the trace; with a few hundred
  objects or fewer it can lower it by a few thousandths.
- Weights within 0.1 % of each other share a term, and terms below e^-50 of the largest
  are left out: relative error under 2e-7.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence

# Terms of the posterior sums this far below the largest one are left out: ~1e-22
# each, against sums of at least 1.
NEGLIGIBLE = -50.0
MERGE = 1.001


class Posterior:
    """The mean popularity of an object asked for c times in n requests, under a prior
    that gives it each of `weights` (normalised to sum 1) with equal chance."""

    def __init__(self, weights: Iterable[float]) -> None:
        ordered = sorted(weights, reverse=True)
        total = math.fsum(ordered)
        # Neighbours within 0.1 % of each other share one term, weighted by their
        # number: the tail of a 10,000-object Zipf law collapses to ~3,000 terms.
        self.w: list[float] = []
        self._many: list[int] = []
        first = math.inf
        for x in ordered:
            if x * MERGE >= first:
                n = self._many[-1]
                self.w[-1] = (self.w[-1] * n + x / total) / (n + 1)
                self._many[-1] = n + 1
            else:
                first = x
                self.w.append(x / total)
                self._many.append(1)
        self._lw = [math.log(x) for x in self.w]
        self._l1w = [math.log1p(-x) if x < 1 else -math.inf for x in self.w]
        self._descending = [-x for x in self.w]

    def mean(self, c: int, n: int) -> float:
        if not 0 <= c <= n:
            raise ValueError(f"a count of {c} in {n} requests")
        w, lw, l1w, many = self.w, self._lw, self._l1w, self._many

        def term(r: int) -> float:
            return c * lw[r] + (n - c) * l1w[r] if n > c else c * lw[r]

        # The log of each term is concave in log w: one peak, near w = c/n.
        peak = min(bisect.bisect_left(self._descending, -c / n if n else -1.0), len(w) - 1)
        if peak and term(peak - 1) > term(peak):
            peak -= 1
        top = term(peak)
        mass = weighted = 0.0
        for step in (-1, 1):
            r = peak if step == 1 else peak - 1
            while 0 <= r < len(w):
                t = term(r) - top
                if t < NEGLIGIBLE:
                    break
                e = math.exp(t) * many[r]
                mass += e
                weighted += e * w[r]
                r += step
        return weighted / mass


def best_mass(values: Sequence[float], sizes: Sequence[int], budget: int) -> float:
    """The most value a budget holds when items may be taken in part (fractional knapsack)."""
    order = sorted(range(len(values)), key=lambda i: -values[i] / sizes[i])
    total = 0.0
    room = budget
    for i in order:
        if sizes[i] <= room:
            total += values[i]
            room -= sizes[i]
        else:
            total += values[i] * room / sizes[i]
            break
    return total


def online_bound(
    trace: Sequence[tuple[int, int]], budget: int, prior: Posterior, block_share: int = 256
) -> float:
    """An upper bound on the expected object hit ratio of any policy that has seen only
    the requests before each one (trace: (object, size) pairs)."""
    counts: dict[int, int] = {}
    sizes: dict[int, int] = {}
    hits = 0.0
    start = 0
    while start < len(trace):
        end = min(len(trace), start + max(1, start // block_share))
        # Every request in [start, end) sees at most these counts and at least `start`
        # requests before it; an object first asked for inside the block is counted
        # as held already (one more term of the knapsack, a higher bound).
        ahead = dict(counts)
        for key, size in trace[start : end - 1]:
            ahead[key] = ahead.get(key, 0) + 1
            sizes[key] = size
        if ahead:
            means: dict[int, float] = {}
            keys = list(ahead)
            values = []
            for key in keys:
                c = ahead[key]
                if c not in means:
                    # c may pass `start` early on; an object asked for every time so
                    # far is the most likely to be asked for again: mean(c, c) bounds it.
                    means[c] = prior.mean(c, max(c, start))
                values.append(means[c])
            hits += (end - start) * best_mass(values, [sizes[k] for k in keys], budget)
        for key, size in trace[start:end]:
            counts[key] = counts.get(key, 0) + 1
            sizes[key] = size
        start = end
    return hits / max(1, len(trace))
