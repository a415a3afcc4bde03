"""X-Request-Id: which values a trusted proxy may hand on (bounded, safe characters), and
that the origin gets edgeshield's id in place of whatever the client sent."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from proxy.http.forwarding import REQUEST_ID, Forwarding, origin_request_headers, valid_request_id

SAFE = re.compile(r"[A-Za-z0-9+/=_.:-]+")


def test_common_ids_are_kept() -> None:
    for value in (
        "9f1c2e4a-5b6d-4e7f-8a9b-0c1d2e3f4a5b",  # uuid
        "3f9a61c2b0d4-1a",  # edgeshield's own
        "Root=1-67891233-abcdef012345678912345678",  # AWS ALB trace id
        "YWJjZGVm+/==",  # base64
        "8c1c0f0a1b2c3d4e-LHR",  # a CDN ray id
    ):
        assert valid_request_id(value), value


def test_unsafe_or_unbounded_ids_are_refused() -> None:
    for value in ("", "a b", "a\r\nx-evil: 1", 'a"b', "a,b", "a;b", "\x00", "é", "a" * 129):
        assert not valid_request_id(value), value
    assert valid_request_id("a" * 128)


@given(st.text(max_size=200))
def test_a_kept_id_is_short_and_of_safe_characters_only(value: str) -> None:
    if valid_request_id(value):
        assert 1 <= len(value) <= 128 and SAFE.fullmatch(value)
    else:
        assert not (1 <= len(value) <= 128 and SAFE.fullmatch(value))


@given(st.lists(st.tuples(st.sampled_from([REQUEST_ID, "accept", "x-other"]), st.text())))
def test_the_origin_gets_exactly_edgeshields_id(headers: list[tuple[str, str]]) -> None:
    out = origin_request_headers(
        headers,
        forwarding=Forwarding(("127.0.0.1",)),
        scheme="http",
        host="media.example",
        cacheable=True,
        request_id="3f9a61c2b0d4-1a",
    )
    assert [v for n, v in out if n == REQUEST_ID] == ["3f9a61c2b0d4-1a"]
    kept = [(n, v) for n, v in headers if n != REQUEST_ID]
    assert [(n, v) for n, v in out if n in ("accept", "x-other")] == kept
