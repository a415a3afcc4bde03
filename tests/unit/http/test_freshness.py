"""RFC 9111 storability, lifetime and age arithmetic, computed by hand.

Clock for every row unless stated: the request leaves at T0 - 1, the response arrives at
T0 + 1 (response_delay = 2) carrying Date: T0, so apparent_age = 1 and, without Age,
corrected_initial_age = max(1, 0 + 2) = 2.
"""

from dataclasses import replace

import pytest

from proxy.http.freshness import (
    Freshness,
    FreshnessPolicy,
    response_freshness,
)

T0 = 1_700_000_000.0
D0 = "Tue, 14 Nov 2023 22:13:20 GMT"  # T0
D0_PLUS_60 = "Tue, 14 Nov 2023 22:14:20 GMT"
D0_PLUS_1H = "Tue, 14 Nov 2023 23:13:20 GMT"
D0_MINUS_1H = "Tue, 14 Nov 2023 21:13:20 GMT"
D0_MINUS_1D = "Mon, 13 Nov 2023 22:13:20 GMT"
D0_MINUS_10D = "Sat, 04 Nov 2023 22:13:20 GMT"

POLICY = FreshnessPolicy(
    default_ttl=None,
    override_ttl=None,
    negative_ttl=30.0,
    heuristic_fraction=0.1,
    heuristic_max=86400.0,
    stale_while_revalidate=5.0,
    stale_if_error=60.0,
    targeted_fields=("cdn-cache-control", "surrogate-control"),
)


def fresh(lifetime: float, *, age: float = 2.0, swr: float = 5.0, sie: float = 60.0) -> Freshness:
    return Freshness(True, "", lifetime, age, swr, sie, False, False)


def revalidate(lifetime: float, *, age: float = 2.0) -> Freshness:
    """must-revalidate / proxy-revalidate / s-maxage: no stale windows."""
    return Freshness(True, "", lifetime, age, 0.0, 0.0, True, False)


def no_cache(*, age: float = 2.0, must: bool = False) -> Freshness:
    return Freshness(True, "", 0.0, age, 0.0, 0.0, must, True)


def refused(reason: str, *, age: float = 2.0) -> Freshness:
    return Freshness(False, reason, 0.0, age, 0.0, 0.0, False, False)


def h(**fields: str | None) -> dict[str, str]:
    """Response header fields; Date: T0 unless given (date=None drops it)."""
    out = {"date": D0}
    for name, value in fields.items():
        key = name.replace("_", "-")
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


