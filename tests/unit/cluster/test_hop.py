"""The hop signature (proxy/cluster/hop.py): what it signs, the replay window, and any
value an attacker sends refused with a reason, never another exception."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.cluster.hop import MAX_FIELD, HopRefused, sign, verify

SECRET = b"s3cret"
NOW = 1_800_000_000.0


def check(value: str | None, target: str = "/a?b=1", now: float = NOW) -> int:
    return verify(SECRET, value, "GET", "media.test", target, now, 30)


def refused(value: str | None, target: str = "/a?b=1", now: float = NOW) -> str:
    with pytest.raises(HopRefused) as exc:
        check(value, target, now)
    return str(exc.value)


def test_a_signature_verifies_for_what_it_signs_only() -> None:
    good = sign(SECRET, "GET", "media.test", "/a?b=1", 2, NOW)
    assert check(good) == 2
    assert refused(good, target="/a?b=2") == "bad signature"
    for method, host, secret in (("HEAD", "media.test", SECRET), ("GET", "x.test", SECRET)):
        with pytest.raises(HopRefused, match="bad signature"):
            verify(secret, good, method, host, "/a?b=1", NOW, 30)
    with pytest.raises(HopRefused, match="bad signature"):
        verify(b"other", good, "GET", "media.test", "/a?b=1", NOW, 30)
    assert verify(SECRET, good, "get", "MEDIA.test", "/a?b=1", NOW, 30) == 2


def test_the_stage_is_signed() -> None:
    when, _, digest = sign(SECRET, "GET", "media.test", "/a?b=1", 1, NOW).split(".")
    assert refused(f"{when}.3.{digest}") == "bad signature"
    assert refused(sign(SECRET, "GET", "media.test", "/a?b=1", 4, NOW)) == "malformed signature"


def test_the_replay_window() -> None:
    good = sign(SECRET, "GET", "media.test", "/a?b=1", 1, NOW)
    assert check(good, now=NOW + 30) == 1
    assert refused(good, now=NOW + 31) == "signature outside the replay window"
    assert refused(good, now=NOW - 31) == "signature outside the replay window"


def test_malformed_values() -> None:
    assert refused(None) == "no signature"
    for value in ("", ".", "1.2", "abc.1.def", "-1.1.ab", "1e9.1.ab", "x" * (MAX_FIELD + 1)):
        assert refused(value) == "malformed signature", value
    assert refused("١٢٣.1.ab") == "malformed signature"  # non-ASCII digits


@given(st.text(max_size=400))
def test_any_value_is_refused_without_another_exception(value: str) -> None:
    refused(value)


@given(
    st.text(max_size=100), st.text(max_size=100), st.text(max_size=300), st.sampled_from([1, 2, 3])
)
def test_any_request_signs_and_verifies(method: str, host: str, target: str, stage: int) -> None:
    value = sign(SECRET, method, host, target, stage, NOW)
    assert verify(SECRET, value, method, host, target, NOW, 1) == stage
