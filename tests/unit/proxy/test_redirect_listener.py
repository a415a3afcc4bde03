"""The redirect listener's Location: https, the request's host, the TLS port, the target
as sent; whatever the Host and target bytes, never a redirect elsewhere."""

from __future__ import annotations

import string
from urllib.parse import urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.http.authority import BadAuthority
from proxy.serve.redirect_listener import https_location


def test_location_keeps_host_path_and_query() -> None:
    assert https_location("Media.Example:80", b"/a/b.jpg?w=1", 8443) == (
        "https://media.example:8443/a/b.jpg?w=1"
    )
    assert https_location("media.example", b"/x", 443) == "https://media.example/x"
    assert https_location("[::1]:8080", b"/", 443) == "https://[::1]/"


def test_a_target_that_is_not_a_path_goes_to_the_root() -> None:
    assert https_location("a.example", b"*", 443) == "https://a.example/"
    assert https_location("a.example", b"http://evil.example/x", 443) == "https://a.example/"


@pytest.mark.parametrize("host", ["evil.example/x", "a@evil.example", "x y", "", "[::1", "a:b"])
def test_a_host_that_is_not_an_authority_is_refused(host: str) -> None:
    with pytest.raises(BadAuthority):
        https_location(host, b"/", 443)


_VISIBLE = set(string.ascii_letters + string.digits + "/?:@!$&'()*+,;=%-._~")


@given(host=st.text(max_size=40), target=st.binary(max_size=80), port=st.integers(1, 65535))
def test_any_input_redirects_to_the_same_host_or_is_refused(
    host: str, target: bytes, port: int
) -> None:
    try:
        location = https_location(host, target, port)
    except BadAuthority:
        return
    parts = urlsplit(location)
    assert parts.scheme == "https"
    assert parts.hostname == host.split(":")[0].rstrip(".").lower() or host.startswith("[")
    assert (parts.port or 443) == port
    assert set(location) <= _VISIBLE and parts.path.startswith("/")
