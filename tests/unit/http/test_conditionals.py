import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.http.conditionals import (
    evaluate_preconditions,
    if_range_matches,
    parse_etag_list,
    strong_match,
    weak_match,
)

LM = 784111777.0  # Sun, 06 Nov 1994 08:49:37 GMT
LM_TEXT = "Sun, 06 Nov 1994 08:49:37 GMT"
EARLIER = "Sat, 05 Nov 1994 08:49:37 GMT"
LATER = "Mon, 07 Nov 1994 08:49:37 GMT"
ONE_SECOND_LATER = "Sun, 06 Nov 1994 08:49:38 GMT"
ETAG = '"v1"'


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('"a"', ['"a"']),
        ('W/"a"', ['W/"a"']),
        ('""', ['""']),
        ('"a", "b"', ['"a"', '"b"']),
        ('"a","b"', ['"a"', '"b"']),
        (' "a" ,\tW/"b" ', ['"a"', 'W/"b"']),
        ('"a,b", "c"', ['"a,b"', '"c"']),  # comma is a valid etagc
        ('"xyzzy", "r2d2xxxx", "c3piozzzz"', ['"xyzzy"', '"r2d2xxxx"', '"c3piozzzz"']),
        (',,"a",,', ['"a"']),
        ('"\xe9t\xe9"', ['"\xe9t\xe9"']),  # obs-text
        ("*", "*"),
        (" * ", "*"),
        ("", []),
        ("   ", []),
        # Malformed members are skipped, the rest kept.
        ("a", []),
        ('"a', []),
        ('"a", b, "c"', ['"a"', '"c"']),
        ('w/"a", "b"', ['"b"']),  # the weak prefix is case-sensitive
        ('"a b"', []),
        ('"a"x, "b"', ['"b"']),
        ('"a""b"', []),
        ('"a\x00"', []),
        ('*, "a"', ['"a"']),
        ('W/ "a"', []),
        ('"\u20ac"', []),  # beyond obs-text
    ],
)
def test_parse_etag_list(value: str, expected: object) -> None:
    assert parse_etag_list(value) == expected


# RFC 9110 8.8.3.2 comparison table.
@pytest.mark.parametrize(
    ("a", "b", "strong", "weak"),
    [
        ('W/"1"', 'W/"1"', False, True),
        ('W/"1"', 'W/"2"', False, False),
        ('W/"1"', '"1"', False, True),
        ('"1"', 'W/"1"', False, True),
        ('"1"', '"1"', True, True),
        ('"1"', '"2"', False, False),
    ],
)
def test_etag_comparison(a: str, b: str, strong: bool, weak: bool) -> None:
    assert strong_match(a, b) is strong
    assert weak_match(a, b) is weak


