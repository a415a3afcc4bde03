"""The reuse windows an `Entry` derives once from its freshness (RFC 9111 4.2, 4.2.3;
RFC 5861): what every lookup compares (`fresh_until`, `stale_while_revalidate_until`,
`stale_if_error_until`), and its age."""

from __future__ import annotations

from dataclasses import replace

import pytest

from proxy.cache.entry import Entry
from proxy.http.freshness import Freshness

# lifetime 100, already 10 old on arrival at t=1000, 20 s swr, 50 s sie.
F = Freshness(True, "", 100.0, 10.0, 20.0, 50.0, False, False)


def _entry(f: Freshness, response_time: float = 1000.0) -> Entry:
    return Entry(
        status=200,
        headers=[],
        origin_headers=[],
        body=b"x",
        etag=None,
        last_modified=None,
        content_type=None,
        response_time=response_time,
        freshness=f,
    )


@pytest.mark.parametrize(
    ("f", "now", "age", "fresh", "swr", "sie"),
    [
        (F, 1000, 10, True, False, False),
        (F, 1089, 99, True, False, False),
        (F, 1089.5, 99, True, False, False),
        (F, 1090, 100, False, True, True),  # freshness_lifetime > current_age is strict
        (F, 1109, 119, False, True, True),
        (F, 1110, 120, False, False, True),  # staleness 20 = window: closed
        (F, 1139, 149, False, False, True),
        (F, 1140, 150, False, False, False),
        (F, 990, 10, True, False, False),  # clock stepped back: resident time 0
        (replace(F, lifetime=0.0, initial_age=0.0), 1000, 0, False, True, True),
        (
            replace(F, lifetime=0.0, stale_while_revalidate=0.0, stale_if_error=0.0),
            1000,
            10,
            False,
            False,
            False,
        ),
        # no-cache: stored, never fresh; its windows count from the response (RFC 9111
        # 5.2.2.4 forbids stale use, so response_freshness gives it none)
        (
            replace(F, no_cache=True, stale_while_revalidate=0.0, stale_if_error=0.0),
            1000,
            10,
            False,
            False,
            False,
        ),
    ],
)
def test_reuse_windows(
    f: Freshness, now: float, age: int, fresh: bool, swr: bool, sie: bool
) -> None:
    entry = _entry(f)
    assert entry.age(now) == age
    stale = now >= entry.fresh_until
    assert (now < entry.fresh_until) is fresh
    # The lookup asks the stale windows only of an entry that is not fresh.
    assert (stale and now < entry.stale_while_revalidate_until) is swr
    assert (stale and now < entry.stale_if_error_until) is sie


@pytest.mark.parametrize(
    ("now", "fresh", "swr", "sie"),
    [
        (1050, False, True, True),
        (1069, False, True, True),
        (1070, False, False, True),  # the windows count from the purge
        (1099, False, False, True),
        (1100, False, False, False),
    ],
)
def test_soft_purge_counts_the_windows_from_the_purge(
    now: float, fresh: bool, swr: bool, sie: bool
) -> None:
    entry = _entry(F)
    entry.make_stale(1050)
    assert (now < entry.fresh_until) is fresh
    assert (now < entry.stale_while_revalidate_until) is swr
    assert (now < entry.stale_if_error_until) is sie


def test_soft_purge_leaves_a_stale_entry_as_it_was() -> None:
    entry = _entry(F)
    entry.make_stale(1095)  # already stale at 1090: nothing moves
    assert (entry.fresh_until, entry.stale_while_revalidate_until) == (1090, 1110)
    assert entry.stale_if_error_until == 1140
