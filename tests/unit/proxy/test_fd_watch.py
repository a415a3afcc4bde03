"""Which workers the descriptor watch takes for stuck (proxy/serve/fd_watch.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from proxy.serve.fd_watch import MARGIN, STUCK_SECONDS, StuckWorkers

LIMIT = 1024
FULL = LIMIT - MARGIN


def test_full_past_the_handshake_timeout_is_stuck_once() -> None:
    state = StuckWorkers(LIMIT)
    assert state.update({7: LIMIT}, 0.0) == []
    assert state.update({7: LIMIT}, STUCK_SECONDS - 0.1) == []
    assert state.update({7: FULL}, STUCK_SECONDS) == [7]
    # The reload replacing it takes a while: it is not reported again meanwhile.
    assert state.update({7: LIMIT, 8: 30}, STUCK_SECONDS + 5) == []


def test_a_break_below_the_limit_starts_over() -> None:
    state = StuckWorkers(LIMIT)
    state.update({7: LIMIT}, 0.0)
    state.update({7: FULL - 1}, 10.0)  # it freed descriptors: not stuck
    state.update({7: LIMIT}, 11.0)
    assert state.update({7: LIMIT}, 11.0 + STUCK_SECONDS - 0.1) == []
    assert state.update({7: LIMIT}, 11.0 + STUCK_SECONDS) == [7]


def test_workers_are_told_apart_and_forgotten_when_gone() -> None:
    state = StuckWorkers(LIMIT)
    state.update({7: LIMIT, 8: 10}, 0.0)
    assert state.update({7: LIMIT, 8: LIMIT}, STUCK_SECONDS) == [7]
    assert state.update({8: LIMIT}, 2 * STUCK_SECONDS) == [8]
    assert state.full_since == {8: 0.0 + STUCK_SECONDS} and state.reloaded == {8}


samples = st.lists(
    st.tuples(
        st.floats(0, 30),  # seconds since the previous sample
        st.dictionaries(st.integers(1, 4), st.integers(0, LIMIT + 5), max_size=4),
    ),
    max_size=40,
)


@given(samples)
def test_stuck_means_full_in_every_sample_of_the_last_stuck_seconds(
    history: list[tuple[float, dict[int, int]]],
) -> None:
    state = StuckWorkers(LIMIT)
    now = 0.0
    seen: list[tuple[float, dict[int, int]]] = []
    reported: set[int] = set()
    for step, counts in history:
        now += step
        seen.append((now, counts))
        for pid in state.update(counts, now):
            assert pid not in reported  # once while it lives
            reported.add(pid)
            # Present and full in every sample back to one STUCK_SECONDS ago.
            run_start = now
            for at, earlier in reversed(seen):
                if earlier.get(pid, 0) < FULL:
                    break
                run_start = at
            assert now - run_start >= STUCK_SECONDS
        reported &= set(counts)
