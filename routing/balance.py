"""Choosing a member of an origin group: failover order, smooth weighted round robin
(nginx's algorithm), lowest latency (peak EWMA). Pure state, no I/O: the caller passes
the eligible (healthy, not ejected, not yet tried) member indices and the time.

Weight 0 marks a backup in every policy: backups are considered only when no eligible
member has a weight above 0 (nginx's `backup`), and then count as weight 1.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence

# Peak EWMA: a slower sample replaces the average at once, faster ones pull it down by
# this fraction (Finagle's "peak EWMA" reacts to slowdowns at once, forgives gradually).
EWMA_ALPHA = 0.3
# An idle member's average decays toward 0 with this time constant (seconds), so a
# member that was slow once is tried again later instead of being starved forever.
IDLE_DECAY = 10.0
# A failed attempt counts as a sample at least this slow (seconds): a refused
# connection is fast, and must not make a dead member look like the quickest one.
FAILURE_PENALTY = 1.0
# Recent head latencies kept per origin for the percentile (hedging's "p95").
RING_SIZE = 128
# The percentile is only trusted once this many samples exist.
MIN_SAMPLES = 20
# ... and recomputed after this many new samples (sorting on every request is waste).
RECOMPUTE_EVERY = 8


def primaries(weights: Sequence[int], eligible: Sequence[int]) -> Sequence[int]:
    """The eligible members with a weight above 0, or (if none) the eligible backups."""
    chosen = [i for i in eligible if weights[i] > 0]
    return chosen or eligible


def failover_pick(weights: Sequence[int], eligible: Sequence[int]) -> int | None:
    """Priority order: the first eligible member in configuration order (backups last)."""
    pool = primaries(weights, eligible)
    return pool[0] if pool else None


class SmoothWeighted:
    """nginx's smooth weighted round robin (ngx_http_upstream_get_peer): every pick adds
    each candidate's weight to its running score, takes the highest score, and subtracts
    the total from it. Weights {a: 5, b: 1, c: 1} give a a b a c a a: spread out, never
    bursts. Only the candidates of a pick take part in it (nginx skips down peers)."""

    __slots__ = ("current", "weights")

    def __init__(self, weights: Sequence[int]) -> None:
        self.weights = [max(1, w) for w in weights]  # backups pick like weight 1
        self.current = [0] * len(weights)

    def pick(self, candidates: Sequence[int]) -> int | None:
        best: int | None = None
        total = 0
        current, weights = self.current, self.weights
        for i in candidates:
            weight = weights[i]
            current[i] += weight
            total += weight
            if best is None or current[i] > current[best]:
                best = i
        if best is not None:
            current[best] -= total
        return best


class LatencyStats:
    """Per-origin response-time record: a peak EWMA for lowest-latency, a bounded ring
    of recent head latencies for the hedging percentile, and requests in flight."""

    __slots__ = ("_fresh", "_p95", "ewma", "pending", "ring", "samples", "updated")

    def __init__(self) -> None:
        self.ewma: float | None = None
        self.updated = 0.0
        self.ring: deque[float] = deque(maxlen=RING_SIZE)
        self.samples = 0
        self.pending = 0
        self._p95: float | None = None
        self._fresh = 0  # samples since the percentile was computed

    def record(self, seconds: float, now: float) -> None:
        """A response head arrived after `seconds`."""
        self._ewma(seconds, now)
        self.ring.append(seconds)
        self.samples += 1
        self._fresh += 1

    def record_failure(self, seconds: float, now: float) -> None:
        """An attempt failed after `seconds` (counts at least FAILURE_PENALTY)."""
        self._ewma(max(seconds, FAILURE_PENALTY), now)

    def _ewma(self, seconds: float, now: float) -> None:
        current = self.decayed(now)
        if current is None or seconds >= current:
            self.ewma = seconds
        else:
            self.ewma = current + EWMA_ALPHA * (seconds - current)
        self.updated = now

    def decayed(self, now: float) -> float | None:
        """The average, decayed toward 0 for the time since the last sample."""
        if self.ewma is None:
            return None
        idle = now - self.updated
        return self.ewma * math.exp(-idle / IDLE_DECAY) if idle > 0 else self.ewma

    def score(self, now: float, weight: int) -> float:
        """Lower is better: expected latency times the queue in front of us, per weight.
        A member never measured scores 0 (it is tried first, to get a sample)."""
        latency = self.decayed(now) or 0.0
        return latency * (self.pending + 1) / max(1, weight)

    def p95(self) -> float | None:
        """The 95th percentile of recent head latencies; None until MIN_SAMPLES exist."""
        if len(self.ring) < MIN_SAMPLES:
            return None
        if self._p95 is None or self._fresh >= RECOMPUTE_EVERY:
            ordered = sorted(self.ring)
            self._p95 = ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]
            self._fresh = 0
        return self._p95


def lowest_latency_pick(
    weights: Sequence[int], eligible: Sequence[int], stats: Sequence[LatencyStats], now: float
) -> int | None:
    """The eligible member with the lowest score (ties: configuration order)."""
    best: int | None = None
    best_score = math.inf
    for i in primaries(weights, eligible):
        score = stats[i].score(now, weights[i])
        if score < best_score:
            best, best_score = i, score
    return best
