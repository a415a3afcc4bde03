"""What the origin is told: one set of forwarding fields, edgeshield's; method-override
fields kept off cache fetches; which methods pass through and which invalidate."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.http import methods
from proxy.http.forwarding import FORWARDING, METHOD_OVERRIDE, Forwarding, origin_request_headers

HOSTILE = [
    ("x-forwarded-for", "8.8.8.8"),
    ("x-forwarded-host", "evil.example"),
    ("x-forwarded-proto", "https"),
    ("forwarded", "for=1.2.3.4;host=evil.example;proto=https"),
    ("x-real-ip", "1.2.3.4"),
    ("x-http-method-override", "DELETE"),
    ("x-http-method", "PUT"),
    ("x-method-override", "PATCH"),
    ("accept", "*/*"),
]


def _fields(
    headers: list[tuple[str, str]], forwarding: Forwarding, **kw: bool
) -> list[tuple[str, str]]:
    return origin_request_headers(
        headers, forwarding=forwarding, scheme="http", host="media.example", **kw
    )


def _named(out: list[tuple[str, str]], name: str) -> list[str]:
    return [v for n, v in out if n == name]


@pytest.mark.parametrize("cacheable", [True, False])
def test_client_forwarding_fields_never_reach_the_origin(cacheable: bool) -> None:
    out = _fields(HOSTILE, Forwarding(("127.0.0.1",)), cacheable=cacheable)
    assert _named(out, "x-forwarded-for") == ["127.0.0.1"]
    assert _named(out, "x-forwarded-host") == ["media.example"]
    assert _named(out, "x-forwarded-proto") == ["http"]
    assert _named(out, "forwarded") == [] and _named(out, "x-real-ip") == []
    assert ("accept", "*/*") in out


def test_a_trusted_chain_and_scheme_are_re_emitted_once() -> None:
    chain = Forwarding(("198.51.100.7", "10.0.0.2", "10.0.0.1"), proto="https")
    out = _fields(HOSTILE, chain, cacheable=True)
    assert _named(out, "x-forwarded-for") == ["198.51.100.7, 10.0.0.2, 10.0.0.1"]
    assert _named(out, "x-forwarded-proto") == ["https"]
    assert _named(out, "x-forwarded-host") == ["media.example"]  # the key's host, always


def test_method_override_is_dropped_on_cache_fetches_unless_the_route_forwards_it() -> None:
    direct = Forwarding(("127.0.0.1",))
    fetch = _fields(HOSTILE, direct, cacheable=True)
    assert not {n for n, _ in fetch} & METHOD_OVERRIDE
    forwarded = _fields(HOSTILE, direct, cacheable=True, method_override=True)
    assert {n for n, _ in forwarded} >= METHOD_OVERRIDE
    passed = _fields(HOSTILE, direct, cacheable=False)  # POST etc.: the origin decides
    assert {n for n, _ in passed} >= METHOD_OVERRIDE


NAMES = st.sampled_from(
    sorted(FORWARDING | METHOD_OVERRIDE | {"accept", "connection", "range", "via", "x-other"})
)
VALUES = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40)


@given(
    st.lists(st.tuples(NAMES, VALUES), max_size=12),
    st.lists(st.ip_addresses().map(str), min_size=1, max_size=4),
    st.sampled_from([None, "http", "https"]),
    st.booleans(),
)
def test_exactly_one_forwarding_set_whatever_the_client_sends(
    headers: list[tuple[str, str]], chain: list[str], proto: str | None, cacheable: bool
) -> None:
    out = _fields(headers, Forwarding(tuple(chain), proto), cacheable=cacheable)
    assert _named(out, "x-forwarded-for") == [", ".join(chain)]
    assert _named(out, "x-forwarded-proto") == [proto or "http"]
    assert _named(out, "x-forwarded-host") == ["media.example"]
    assert not _named(out, "forwarded") and not _named(out, "x-real-ip")
    if cacheable:
        assert not {n for n, _ in out} & METHOD_OVERRIDE


# -- methods -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method", ["POST", "PUT", "PATCH", "DELETE", "OPTIONS", "M-SEARCH", "PROPFIND", "BREW"]
)
def test_any_token_method_passes_through(method: str) -> None:
    assert methods.passable(method)


@pytest.mark.parametrize("method", ["CONNECT", "TRACE", "", "GE T", "GET\r\n", "PÜT", "A(B)"])
def test_tunnels_echoes_and_non_tokens_do_not(method: str) -> None:
    assert not methods.passable(method)


@pytest.mark.parametrize(
    ("method", "invalidates"),
    [("POST", True), ("M-SEARCH", True), ("PROPFIND", True), ("OPTIONS", False), ("GET", False)],
)
def test_unsafe_or_unknown_methods_invalidate(method: str, invalidates: bool) -> None:
    assert methods.invalidates(method) is invalidates


@given(st.text(max_size=20))
def test_passable_is_exactly_a_token_other_than_connect_and_trace(method: str) -> None:
    tchar = set("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
    token = bool(method) and set(method) <= tchar
    assert methods.passable(method) is (token and method not in ("CONNECT", "TRACE"))
