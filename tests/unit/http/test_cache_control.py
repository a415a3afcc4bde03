from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.http.cache_control import EMPTY, CacheControl, parse_cache_control

CAP = 2**31  # RFC 9111 1.2.1


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, {}),
        ("", {}),
        (" , ,", {}),
        ("max-age=3600", {"max_age": 3600}),
        ("max-age=0", {"max_age": 0}),
        ("max-age=007", {"max_age": 7}),  # 1*DIGIT allows leading zeros
        ("MAX-AGE=60", {"max_age": 60}),  # directive names are case-insensitive
        ("Max-Age=60, S-MaxAge=30", {"max_age": 60, "s_maxage": 30}),
        ('max-age="60"', {"max_age": 60}),  # RFC 9111 5.2: accept quoted form too
        ("max-age = 60", {"max_age": 60}),  # stray whitespace around "=" tolerated
        (
            "public, max-age=31536000, immutable",
            {"public": True, "max_age": 31536000, "immutable": True},
        ),
        ("no-store", {"no_store": True}),
        ("no-cache", {"no_cache": True}),
        ('no-cache="Set-Cookie"', {"no_cache": True}),  # qualified form: treat as no-cache
        ('no-cache="set-cookie, x-a", max-age=5', {"no_cache": True, "max_age": 5}),
        ("private", {"private": True}),
        ('private="Set-Cookie"', {"private": True}),
        ('private="a,b,c", public', {"private": True, "public": True}),
        ("must-revalidate", {"must_revalidate": True}),
        ("proxy-revalidate", {"proxy_revalidate": True}),
        ("no-transform", {"no_transform": True}),
        ("s-maxage=120", {"s_maxage": 120}),
        (
            "max-age=600, stale-while-revalidate=30, stale-if-error=86400",
            {"max_age": 600, "stale_while_revalidate": 30, "stale_if_error": 86400},
        ),
        ('stale-if-error="10"', {"stale_if_error": 10}),
        # Multiple field lines arrive joined with ", ".
        ("max-age=60, no-transform", {"max_age": 60, "no_transform": True}),
        # Empty items and odd whitespace are not errors.
        (",,max-age=60,, ,public,", {"max_age": 60, "public": True}),
        ("\tmax-age=60\t,\tpublic", {"max_age": 60, "public": True}),
        # Unknown directives and extensions are ignored (RFC 9111 5.2.3).
        ("community=UCI, max-age=60", {"max_age": 60}),
        ('foo="bar, max-age=1", max-age=60', {"max_age": 60}),  # comma inside quotes
        ("must-understand, no-store", {"no_store": True}),
        ("max-stale=10, min-fresh=5, only-if-cached", {}),
        # Delta-seconds overflow is capped, not rejected (RFC 9111 1.2.1).
        ("max-age=2147483648", {"max_age": CAP}),
        ("max-age=2147483649", {"max_age": CAP}),
        ("max-age=99999999999999999999999999", {"max_age": CAP}),
        ("max-age=" + "9" * 5000, {"max_age": CAP}),
        ("s-maxage=4294967296", {"s_maxage": CAP}),
        # Malformed freshness: invalid (=> stale), value dropped.
        ("max-age=-1", {"invalid": True}),
        ("max-age=1.5", {"invalid": True}),
        ("max-age=abc", {"invalid": True}),
        ("max-age=", {"invalid": True}),
        ("max-age", {"invalid": True}),
        ('max-age=""', {"invalid": True}),
        ("max-age=+5", {"invalid": True}),
        ("max-age=1e3", {"invalid": True}),
        ("max-age=\u0665", {"invalid": True}),  # non-ASCII digit
        ("max-age=60 s", {"invalid": True}),
        ("s-maxage=x, max-age=60", {"invalid": True, "max_age": 60}),
        # Duplicates: same value is fine, different values make it invalid (first kept).
        ("max-age=60, max-age=60", {"max_age": 60}),
        ("max-age=60, max-age=060", {"max_age": 60}),
        ("max-age=60, max-age=120", {"max_age": 60, "invalid": True}),
        ("s-maxage=1, s-maxage=2", {"s_maxage": 1, "invalid": True}),
        ("max-age=60, max-age=x", {"max_age": 60, "invalid": True}),
        # Malformed stale-* count as 0; repeats keep the smallest.
        ("stale-while-revalidate=x", {"stale_while_revalidate": 0}),
        ("stale-while-revalidate", {"stale_while_revalidate": 0}),
        ("stale-if-error=-5", {"stale_if_error": 0}),
        ("stale-if-error=60, stale-if-error=30", {"stale_if_error": 30}),
        ("stale-while-revalidate=99999999999", {"stale_while_revalidate": CAP}),
        # Unterminated quoted-string: best effort, no exception.
        ('private="abc, max-age=60', {"private": True}),
        ('max-age="60', {"max_age": 60}),
        ('max-age="6\\0"', {"max_age": 60}),  # quoted-pair unescaped
    ],
)
def test_parse_cache_control(value: str | None, expected: dict[str, Any]) -> None:
    assert parse_cache_control(value) == CacheControl(**expected)


def test_empty_is_default() -> None:
    assert parse_cache_control(None) is EMPTY
    expected = CacheControl(
        max_age=None,
        s_maxage=None,
        no_store=False,
        no_cache=False,
        private=False,
        public=False,
        must_revalidate=False,
        proxy_revalidate=False,
        immutable=False,
        no_transform=False,
        stale_while_revalidate=None,
        stale_if_error=None,
        invalid=False,
    )
    assert expected == EMPTY


_DIRECTIVE = st.one_of(
    st.sampled_from(
        ["max-age", "s-maxage", "no-cache", "private", "stale-if-error", "stale-while-revalidate"]
    ),
    st.text(max_size=8),
)
_ARG = st.one_of(
    st.integers(min_value=-10, max_value=10**25).map(str),
    st.text(max_size=8),
    st.text(max_size=8).map(lambda s: f'"{s}"'),
)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(),
        st.lists(st.tuples(_DIRECTIVE, _ARG)).map(
            lambda items: ", ".join(f"{d}={a}" for d, a in items)
        ),
    )
)
def test_parse_cache_control_never_raises(value: str) -> None:
    cc = parse_cache_control(value)
    for secs in (cc.max_age, cc.s_maxage, cc.stale_while_revalidate, cc.stale_if_error):
        assert secs is None or 0 <= secs <= CAP
