"""Accept-Encoding negotiation and the compressible-response rules (proxy/http/encoding.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.http.encoding import (
    MAX_MEMBERS,
    Policy,
    acceptable,
    content_coding,
    encoded_etag,
    negotiate,
    parse_accept_encoding,
    type_matches,
)
from proxy.http.vary import normalize_accept_encoding

TYPES = (
    "text/*",
    "application/json",
    "application/*+json",
    "application/*+xml",
    "image/svg+xml",
    "application/vnd.apple.mpegurl",
    "audio/mpegurl",
    "application/dash+xml",
)
POLICY = Policy(TYPES, 1024, 10 * 1024 * 1024, ("br", "zstd", "gzip"))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("gzip", "gzip"),
        ("gzip, deflate, br", "br"),
        ("gzip, deflate, br, zstd", "br"),
        ("zstd, gzip", "zstd"),
        ("x-gzip", "gzip"),
        ("GZIP", "gzip"),
        ("gzip;q=1.0, br;q=0.8", "gzip"),
        ("br;q=0.5, gzip;q=0.5", "br"),  # a tie: br, zstd, gzip
        ("*", "br"),
        ("*;q=0", None),
        ("br;q=0, *", "zstd"),
        ("gzip;q=0, br;q=0, zstd;q=0", None),
        ("identity;q=0", None),  # nothing acceptable: identity anyway
        ("identity;q=0, deflate", None),
        ("gzip;q=0.4, identity;q=0.9", None),  # identity weighted above
        ("gzip;q=0.4", "gzip"),  # identity not weighted: the coding
        ("gzip;q=0.9, identity;q=0.9", "gzip"),  # a tie with identity: compress
        ("gzip;q=abc", None),  # malformed q: not acceptable
        ("gzip;q=2", "gzip"),  # a plain number past 1 is read as 1
        ("gzip;q=-1", None),
        ("gzip;q=0.001", "gzip"),
        ("gzip, gzip;q=0", "gzip"),  # the first mention wins
        (" , ,gzip ; q = 0.5 ,", "gzip"),
        ("deflate, compress", None),
    ],
)
def test_negotiate(value: str | None, expected: str | None) -> None:
    assert negotiate(value) == expected


def test_offered_codings_limit_the_choice() -> None:
    assert negotiate("br, gzip", ("gzip",)) == "gzip"
    assert negotiate("br", ("gzip", "zstd")) is None


@pytest.mark.parametrize(
    ("value", "coding", "ok"),
    [
        (None, "gzip", False),
        ("", "gzip", False),
        ("gzip", "gzip", True),
        ("x-gzip", "gzip", True),
        ("br", "gzip", False),
        ("*", "gzip", True),
        ("*;q=0", "gzip", False),
        ("gzip;q=0", "gzip", False),
        (None, "identity", True),
        ("identity;q=0", "identity", True),
        ("deflate", "deflate", True),
    ],
)
def test_acceptable(value: str | None, coding: str, ok: bool) -> None:
    assert acceptable(value, coding) is ok


def test_members_past_the_limit_are_ignored() -> None:
    value = ", ".join(f"x{i}" for i in range(MAX_MEMBERS)) + ", gzip"
    assert len(parse_accept_encoding(value)) == MAX_MEMBERS
    assert negotiate(value) is None


@given(st.text(max_size=300))
def test_any_field_parses_to_a_choice_among_the_offers(value: str) -> None:
    choice = negotiate(value)
    assert choice in (None, "br", "zstd", "gzip")
    table = parse_accept_encoding(value)
    assert all(0.0 <= q <= 1.0 for q in table.values())
    assert len(table) <= MAX_MEMBERS
    if choice is not None:
        assert acceptable(value, choice)


codings = st.sampled_from(["gzip", "br", "zstd", "deflate", "identity", "*", "x-gzip", "GZip"])
qvalues = st.one_of(
    st.none(),
    st.floats(min_value=0, max_value=1).map(lambda q: f"{q:.3f}"),
    st.sampled_from(["1", "0", "1.000", "0.", "abc", "", "1e3", "-0.5", "2"]),
)


@given(st.lists(st.tuples(codings, qvalues), max_size=12))
def test_agrees_with_the_variant_key_on_what_is_acceptable(
    members: list[tuple[str, str | None]],
) -> None:
    """What the cache keys origin-negotiated variants by (proxy/http/vary.py) and what is
    sent agree: a coding chosen here is one the variant key counts as acceptable."""
    value = ", ".join(c if q is None else f"{c};q={q}" for c, q in members)
    choice = negotiate(value)
    assert choice is None or choice in normalize_accept_encoding(value).split(",")


def test_an_encoded_etag_names_its_coding() -> None:
    assert encoded_etag('"v1"', "gzip") == '"v1-gzip"'
    assert encoded_etag('W/"v1"', "br") == 'W/"v1-br"'
    assert encoded_etag(None, "br") is None
    assert encoded_etag("bogus", "br") is None


def test_content_coding() -> None:
    assert content_coding(None) is None
    assert content_coding("identity") is None
    assert content_coding(" GZIP ") == "gzip"
    assert content_coding("gzip, br") == "gzip, br"


@pytest.mark.parametrize(
    ("content_type", "ok"),
    [
        ("text/html; charset=utf-8", True),
        ("text/vtt", True),
        ("application/json", True),
        ("application/ld+json", True),
        ("application/atom+xml", True),
        ("application/dash+xml", True),
        ("image/svg+xml", True),
        ("Application/VND.Apple.MPEGURL", True),
        ("audio/mpegurl", True),
        ("text/event-stream", False),
        ("image/png", False),
        ("video/mp4", False),
        ("audio/mpeg", False),
        ("application/octet-stream", False),
        ("application/+json", False),
        ("", False),
        (None, False),
        ("json", False),
    ],
)
def test_types(content_type: str | None, ok: bool) -> None:
    assert type_matches(content_type, TYPES) is ok


def test_policy_rules() -> None:
    ok = POLICY.applies
    assert ok(200, "text/plain", None, "max-age=60", 5000)
    assert ok(200, "text/plain", "identity", None, None)  # size not known yet
    assert not ok(200, "text/plain", None, None, 1023)  # below the floor
    assert not ok(200, "text/plain", None, None, 10 * 1024 * 1024 + 1)
    assert not ok(206, "text/plain", None, None, 5000)
    assert not ok(200, "text/plain", "gzip", None, 5000)
    assert not ok(200, "text/plain", None, "public, No-Transform", 5000)
    assert not ok(200, "image/jpeg", None, None, 5000)
    assert POLICY.may_apply("text/css", 2048) and not POLICY.may_apply("text/css", 10)
