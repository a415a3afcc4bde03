import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.http.authority import Authority, BadAuthority, parse_authority, same_authority


@pytest.mark.parametrize(
    ("value", "host", "port"),
    [
        ("example.com", "example.com", None),
        ("Media.Example.COM", "media.example.com", None),
        ("example.com:8080", "example.com", 8080),
        ("example.com:", "example.com", None),  # RFC 3986: an empty port
        ("127.0.0.1", "127.0.0.1", None),
        ("127.0.0.1:65535", "127.0.0.1", 65535),
        ("[::1]", "[::1]", None),
        ("[2001:DB8::1]:443", "[2001:db8::1]", 443),
        ("[::ffff:127.0.0.1]", "[::ffff:127.0.0.1]", None),
        ("xn--bcher-kva.example", "xn--bcher-kva.example", None),
        ("under_score.local", "under_score.local", None),
        ("a~b", "a~b", None),
        # A fully qualified name is the same host (a host-scoped route must still match).
        ("internal.example.com.", "internal.example.com", None),
        ("Internal.Example.COM.:8443", "internal.example.com", 8443),
    ],
)
def test_valid_authorities(value: str, host: str, port: int | None) -> None:
    assert parse_authority(value) == Authority(host, port)


@pytest.mark.parametrize(
    "value",
    [
        "",
        ".",
        "..",
        "a..b",
        ".a",
        "a..",
        "127.0.0.1/images",  # the cache-poisoning Host of issue 11
        "a/b",
        "a\\b",
        "user@host",
        "host?x",
        "host#x",
        "ho%41st",
        "a b",
        " host",
        "host ",
        "ho\tst",
        "host\x00",
        "host\r\nx: y",
        "a,b",
        "a;b",
        "a*",
        "host:80:90",
        "host:99999",
        "host:123456",
        "host:-1",
        "host:8o",
        ":80",
        "[::1",
        "[::1]x",
        "[::1]:",  # allowed? an empty port after a literal is valid too: see below
        "[fe80::1%25eth0]",
        "[v1.fe]",
        "[127.0.0.1]",
        "[::g]",
        "é.example",
        "a" * 256,
    ],
)
def test_invalid_authorities(value: str) -> None:
    if value == "[::1]:":
        assert parse_authority(value) == Authority("[::1]", None)
        return
    with pytest.raises(BadAuthority):
        parse_authority(value)


def test_same_authority_compares_hosts_and_given_ports() -> None:
    a = parse_authority("h.example")
    assert same_authority(a, parse_authority("H.example:80"))
    assert same_authority(parse_authority("h.example:80"), parse_authority("h.example:80"))
    assert not same_authority(parse_authority("h.example:80"), parse_authority("h.example:81"))
    assert not same_authority(a, parse_authority("evil.example"))


@given(st.text(max_size=80))
def test_any_text_parses_or_is_refused_cleanly(value: str) -> None:
    try:
        found = parse_authority(value)
    except BadAuthority as exc:
        assert exc.reason  # a short reason, safe to log
        return
    # What is accepted can never carry a path, query, fragment, userinfo or separator.
    for bad in "/\\?#@% \t\r\n\x00,;":
        assert bad not in found.host
    assert found.host == found.host.lower()
    if found.host.startswith("["):
        ipaddress.IPv6Address(found.host[1:-1])
    assert found.port is None or 0 <= found.port <= 65535


@given(
    st.lists(st.from_regex(r"[a-z0-9][a-z0-9-]{0,10}", fullmatch=True), min_size=1, max_size=4).map(
        ".".join
    ),
    st.one_of(st.none(), st.integers(0, 65535)),
)
def test_round_trip_of_names_and_ports(name: str, port: int | None) -> None:
    value = name if port is None else f"{name}:{port}"
    assert parse_authority(value) == Authority(name, port)
