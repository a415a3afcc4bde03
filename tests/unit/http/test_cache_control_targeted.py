"""Targeted cache-control fields (RFC 9213): CDN-Cache-Control as an RFC 8941 Dictionary
(http-sfv), ignored as a whole when invalid; Surrogate-Control keeps its legacy syntax."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.http.cache_control import MAX_DELTA_SECONDS, parse_targeted
from proxy.http.freshness import FreshnessPolicy, response_freshness, stale_when_disconnected

POLICY = FreshnessPolicy(targeted_fields=("cdn-cache-control", "surrogate-control"))
T0 = 1_700_000_000.0


def freshness(**fields: str):  # type: ignore[no-untyped-def]
    headers = {"date": "Tue, 14 Nov 2023 22:13:20 GMT"}
    headers.update({k.replace("_", "-"): v for k, v in fields.items()})
    return response_freshness(
        200,
        headers,
        request_time=T0,
        response_time=T0,
        has_authorization=False,
        policy=POLICY,
    )


@pytest.mark.parametrize(
    "value",
    [
        "max-age=10000, &&&&&",  # a parse error anywhere spoils the whole field
        'max-age="10000"',  # a string where an Integer belongs
        "max-age=-1",
        "max-age=3.5",
        "max-age",  # a Boolean
        "no-store=?0",
        "no-store=1",
        'must-revalidate="x"',
        "MAX-AGE=60",  # Dictionary keys are lower case
        "max-age=60, max-age",
        "max-age=1000000000000000",  # beyond an sf-integer's 15 digits
        "",
        " , ",
        "max-age=60\u00e9",
    ],
)
def test_an_invalid_field_is_ignored(value: str) -> None:
    assert parse_targeted("cdn-cache-control", value) is None
    # ... so it cannot override Cache-Control: no-store (the poisoning case)
    assert freshness(cache_control="no-store", cdn_cache_control=value).storable is False


@pytest.mark.parametrize(
    ("value", "max_age", "flags"),
    [
        ("max-age=60", 60, set()),
        ("max-age=60, no-store", 60, {"no_store"}),
        ("max-age=60;x=1, unknown=(1 2), other=@1", 60, set()),  # unknown things ignored
        ('private="set-cookie", no-cache', None, {"private", "no_cache"}),
        ("public, must-revalidate, max-age=0", 0, {"public", "must_revalidate"}),
        ("max-age=999999999999999", MAX_DELTA_SECONDS, set()),
        ("max-age=5, max-age=7", 7, set()),  # RFC 8941: the last value of a key wins
    ],
)
def test_a_valid_dictionary(value: str, max_age: int | None, flags: set[str]) -> None:
    cc = parse_targeted("cdn-cache-control", value)
    assert cc is not None and cc.max_age == max_age and not cc.invalid
    for flag in ("no_store", "no_cache", "private", "public", "must_revalidate"):
        assert getattr(cc, flag) is (flag in flags)


def test_a_valid_field_still_overrides_cache_control() -> None:
    f = freshness(cache_control="no-store", cdn_cache_control="max-age=900")
    assert f.storable and f.lifetime == 900


def test_an_invalid_field_falls_through_to_the_next_target() -> None:
    f = freshness(
        cache_control="max-age=60",
        cdn_cache_control='max-age="900"',
        surrogate_control="max-age=30",
    )
    assert f.lifetime == 30


def test_surrogate_control_keeps_the_cache_control_syntax() -> None:
    cc = parse_targeted("surrogate-control", 'max-age="30", MAX-AGE=30')
    assert cc is not None and cc.max_age == 30
    assert parse_targeted("surrogate-control", "max-age=abc") is None
    assert parse_targeted("surrogate-control", " , ") is None


def test_stale_when_disconnected_follows_rfc_9111_4_2_4() -> None:
    assert stale_when_disconnected(freshness(cache_control="max-age=60"))
    for cc in ("max-age=60, must-revalidate", "max-age=60, proxy-revalidate", "s-maxage=60"):
        assert not stale_when_disconnected(freshness(cache_control=cc))
    assert not stale_when_disconnected(freshness(cache_control="no-cache"))
    # the targeted field decides it for this cache
    assert not stale_when_disconnected(
        freshness(cache_control="max-age=60", cdn_cache_control="max-age=60, must-revalidate")
    )


# Bytes a header value can hold (latin-1), biased towards Dictionary syntax.
FIELD = st.one_of(
    st.binary(max_size=80).map(lambda b: b.decode("latin-1")),
    st.lists(
        st.sampled_from(
            [
                "max-age",
                "s-maxage",
                "no-store",
                "private",
                "=",
                "1",
                "-",
                '"',
                ",",
                ";",
                " ",
                "?0",
                "?1",
                "(",
                ")",
                "*",
                "10000",
                "&",
                "3.5",
                ":aGk=:",
                "stale-if-error",
            ]
        ),
        max_size=16,
    ).map("".join),
)


@settings(max_examples=600, deadline=None)
@given(value=FIELD)
def test_fuzz_never_raises_and_an_invalid_field_changes_nothing(value: str) -> None:
    cc = parse_targeted("cdn-cache-control", value)
    with_field = freshness(cache_control="no-store", cdn_cache_control=value)
    if cc is None:
        assert with_field == freshness(cache_control="no-store")
    else:  # a valid one replaces Cache-Control for this cache
        assert with_field == freshness(cache_control="max-age=5", cdn_cache_control=value)
    assert cc is None or not cc.invalid