ROWS = [
    # --- RFC 9111 4.2.1 lifetime precedence -------------------------------------------------
    pytest.param(200, h(cache_control="max-age=600"), False, POLICY, fresh(600), id="max-age"),
    pytest.param(
        200,
        h(cache_control="max-age=600, s-maxage=300"),
        False,
        POLICY,
        revalidate(300),
        id="s-maxage-beats-max-age-and-implies-proxy-revalidate",
    ),
    pytest.param(
        200,
        h(cache_control="s-maxage=900", expires=D0_PLUS_1H),
        False,
        POLICY,
        revalidate(900),
        id="s-maxage-beats-expires",
    ),
    pytest.param(
        200,
        h(cache_control="max-age=600", expires=D0_PLUS_1H),
        False,
        POLICY,
        fresh(600),
        id="max-age-beats-expires",
    ),
    pytest.param(200, h(expires=D0_PLUS_1H), False, POLICY, fresh(3600), id="expires-minus-date"),
    pytest.param(
        200,
        h(expires=D0_PLUS_1H, date=None),
        False,
        POLICY,
        fresh(3599, age=2),
        id="expires-without-date-uses-response-time",  # date_value = T0+1, apparent_age 0
    ),
    pytest.param(200, h(expires="0"), False, POLICY, fresh(0), id="invalid-expires-is-stale"),
    pytest.param(200, h(expires=D0_MINUS_1H), False, POLICY, fresh(0), id="expires-in-past"),
    pytest.param(
        200,
        h(expires=f"{D0_PLUS_1H}, {D0_PLUS_1H}"),
        False,
        POLICY,
        fresh(0),
        id="repeated-expires-is-stale",
    ),
    pytest.param(
        200,
        h(expires=D0_PLUS_1H, last_modified=D0_MINUS_1D),
        False,
        POLICY,
        fresh(3600),
        id="explicit-expires-means-no-heuristic",
    ),
    pytest.param(
        200,
        h(last_modified=D0_MINUS_1D),
        False,
        POLICY,
        fresh(8640),
        id="heuristic-10pct-of-one-day",
    ),
    pytest.param(
        200,
        h(last_modified=D0_MINUS_10D),
        False,
        replace(POLICY, heuristic_max=3600.0),
        fresh(3600),
        id="heuristic-capped",
    ),
    pytest.param(
        200,
        h(last_modified=D0_MINUS_10D),
        False,
        POLICY,
        fresh(86400),
        id="heuristic-10-days-hits-default-cap",
    ),
    pytest.param(
        200,
        h(last_modified=D0),
        False,
        POLICY,
        fresh(0),
        id="heuristic-modified-at-date",
    ),
    pytest.param(
        200,
        h(last_modified=D0_PLUS_60),
        False,
        POLICY,
        refused("no-freshness"),
        id="last-modified-after-date-gives-no-heuristic",
    ),
    pytest.param(
        200,
        h(last_modified="yesterday"),
        False,
        POLICY,
        refused("no-freshness"),
        id="invalid-last-modified",
    ),
    pytest.param(200, h(), False, POLICY, refused("no-freshness"), id="nothing-to-go-on"),
    pytest.param(
        200,
        h(),
        False,
        replace(POLICY, default_ttl=120.0),
        fresh(120),
        id="default-ttl",
    ),
    pytest.param(
        200,
        h(last_modified=D0_MINUS_1D),
        False,
        replace(POLICY, default_ttl=120.0),
        fresh(120),
        id="default-ttl-beats-heuristic",
    ),
    pytest.param(
        200,
        h(cache_control="max-age=10"),
        False,
        replace(POLICY, default_ttl=120.0),
        fresh(10),
        id="explicit-beats-default-ttl",
    ),
    # --- negative caching --------------------------------------------------------------------
    pytest.param(404, h(), False, POLICY, fresh(30), id="404-negative-ttl"),
    pytest.param(410, h(), False, POLICY, fresh(30), id="410-negative-ttl"),
    pytest.param(
        404,
        h(),
        False,
        replace(POLICY, default_ttl=120.0),
        fresh(30),
        id="negative-ttl-beats-default-ttl",
    ),
    pytest.param(
        404,
        h(cache_control="max-age=5"),
        False,
        POLICY,
        fresh(5),
        id="404-explicit-max-age",
    ),
    pytest.param(
        404,
        h(expires=D0_PLUS_60),
        False,
        POLICY,
        fresh(60),
        id="404-explicit-expires",
    ),
    # --- status codes (RFC 9111 3, RFC 9110 15.1) -------------------------------------------
    pytest.param(203, h(last_modified=D0_MINUS_1D), False, POLICY, fresh(8640), id="203-heuristic"),
    pytest.param(204, h(cache_control="max-age=60"), False, POLICY, fresh(60), id="204"),
    pytest.param(206, h(cache_control="max-age=60"), False, POLICY, fresh(60), id="206"),
    pytest.param(300, h(last_modified=D0_MINUS_1D), False, POLICY, fresh(8640), id="300"),
    pytest.param(301, h(), False, replace(POLICY, default_ttl=120.0), fresh(120), id="301-default"),
    pytest.param(308, h(last_modified=D0_MINUS_1D), False, POLICY, fresh(8640), id="308"),
    pytest.param(405, h(), False, replace(POLICY, default_ttl=50.0), fresh(50), id="405"),
    pytest.param(414, h(), False, replace(POLICY, default_ttl=50.0), fresh(50), id="414"),
    pytest.param(501, h(last_modified=D0_MINUS_1D), False, POLICY, fresh(8640), id="501"),
    pytest.param(302, h(), False, replace(POLICY, default_ttl=120.0), refused("status"), id="302"),
    pytest.param(302, h(cache_control="max-age=60"), False, POLICY, fresh(60), id="302-explicit"),
    pytest.param(
        307,
        h(last_modified=D0_MINUS_1D),
        False,
        POLICY,
        refused("status"),
        id="307-not-heuristic",
    ),
    pytest.param(
        403,
        h(cache_control="public"),
        False,
        replace(POLICY, default_ttl=120.0),
        refused("status"),
        id="public-alone-does-not-admit-other-statuses",
    ),
    pytest.param(500, h(), False, replace(POLICY, default_ttl=120.0), refused("status"), id="500"),
    pytest.param(500, h(cache_control="max-age=10"), False, POLICY, fresh(10), id="500-explicit"),
    pytest.param(503, h(expires=D0_PLUS_60), False, POLICY, fresh(60), id="503-expires"),
    pytest.param(
        502,
        h(last_modified=D0_MINUS_1D),
        False,
        POLICY,
        refused("status"),
        id="502-heuristic",
    ),
    pytest.param(
        503,
        h(cache_control="no-cache"),
        False,
        POLICY,
        refused("status"),
        id="no-cache-is-not-explicit-freshness",
    ),
    pytest.param(
        304,
        h(cache_control="max-age=60"),
        False,
        POLICY,
        refused("status"),
        id="304",
    ),
    pytest.param(100, h(cache_control="max-age=60"), False, POLICY, refused("status"), id="1xx"),
    pytest.param(199, h(cache_control="max-age=60"), False, POLICY, refused("status"), id="199"),
    pytest.param(600, h(cache_control="max-age=60"), False, POLICY, refused("status"), id="600"),
    # --- storage prohibitions ----------------------------------------------------------------
    pytest.param(
        200, h(cache_control="no-store"), False, POLICY, refused("no-store"), id="no-store"
    ),
    pytest.param(
        200,
        h(cache_control="max-age=60, NO-STORE"),
        False,
        POLICY,
        refused("no-store"),
        id="no-store-wins",
    ),
    pytest.param(
        200,
        h(cache_control="no-store"),
        False,
        replace(POLICY, override_ttl=100.0),
        refused("no-store"),
        id="override-does-not-beat-no-store",
    ),
    pytest.param(200, h(cache_control="private"), False, POLICY, refused("private"), id="private"),
    pytest.param(
        200,
        h(cache_control='private="set-cookie", max-age=60'),
        False,
        POLICY,
        refused("private"),
        id="qualified-private",
    ),
    pytest.param(
        200,
        h(cache_control="public, private, max-age=60"),
        False,
        POLICY,
        refused("private"),
        id="private-beats-public",
    ),
    pytest.param(
        200,
        h(cache_control="max-age=60", vary="*"),
        False,
        POLICY,
        refused("vary-star"),
        id="vary-star",
    ),
    pytest.param(
        200,
        h(cache_control="max-age=60", vary="Accept-Encoding, *"),
        False,
        POLICY,
        refused("vary-star"),
        id="vary-star-in-list",
    ),
    pytest.param(
        200,
        h(cache_control="max-age=60", vary="Accept-Encoding"),
        False,
        POLICY,
        fresh(60),
        id="vary-field",
    ),
    pytest.param(
        200,
        h(cache_control="max-age=60", set_cookie="a=b"),
        False,
        POLICY,
        refused("set-cookie"),
        id="set-cookie",
    ),
    pytest.param(
        200,
        h(cache_control="public, s-maxage=60", set_cookie="a=b"),
        False,
        POLICY,
        refused("set-cookie"),
        id="set-cookie-even-if-public",
    ),
    # --- Authorization (RFC 9111 3.5) --------------------------------------------------------
    pytest.param(
        200,
        h(cache_control="max-age=60"),
        True,
        POLICY,
        refused("authorization"),
        id="auth",
    ),
    pytest.param(200, h(), True, POLICY, refused("authorization"), id="auth-no-directives"),
    pytest.param(
        200,
        h(cache_control="public, max-age=60"),
        True,
        POLICY,
        fresh(60),
        id="auth-public",
    ),
    pytest.param(
        200,
        h(cache_control="s-maxage=60"),
        True,
        POLICY,
        revalidate(60),
        id="auth-s-maxage",
    ),
    pytest.param(
        200,
        h(cache_control="must-revalidate, max-age=60"),
        True,
        POLICY,
        revalidate(60),
        id="auth-must-revalidate",
    ),
    pytest.param(
        200,
        h(cache_control="proxy-revalidate, max-age=60"),
        True,
        POLICY,
        refused("authorization"),
        id="auth-proxy-revalidate-is-not-enough",
    ),
    # --- Age arithmetic (RFC 9111 4.2.3) ----------------------------------------------------
    pytest.param(
        200,
        h(cache_control="max-age=600", age="100"),
        False,
        POLICY,
        fresh(600, age=102),
        id="age-plus-response-delay",
    ),
    pytest.param(
        200,
        h(cache_control="max-age=600", date=D0_MINUS_1H, age="100"),
        False,
        POLICY,
        fresh(600, age=3601),
        id="apparent-age-dominates",  # T0+1 - (T0-3600)
    ),
    pytest.param(
        200,
        h(cache_control="max-age=600", date=D0_PLUS_60),
        False,
        POLICY,
        fresh(600, age=2),
        id="date-in-future-apparent-age-zero",
    ),
    pytest.param(
        200,
        h(cache_control="max-age=600", age="abc"),
        False,
        POLICY,
        fresh(600, age=2),
        id="invalid-age-is-zero",
    ),
    pytest.param(
        200,
        h(cache_control="max-age=600", age="-5"),
        False,
        POLICY,
        fresh(600, age=2),
        id="negative-age-is-invalid",
    ),
    pytest.param(
        200,
        h(cache_control="max-age=600", age="100, 200"),
        False,
        POLICY,
        fresh(600, age=102),
        id="repeated-age-first-wins",
    ),
    pytest.param(
        200,
        h(cache_control="max-age=600", age="99999999999"),
        False,
        POLICY,
        fresh(600, age=2**31 + 2),
        id="age-capped-at-2-31",
    ),
    # --- targeted fields (RFC 9213) -----------------------------------------------------------
    pytest.param(
        200,
        h(cache_control="max-age=60", cdn_cache_control="max-age=900"),
        False,
        POLICY,
        fresh(900),
        id="cdn-cache-control-replaces-cache-control",
    ),
    pytest.param(
        200,
        h(cache_control="no-store", cdn_cache_control="max-age=900"),
        False,
        POLICY,
        fresh(900),
        id="cdn-cache-control-even-over-no-store",
    ),
    pytest.param(
        200,
        h(cache_control="max-age=900", cdn_cache_control="no-store"),
        False,
        POLICY,
        refused("no-store"),
        id="cdn-no-store",
    ),
    pytest.param(
        200,
        h(cdn_cache_control="max-age=900", surrogate_control="max-age=30"),
        False,
        POLICY,
        fresh(900),
        id="first-target-wins",
    ),
    pytest.param(
        200,
        h(cache_control="max-age=60", surrogate_control="max-age=30"),
        False,
        POLICY,
        fresh(30),
        id="second-target",
    ),
    pytest.param(
        200,
        h(cache_control="max-age=60", cdn_cache_control=" , "),
        False,
        POLICY,
        fresh(60),
        id="empty-target-ignored",
    ),
    pytest.param(
        200,
        h(
            cache_control="max-age=60",
            cdn_cache_control="max-age=abc",
            surrogate_control="max-age=30",
        ),
        False,
        POLICY,
        fresh(30),
        id="invalid-target-falls-through",
    ),
    pytest.param(
        200,
        h(cdn_cache_control="public", expires=D0_PLUS_1H),
        False,
        POLICY,
        refused("no-freshness"),
        id="target-also-replaces-expires",
    ),
    pytest.param(
        200,
        h(cache_control="private", cdn_cache_control="max-age=900"),
        True,
        POLICY,
        refused("authorization"),
        id="target-decides-authorization-too",
    ),
    pytest.param(
        200,
        h(cache_control="max-age=60", cdn_cache_control="max-age=900"),
        False,
        replace(POLICY, targeted_fields=()),
        fresh(60),
        id="no-targets-configured",
    ),
    pytest.param(
        200,
        h(cdn_cache_control="max-age=60, stale-while-revalidate=30"),
        False,
        POLICY,
        fresh(60, swr=30),
        id="target-stale-while-revalidate",
    ),
    pytest.param(
        200,
        h(cdn_cache_control="s-maxage=60, stale-if-error=30"),
        False,
        POLICY,
        revalidate(60),
        id="target-s-maxage",
    ),
    # --- no-cache: storable, never fresh -----------------------------------------------------
    pytest.param(200, h(cache_control="no-cache"), False, POLICY, no_cache(), id="no-cache"),
    pytest.param(
        200,
        h(cache_control="no-cache, max-age=600"),
        False,
        POLICY,
        no_cache(),
        id="no-cache-most-restrictive",
    ),
    pytest.param(
        200,
        h(cache_control='no-cache="set-cookie", max-age=600'),
        False,
        POLICY,
        no_cache(),
        id="qualified-no-cache",
    ),
    pytest.param(
        200,
        h(cache_control="no-cache, stale-if-error=600"),
        False,
        POLICY,
        no_cache(),
        id="no-cache-has-no-stale-window",
    ),
    pytest.param(
        200,
        h(cache_control="no-cache"),
        False,
        replace(POLICY, override_ttl=100.0),
        no_cache(),
        id="override-does-not-beat-no-cache",
    ),
    pytest.param(
        200,
        h(cache_control="no-cache, must-revalidate"),
        False,
        POLICY,
        no_cache(must=True),
        id="no-cache-must-revalidate",
    ),
    # --- invalid freshness: stored, stale ----------------------------------------------------
    pytest.param(
        200,
        h(cache_control="max-age=abc"),
        False,
        POLICY,
        fresh(0),
        id="invalid-max-age",
    ),
    pytest.param(
        200,
        h(cache_control="max-age=60, max-age=120"),
        False,
        POLICY,
        fresh(0),
        id="conflicting-max-age",
    ),
    pytest.param(
        200,
        h(cache_control="max-age=-1", expires=D0_PLUS_1H),
        False,
        POLICY,
        fresh(0),
        id="invalid-max-age-does-not-fall-back-to-expires",
    ),
    pytest.param(
        302,
        h(cache_control="max-age=1.5"),
        False,
        POLICY,
        fresh(0),
        id="invalid-counts-as-explicit",
    ),
    # --- override_ttl --------------------------------------------------------------------------
    pytest.param(
        200,
        h(cache_control="max-age=60"),
        False,
        replace(POLICY, override_ttl=1000.0),
        fresh(1000),
        id="override-beats-max-age",
    ),
    pytest.param(
        200,
        h(),
        False,
        replace(POLICY, override_ttl=1000.0),
        fresh(1000),
        id="override-without-origin-freshness",
    ),
    pytest.param(
        200,
        h(cache_control="max-age=abc"),
        False,
        replace(POLICY, override_ttl=1000.0),
        fresh(1000),
        id="override-beats-invalid",
    ),
    pytest.param(
        404,
        h(),
        False,
        replace(POLICY, override_ttl=1000.0),
        fresh(1000),
        id="override-beats-negative",
    ),
    pytest.param(
        500,
        h(),
        False,
        replace(POLICY, override_ttl=1000.0),
        refused("status"),
        id="override-does-not-make-500-storable",
    ),
    pytest.param(
        200,
        h(cache_control="s-maxage=5"),
        False,
        replace(POLICY, override_ttl=1000.0),
        revalidate(1000),
        id="override-keeps-revalidate-semantics",
    ),
    # --- stale windows (RFC 5861, RFC 9111 4.2.4) ------------------------------------------
    pytest.param(
        200,
        h(cache_control="max-age=60, stale-while-revalidate=30, stale-if-error=300"),
        False,
        POLICY,
        fresh(60, swr=30, sie=300),
        id="response-stale-windows",
    ),
    pytest.param(
        200,
        h(cache_control="max-age=60, stale-while-revalidate=0"),
        False,
        POLICY,
        fresh(60, swr=0, sie=60),
        id="explicit-zero-window-beats-policy",
    ),
    pytest.param(
        200,
        h(cache_control="max-age=60, stale-if-error=bogus"),
        False,
        POLICY,
        fresh(60, swr=5, sie=0),
        id="malformed-window-is-zero",
    ),
    pytest.param(
        200,
        h(cache_control="max-age=60, must-revalidate, stale-if-error=300"),
        False,
        POLICY,
        revalidate(60),
        id="must-revalidate-kills-windows",
    ),
    pytest.param(
        200,
        h(cache_control="max-age=60, proxy-revalidate, stale-while-revalidate=30"),
        False,
        POLICY,
        revalidate(60),
        id="proxy-revalidate-kills-windows",
    ),
    pytest.param(
        200,
        h(cache_control="max-age=60"),
        False,
        replace(POLICY, stale_while_revalidate=0.0, stale_if_error=0.0),
        fresh(60, swr=0, sie=0),
        id="no-policy-windows",
    ),
]


