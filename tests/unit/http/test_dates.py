import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.http.dates import format_http_date, parse_http_date


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # IMF-fixdate, RFC 9110 5.6.7 example.
        ("Sun, 06 Nov 1994 08:49:37 GMT", 784111777.0),
        ("Thu, 01 Jan 1970 00:00:00 GMT", 0.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 1445412480.0),
        ("Sat, 29 Feb 2020 12:00:00 GMT", 1582977600.0),  # leap day
        ("Tue, 19 Jan 2038 03:14:08 GMT", 2147483648.0),  # past int32
        ("Fri, 31 Dec 9999 23:59:59 GMT", 253402300799.0),
        ("Sat, 31 Dec 2016 23:59:60 GMT", 1483228800.0),  # leap second folds forward
        # RFC 9111 4.2: caches match case-insensitively; OWS around the value is not data.
        ("sun, 06 nov 1994 08:49:37 gmt", 784111777.0),
        ("SUN, 06 NOV 1994 08:49:37 GMT", 784111777.0),
        ("  Sun, 06 Nov 1994 08:49:37 GMT\t", 784111777.0),
        # The weekday is not cross-checked against the date (only its spelling is).
        ("Mon, 06 Nov 1994 08:49:37 GMT", 784111777.0),
        # Obsolete RFC 850 format; two-digit years resolve to the past century.
        ("Sunday, 06-Nov-94 08:49:37 GMT", 784111777.0),
        ("Wednesday, 21-Oct-15 07:28:00 GMT", 1445412480.0),
        ("sunday, 06-nov-94 08:49:37 gmt", 784111777.0),
        # asctime, space-padded and zero-padded day.
        ("Sun Nov  6 08:49:37 1994", 784111777.0),
        ("Sun Nov 06 08:49:37 1994", 784111777.0),
        ("Wed Oct 21 07:28:00 2015", 1445412480.0),
        # Invalid: None.
        (None, None),
        ("", None),
        ("0", None),  # RFC 9111 5.3's classic invalid Expires
        ("-1", None),
        ("Sun, 06 Nov 1994 08:49:37 PST", None),  # RFC 9111 4.2: only GMT
        ("Sun, 06 Nov 1994 08:49:37 UTC", None),
        ("Sun, 06 Nov 1994 08:49:37", None),
        ("Sun, 6 Nov 1994 08:49:37 GMT", None),  # day is 2DIGIT
        ("Sun, 06 Nov 94 08:49:37 GMT", None),  # year is 4DIGIT
        ("Sun, 31 Feb 1994 08:49:37 GMT", None),
        ("Sun, 29 Feb 2019 08:49:37 GMT", None),
        ("Sun, 00 Nov 1994 08:49:37 GMT", None),
        ("Sun, 06 Nov 1994 24:00:00 GMT", None),
        ("Sun, 06 Nov 1994 08:60:00 GMT", None),
        ("Sun, 06 Nov 1994 08:49:61 GMT", None),
        ("Sun, 06 Foo 1994 08:49:37 GMT", None),
        ("Xyz, 06 Nov 1994 08:49:37 GMT", None),
        ("Sun, 06 Nov 0000 08:49:37 GMT", None),
        ("Sun,06 Nov 1994 08:49:37 GMT", None),
        ("Sun, 06 Nov 1994 08:49:37 GMT trailing", None),
        ("Sun, \u0660\u0666 Nov 1994 08:49:37 GMT", None),  # non-ASCII digits
        ("Sun, 06 Nov 1994 08:49:37 GMT, Mon, 07 Nov 1994 08:49:37 GMT", None),  # joined
        ("Sunday, 06-Nov-1994 08:49:37 GMT", None),
        ("Sun, 06-Nov-94 08:49:37 GMT", None),  # RFC 850 needs the full day name
        ("Sun Nov 6 08:49:37 1994", None),  # asctime pads to two characters
        ("Sun Nov  6 08:49:37 1994 GMT", None),
        ("1994-11-06T08:49:37Z", None),
    ],
)
def test_parse_http_date(value: str | None, expected: float | None) -> None:
    assert parse_http_date(value) == expected


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        (0, "Thu, 01 Jan 1970 00:00:00 GMT"),
        (784111777, "Sun, 06 Nov 1994 08:49:37 GMT"),
        (784111777.999, "Sun, 06 Nov 1994 08:49:37 GMT"),  # never rounds up
        (1445412480.5, "Wed, 21 Oct 2015 07:28:00 GMT"),
        (1582977600, "Sat, 29 Feb 2020 12:00:00 GMT"),
        (2147483648, "Tue, 19 Jan 2038 03:14:08 GMT"),
        (-1, "Wed, 31 Dec 1969 23:59:59 GMT"),
        (-0.5, "Wed, 31 Dec 1969 23:59:59 GMT"),  # floor, not truncation
        (253402300799, "Fri, 31 Dec 9999 23:59:59 GMT"),
        (1e300, "Fri, 31 Dec 9999 23:59:59 GMT"),  # clamped to a 4-digit year
        (math.inf, "Fri, 31 Dec 9999 23:59:59 GMT"),
        (-1e300, "Mon, 01 Jan 0001 00:00:00 GMT"),
        (math.nan, "Mon, 01 Jan 0001 00:00:00 GMT"),
    ],
)
def test_format_http_date(ts: float, expected: str) -> None:
    assert format_http_date(ts) == expected


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.text(alphabet="SunMoTeFriGMT, 0123456789:-"), st.none()))
def test_parse_http_date_never_raises(value: str | None) -> None:
    result = parse_http_date(value)
    assert result is None or math.isfinite(result)


@settings(max_examples=300, deadline=None)
@given(st.floats(min_value=-62135596800, max_value=253402300799, allow_nan=False))
def test_format_parse_round_trip(ts: float) -> None:
    text = format_http_date(ts)
    assert len(text) == 29
    assert parse_http_date(text) == math.floor(ts)
