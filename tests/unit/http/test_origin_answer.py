"""Origin answers that do not fit the request: partial answers to full requests (RFC
9111 3.3) and statuses no client may be given (RFC 9110 15)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.http.origin_answer import final_status, unrequested_range


@pytest.mark.parametrize(
    ("status", "headers", "expected"),
    [
        (206, [("content-range", "bytes 0-9/100")], True),
        (206, [], True),
        (200, [("content-range", "bytes 0-9/100")], True),
        (416, [("content-range", "bytes */100")], True),
        (304, [("content-range", "bytes 0-9/100")], False),  # never used from a 304
        (200, [("content-length", "10")], False),
        (404, [], False),
    ],
)
def test_unrequested_range(status: int, headers: list[tuple[str, str]], expected: bool) -> None:
    assert unrequested_range(status, headers) is expected


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (200, True),
        (204, True),
        (599, True),
        (999, False),
        (600, False),
        (101, False),
        (100, False),
        (99, False),
        (0, False),
        (-1, False),
    ],
)
def test_final_status(status: int, expected: bool) -> None:
    assert final_status(status) is expected


@given(st.integers(min_value=-(2**31), max_value=2**31))
def test_final_status_is_exactly_200_to_599(status: int) -> None:
    assert final_status(status) is (200 <= status <= 599)
