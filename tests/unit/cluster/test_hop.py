"""The hop signature (proxy/cluster/hop.py): what it signs, the replay window, and any
value an attacker sends refused with a reason, never an exception."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from proxy.cluster.hop import MAX_FIELD, sign, verify

SECRET = b"s3cret"
NOW = 1_800_000_000.0


def check(value: str | None, target: str = "/a?b=1", now: float = NOW) -> str | None:
    return verify(SECRET, value, "GET", "media.test", target, now, 30)


def test_a_signature_verifies_for_what_it_signs_only() -> None:
    good = sign(SECRET, "GET", "media.test", "/a?b=1", NOW)
    assert check(good) is None
    assert check(good, target="/a?b=2") == "bad signature"
    assert verify(SECRET, good, "HEAD", "media.test", "/a?b=1", NOW, 30) == "bad signature"
    assert verify(SECRET, good, "GET", "other.test", "/a?b=1", NOW, 30) == "bad signature"
    assert verify(b"other", good, "GET", "media.test", "/a?b=1", NOW, 30) == "bad signature"
    assert verify(SECRET, good, "get", "MEDIA.test", "/a?b=1", NOW, 30) is None


def test_the_replay_window() -> None:
    good = sign(SECRET, "GET", "media.test", "/a?b=1", NOW)
    assert check(good, now=NOW + 30) is None
    assert check(good, now=NOW + 31) == "signature outside the replay window"
    assert check(good, now=NOW - 31) == "signature outside the replay window"


def test_malformed_values() -> None:
    assert check(None) == "no signature"
    for value in ("", ".", "abc.def", "-1.ab", "1e9.ab", "x" * (MAX_FIELD + 1), "١٢٣.ab"):
        assert check(value) == "malformed signature", value


@given(st.text(max_size=400))
def test_any_value_is_refused_without_raising(value: str) -> None:
    assert check(value) is not None


@given(st.text(max_size=100), st.text(max_size=100), st.text(max_size=300))
def test_any_request_signs_and_verifies(method: str, host: str, target: str) -> None:
    value = sign(SECRET, method, host, target, NOW)
    assert verify(SECRET, value, method, host, target, NOW, 1) is None