@pytest.mark.parametrize(
    ("method", "headers", "etag", "lm", "expected"),
    [
        ("GET", {}, ETAG, LM, None),
        # Step 1: If-Match, strong comparison.
        ("GET", {"if-match": '"v1"'}, ETAG, LM, None),
        ("GET", {"if-match": '"v2"'}, ETAG, LM, 412),
        ("GET", {"if-match": '"v2", "v1"'}, ETAG, LM, None),
        ("GET", {"if-match": "*"}, ETAG, LM, None),
        ("GET", {"if-match": "*"}, None, LM, None),
        ("GET", {"if-match": '"v1"'}, None, LM, 412),
        ("GET", {"if-match": 'W/"v1"'}, ETAG, LM, 412),
        ("GET", {"if-match": 'W/"v1"'}, 'W/"v1"', LM, 412),  # weak never matches strongly
        ("GET", {"if-match": "garbage"}, ETAG, LM, 412),
        ("PUT", {"if-match": '"v2"'}, ETAG, LM, 412),
        # Step 2: If-Unmodified-Since, only without If-Match.
        ("GET", {"if-unmodified-since": LM_TEXT}, ETAG, LM, None),
        ("GET", {"if-unmodified-since": LATER}, ETAG, LM, None),
        ("GET", {"if-unmodified-since": EARLIER}, ETAG, LM, 412),
        ("GET", {"if-unmodified-since": "not a date"}, ETAG, LM, None),
        ("GET", {"if-unmodified-since": EARLIER}, ETAG, None, None),
        ("GET", {"if-match": '"v1"', "if-unmodified-since": EARLIER}, ETAG, LM, None),
        # Step 3: If-None-Match, weak comparison.
        ("GET", {"if-none-match": '"v1"'}, ETAG, LM, 304),
        ("HEAD", {"if-none-match": '"v1"'}, ETAG, LM, 304),
        ("GET", {"if-none-match": 'W/"v1"'}, ETAG, LM, 304),
        ("GET", {"if-none-match": '"v1"'}, 'W/"v1"', LM, 304),
        ("GET", {"if-none-match": '"a", "b", "v1"'}, ETAG, LM, 304),
        ("GET", {"if-none-match": '"v2"'}, ETAG, LM, None),
        ("GET", {"if-none-match": '"v1"'}, None, LM, None),
        ("GET", {"if-none-match": "*"}, ETAG, LM, 304),
        ("POST", {"if-none-match": '"v1"'}, ETAG, LM, 412),
        ("PUT", {"if-none-match": "*"}, ETAG, LM, 412),
        ("get", {"if-none-match": '"v1"'}, ETAG, LM, 412),  # methods are case-sensitive
        # If-None-Match present: If-Modified-Since is not consulted (either way).
        ("GET", {"if-none-match": '"v2"', "if-modified-since": LATER}, ETAG, LM, None),
        ("GET", {"if-none-match": '"v1"', "if-modified-since": EARLIER}, ETAG, LM, 304),
        # Step 4: If-Modified-Since, GET/HEAD only.
        ("GET", {"if-modified-since": LM_TEXT}, ETAG, LM, 304),
        ("HEAD", {"if-modified-since": LATER}, ETAG, LM, 304),
        ("GET", {"if-modified-since": EARLIER}, ETAG, LM, None),
        ("GET", {"if-modified-since": "Sunday, 06-Nov-94 08:49:37 GMT"}, ETAG, LM, 304),
        ("GET", {"if-modified-since": "Sun Nov  6 08:49:37 1994"}, ETAG, LM, 304),
        ("POST", {"if-modified-since": LATER}, ETAG, LM, None),
        ("GET", {"if-modified-since": "garbage"}, ETAG, LM, None),
        ("GET", {"if-modified-since": f"{LATER}, {LATER}"}, ETAG, LM, None),  # two members
        ("GET", {"if-modified-since": LATER}, ETAG, None, None),
        # Order between steps.
        ("GET", {"if-match": '"v2"', "if-none-match": '"v1"'}, ETAG, LM, 412),
        ("GET", {"if-match": '"v1"', "if-none-match": '"v1"'}, ETAG, LM, 304),
        ("GET", {"if-unmodified-since": EARLIER, "if-modified-since": LATER}, ETAG, LM, 412),
        ("GET", {"if-unmodified-since": LATER, "if-modified-since": LATER}, ETAG, LM, 304),
    ],
)
def test_evaluate_preconditions(
    method: str, headers: dict[str, str], etag: str | None, lm: float | None, expected: int | None
) -> None:
    assert evaluate_preconditions(method, headers, etag, lm) == expected


@pytest.mark.parametrize(
    ("value", "etag", "lm", "expected"),
    [
        (None, ETAG, LM, True),  # no If-Range: honour Range
        ('"v1"', ETAG, LM, True),
        (' "v1" ', ETAG, LM, True),
        ('"v2"', ETAG, LM, False),
        ('"v1"', None, LM, False),
        ('W/"v1"', 'W/"v1"', LM, False),  # weak tags never match for If-Range
        ('"v1"', 'W/"v1"', LM, False),
        ('"v1", "v2"', ETAG, LM, False),  # a single entity-tag only
        ('"v1', ETAG, LM, False),
        (LM_TEXT, ETAG, LM, True),
        (ONE_SECOND_LATER, ETAG, LM, False),  # exact match, not "not modified since"
        (EARLIER, ETAG, LM, False),
        (LM_TEXT, ETAG, None, False),
        ("garbage", ETAG, LM, False),
        ("", ETAG, LM, False),
    ],
)
def test_if_range_matches(
    value: str | None, etag: str | None, lm: float | None, expected: bool
) -> None:
    assert if_range_matches(value, etag, lm) is expected


_ETAG_RE = re.compile(r'(?:W/)?"[\x21\x23-\x7e\x80-\xff]*"')


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.text(alphabet='W/"ab, \t*\\')))
def test_parse_etag_list_never_raises(value: str) -> None:
    result = parse_etag_list(value)
    if result == "*":
        assert value.strip(" \t") == "*"
        return
    for tag in result:
        assert _ETAG_RE.fullmatch(tag)
        assert tag in value
