import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.http.cache_status import CACHE_NAME, forward, hit


def test_cache_name() -> None:
    assert CACHE_NAME == "edgeshield"


@pytest.mark.parametrize(
    ("ttl", "detail", "stale", "expected"),
    [
        (3529.9, "memory", False, "edgeshield; hit; ttl=3529; detail=memory"),
        (3529.0, "memory", False, "edgeshield; hit; ttl=3529; detail=memory"),
        (0.0, "memory", False, "edgeshield; hit; ttl=0; detail=memory"),
        (10, "", False, "edgeshield; hit; ttl=10"),
        (-30.2, "memory", True, "edgeshield; hit; ttl=-31; detail=memory"),
        (-0.5, "memory", True, "edgeshield; hit; ttl=-1; detail=memory"),
        (0.0, "memory", True, "edgeshield; hit; ttl=-1; detail=memory"),  # stale never reads fresh
        (0.4, "disk", True, "edgeshield; hit; ttl=-1; detail=disk"),
        (math.inf, "memory", False, "edgeshield; hit; detail=memory"),
        (math.nan, "memory", False, "edgeshield; hit; detail=memory"),
        (5, "mem/shard:3", False, "edgeshield; hit; ttl=5; detail=mem/shard:3"),
        (5, "two words", False, 'edgeshield; hit; ttl=5; detail="two words"'),
        (5, 'a"b\\c', False, 'edgeshield; hit; ttl=5; detail="a\\"b\\\\c"'),
        (5, "1abc", False, 'edgeshield; hit; ttl=5; detail="1abc"'),  # tokens start with ALPHA
        (5, "bad\r\nx", False, 'edgeshield; hit; ttl=5; detail="badx"'),
    ],
)
def test_hit(ttl: float, detail: str, stale: bool, expected: str) -> None:
    assert hit(ttl, detail, stale=stale) == expected


@pytest.mark.parametrize(
    ("fwd", "kwargs", "expected"),
    [
        (
            "miss",
            {"fwd_status": 200, "stored": True, "collapsed": True},
            "edgeshield; fwd=miss; fwd-status=200; stored; collapsed",
        ),
        (
            "bypass",
            {"fwd_status": None, "stored": False, "collapsed": False},
            "edgeshield; fwd=bypass",
        ),
        (
            "method",
            {"fwd_status": 200, "stored": False, "collapsed": False},
            "edgeshield; fwd=method; fwd-status=200",
        ),
        (
            "uri-miss",
            {"fwd_status": 404, "stored": False, "collapsed": False, "detail": "no-store"},
            "edgeshield; fwd=uri-miss; fwd-status=404; detail=no-store",
        ),
        (
            "vary-miss",
            {"fwd_status": 200, "stored": True, "collapsed": False, "ttl": 600.0},
            "edgeshield; fwd=vary-miss; fwd-status=200; ttl=600; stored",
        ),
        (
            "stale",
            {"fwd_status": 304, "stored": True, "collapsed": False, "ttl": 59.9},
            "edgeshield; fwd=stale; fwd-status=304; ttl=59; stored",
        ),
        (
            "request",
            {"fwd_status": 200, "stored": True, "collapsed": False, "ttl": -5.5},
            "edgeshield; fwd=request; fwd-status=200; ttl=-6; stored",
        ),
        (
            "partial",
            {"fwd_status": 206, "stored": False, "collapsed": True, "detail": "range"},
            "edgeshield; fwd=partial; fwd-status=206; collapsed; detail=range",
        ),
        (
            "miss",
            {"fwd_status": 503, "stored": False, "collapsed": False, "ttl": math.nan, "detail": ""},
            "edgeshield; fwd=miss; fwd-status=503",
        ),
    ],
)
def test_forward(fwd: str, kwargs: dict[str, Any], expected: str) -> None:
    assert forward(fwd, **kwargs) == expected


@pytest.mark.parametrize("fwd", ["", "hit", "MISS", "miss; stored"])
def test_forward_rejects_unknown_reason(fwd: str) -> None:
    with pytest.raises(ValueError):
        forward(fwd, fwd_status=200, stored=False, collapsed=False)


@given(
    st.floats(min_value=0, max_value=2**31, allow_nan=False),
    st.sampled_from(["memory", "disk", "redis"]),
)
def test_fresh_hit_is_hit_encoded(ttl: float, tier: str) -> None:
    from proxy.http.cache_status import fresh_hit

    assert fresh_hit(ttl, tier.encode()) == hit(ttl, tier).encode()