@pytest.mark.parametrize(("status", "headers", "auth", "policy", "expected"), ROWS)
def test_response_freshness(
    status: int, headers: dict[str, str], auth: bool, policy: FreshnessPolicy, expected: Freshness
) -> None:
    got = response_freshness(
        status,
        headers,
        request_time=T0 - 1,
        response_time=T0 + 1,
        has_authorization=auth,
        policy=policy,
    )
    assert got == expected


@pytest.mark.parametrize(
    ("request_time", "response_time", "headers", "initial_age"),
    [
        (T0, T0, {}, 0.0),  # no Date, no delay
        (T0, T0 + 5, {}, 5.0),  # no Date: date_value = response_time; delay 5
        (T0, T0 + 5, {"age": "10"}, 15.0),  # 10 + 5
        (T0 + 30, T0 + 30, {"date": D0}, 30.0),  # apparent_age 30, no delay
        (T0 + 30, T0 + 31, {"date": D0, "age": "20"}, 31.0),  # max(31, 21)
        (T0 + 30, T0 + 31, {"date": D0, "age": "40"}, 41.0),  # max(31, 41)
        (T0, T0 - 3, {}, 0.0),  # clock stepped back: corrected -3, apparent 0
    ],
)
def test_initial_age(
    request_time: float, response_time: float, headers: dict[str, str], initial_age: float
) -> None:
    got = response_freshness(
        200,
        {"cache-control": "max-age=60", **headers},
        request_time=request_time,
        response_time=response_time,
        has_authorization=False,
        policy=POLICY,
    )
    assert got.initial_age == initial_age


