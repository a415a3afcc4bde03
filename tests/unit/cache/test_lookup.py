"""`classify`: the one lookup decision (fresh, stale-while-revalidate, expired,
hit-for-miss, absent) that the plain, image-variant and slice paths all act on."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.cache.entry import Entry, Uncacheable
from proxy.cache.lookup import Use, classify
from proxy.http.freshness import Freshness

# lifetime 100, already 10 old on arrival at t=1000: fresh until 1090, then 20 s of
# stale-while-revalidate (until 1110); stale-if-error is not the lookup's business.
F = Freshness(True, "", 100.0, 10.0, 20.0, 50.0, False, False)
NO_CACHE = Freshness(True, "", 100.0, 10.0, 20.0, 50.0, False, True)
NO_SWR = Freshness(True, "", 100.0, 10.0, 0.0, 50.0, False, False)


def _entry(f: Freshness) -> Entry:
    return Entry(
        status=200,
        headers=[],
        origin_headers=[],
        body=b"x",
        etag='"v1"',
        last_modified=None,
        content_type=None,
        response_time=1000.0,
        freshness=f,
    )


@pytest.mark.parametrize(
    ("found", "now", "use"),
    [
        (None, 1000, Use.ABSENT),
        (_entry(F), 1000, Use.FRESH),
        (_entry(F), 1089.9, Use.FRESH),
        (_entry(F), 1090, Use.STALE),  # the lifetime is reached: no longer fresh
        (_entry(F), 1109.9, Use.STALE),
        (_entry(F), 1110, Use.EXPIRED),  # the swr window is closed
        (_entry(NO_SWR), 1090, Use.EXPIRED),
        (_entry(NO_CACHE), 1000, Use.EXPIRED),  # stored, but revalidated before every use
        (_entry(NO_CACHE), 1100, Use.EXPIRED),
        (Uncacheable(until=1010), 1000, Use.HIT_FOR_MISS),
        (Uncacheable(until=1010), 1010, Use.ABSENT),  # the marker lapsed: collapse again
    ],
)
def test_classify(found: Entry | Uncacheable | None, now: float, use: Use) -> None:
    assert classify(found, now) is use


@given(
    lifetime=st.floats(0, 1e6),
    initial_age=st.floats(0, 1e6),
    swr=st.floats(0, 1e6),
    earlier=st.floats(0, 2e6),
    later=st.floats(0, 2e6),
)
def test_an_entry_only_ever_gets_worse_with_time(
    lifetime: float, initial_age: float, swr: float, earlier: float, later: float
) -> None:
    """FRESH, then STALE, then EXPIRED, never back: a later lookup of the same entry never
    gets a better answer than an earlier one."""
    entry = _entry(Freshness(True, "", lifetime, initial_age, swr, 0.0, False, False))
    order = [Use.FRESH, Use.STALE, Use.EXPIRED]
    first, second = sorted((earlier, later))
    before = classify(entry, 1000 + first)
    after = classify(entry, 1000 + second)
    assert order.index(before) <= order.index(after)
