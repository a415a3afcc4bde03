"""`forwarding`: the client, the trusted proxies it came through and the peer, worked out
once per request; scheme and country believed from trusted peers only."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from config.auth import TrustedProxies
from proxy.auth.access import TrustedNetworks, client_ip, forwarding
from proxy.auth.common import parse_ip
from proxy.http.forwarding import Forwarding

TRUSTED = TrustedNetworks.from_settings(
    TrustedProxies(cidrs=("10.0.0.0/8",), country_header="cf-ipcountry")
)
FORWARDED = TrustedNetworks.from_settings(TrustedProxies(cidrs=("10.0.0.0/8",), header="forwarded"))
NOBODY = TrustedNetworks.from_settings(TrustedProxies())


@pytest.mark.parametrize(
    ("peer", "headers", "expected"),
    [
        # a direct client: nothing it says about itself is taken
        (
            "203.0.113.9",
            {"x-forwarded-for": "8.8.8.8", "x-forwarded-proto": "https", "cf-ipcountry": "DE"},
            Forwarding(("203.0.113.9",)),
        ),
        ("10.0.0.1", {}, Forwarding(("10.0.0.1",))),
        (
            "10.0.0.1",
            {"x-forwarded-for": "8.8.8.8, 198.51.100.7, 10.0.0.2", "x-forwarded-proto": "https"},
            Forwarding(("198.51.100.7", "10.0.0.2", "10.0.0.1"), proto="https"),
        ),
        (
            "10.0.0.1",
            {"x-forwarded-for": "198.51.100.7", "x-forwarded-proto": "https, http"},
            Forwarding(("198.51.100.7", "10.0.0.1"), proto="http"),  # the peer's own entry
        ),
        (
            "10.0.0.1",
            {"x-forwarded-for": "198.51.100.7", "x-forwarded-proto": "gopher"},
            Forwarding(("198.51.100.7", "10.0.0.1")),
        ),
        (
            "10.0.0.1",
            {"x-forwarded-for": "198.51.100.7, junk", "cf-ipcountry": "de"},
            Forwarding(("10.0.0.1",), country="DE"),
        ),
    ],
)
def test_forwarding(peer: str, headers: dict[str, str], expected: Forwarding) -> None:
    assert forwarding(peer, headers, TRUSTED) == expected


def test_forwarded_header_chain_and_proto() -> None:
    headers = {"forwarded": 'for=8.8.8.8, for="[2001:db8::7]:4711";proto=https'}
    assert forwarding("10.0.0.1", headers, FORWARDED) == Forwarding(
        ("2001:db8::7", "10.0.0.1"), proto="https"
    )


def test_without_trusted_proxies_the_peer_is_the_client() -> None:
    headers = {"x-forwarded-for": "8.8.8.8", "x-real-ip": "8.8.8.8"}
    assert forwarding("127.0.0.1", headers, NOBODY) == Forwarding(("127.0.0.1",))


ADDRESSES = st.one_of(
    st.sampled_from(["10.0.0.1", "10.1.2.3", "10.255.0.9"]),  # trusted
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(str),
)
HOP = st.one_of(
    ADDRESSES, ADDRESSES.map(lambda a: f"[{a}]:80" if ":" in a else f"{a}:80"), st.text(max_size=8)
)


def _trusted(address: str) -> bool:
    return ipaddress.ip_address(address) in ipaddress.ip_network("10.0.0.0/8")


@given(ADDRESSES, st.lists(HOP, max_size=6), st.text(max_size=12))
def test_the_chain_is_vouched_for_hop_by_hop(peer: str, hops: list[str], proto: str) -> None:
    headers = {"x-forwarded-for": ", ".join(hops), "x-forwarded-proto": proto}
    found = forwarding(peer, headers, TRUSTED)
    assert found.client == client_ip(peer, headers, TRUSTED)
    assert found.peer == str(parse_ip(peer))  # IPv4-mapped IPv6 peers as IPv4
    # everyone after the client vouched for the one before: each is a trusted proxy
    assert all(_trusted(hop) for hop in found.chain[1:])
    for address in found.chain:
        ipaddress.ip_address(address)  # only addresses, never what a client wrote as is
    if not _trusted(found.peer):
        assert found == Forwarding((found.peer,))
    assert found.proto in (None, "http", "https")


@given(st.text(max_size=60), st.text(max_size=30))
def test_any_forwarded_header_gives_addresses_only(value: str, tail: str) -> None:
    found = forwarding("10.0.0.1", {"forwarded": f"{value}, for=10.0.0.2;{tail}"}, FORWARDED)
    for address in found.chain:
        ipaddress.ip_address(address)
    assert found.peer == "10.0.0.1"
    assert found.proto in (None, "http", "https")