DEFAULT_TTL = replace(POLICY, default_ttl=300.0)
LM = {"date": D0, "last-modified": D0_MINUS_10D}  # heuristic: 10% of 10 days, capped at 1 day


@pytest.mark.parametrize(
    ("headers", "policy", "storable"),
    [
        # A page or API answer without freshness, to a request with cookies: not stored.
        ({"date": D0, "content-type": "text/html; charset=utf-8"}, DEFAULT_TTL, False),
        ({"date": D0, "content-type": "application/json"}, DEFAULT_TTL, False),
        ({**LM, "content-type": "text/html"}, POLICY, False),
        ({"date": D0}, DEFAULT_TTL, False),  # no type: could be anything
        # Static types keep the default and the heuristic.
        ({"date": D0, "content-type": "image/jpeg"}, DEFAULT_TTL, True),
        ({**LM, "content-type": "video/mp4"}, POLICY, True),
        ({"date": D0, "content-type": "text/css"}, DEFAULT_TTL, True),
        # The origin's own freshness is the origin's decision.
        ({"date": D0, "content-type": "text/html", "cache-control": "max-age=60"}, POLICY, True),
        ({"date": D0, "content-type": "text/html"}, replace(POLICY, override_ttl=60.0), True),
    ],
)
def test_cookies_keep_default_and_heuristic_lifetimes_to_static_types(
    headers: dict[str, str], policy: FreshnessPolicy, storable: bool
) -> None:
    got = response_freshness(
        200,
        headers,
        request_time=T0 - 1,
        response_time=T0 + 1,
        has_authorization=False,
        policy=policy,
        has_cookie=True,
    )
    assert got.storable is storable, got
    if not storable:
        assert got.reason == "cookie"
    without = response_freshness(
        200,
        headers,
        request_time=T0 - 1,
        response_time=T0 + 1,
        has_authorization=False,
        policy=policy,
    )
    assert without.storable  # the cookie alone made the difference
