"""If-Modified-Since against a stored response without Last-Modified: compared with its
Date (RFC 9111 4.3.2); If-Unmodified-Since never is (RFC 9110 13.1.4)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from proxy.http.conditionals import evaluate_preconditions, stored_date
from proxy.http.dates import format_http_date

DATE = 784111777.0  # Sun, 06 Nov 1994 08:49:37 GMT
AT_DATE = "Sun, 06 Nov 1994 08:49:37 GMT"
EARLIER = "Sat, 05 Nov 1994 08:49:37 GMT"
LATER = "Mon, 07 Nov 1994 08:49:37 GMT"


def test_ims_uses_the_date_when_there_is_no_last_modified() -> None:
    for ims, expected in ((AT_DATE, 304), (LATER, 304), (EARLIER, None)):
        got = evaluate_preconditions("GET", {"if-modified-since": ims}, None, None, date=DATE)
        assert got == expected


def test_last_modified_wins_over_the_date() -> None:
    headers = {"if-modified-since": AT_DATE}
    assert evaluate_preconditions("GET", headers, None, DATE + 60, date=DATE) is None


def test_without_a_date_nothing_changes() -> None:
    assert evaluate_preconditions("GET", {"if-modified-since": LATER}, None, None) is None


def test_ius_is_not_compared_with_the_date() -> None:
    headers = {"if-unmodified-since": EARLIER}
    assert evaluate_preconditions("GET", headers, None, None, date=DATE) is None


def test_if_none_match_still_takes_precedence() -> None:
    headers = {"if-none-match": '"other"', "if-modified-since": LATER}
    assert evaluate_preconditions("GET", headers, '"v1"', None, date=DATE) is None


def test_stored_date() -> None:
    assert stored_date([(b"etag", b'"x"'), (b"date", AT_DATE.encode())], 5.0) == DATE
    assert stored_date([(b"date", b"garbage")], 5.0) == 5.0
    assert stored_date([], 5.0) == 5.0


@given(
    date=st.integers(min_value=0, max_value=4_000_000_000),
    ims=st.integers(min_value=0, max_value=4_000_000_000),
)
def test_ims_against_a_date(date: int, ims: int) -> None:
    headers = {"if-modified-since": format_http_date(ims)}
    expected = 304 if date <= ims else None
    assert evaluate_preconditions("HEAD", headers, None, None, date=float(date)) == expected
