"""Membership from DNS (proxy/cluster/dns.py): the record set -> members mapping, which
record is this instance, and the watcher with an injected resolver: each good answer
applied to a real Cluster, a failure or an empty answer keeping the last good set with
one warning, a change moving only the keys of the peer that changed."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Iterable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from config.cluster import ClusterSettings, peer_url
from proxy.cluster.dns import is_local, members_from, self_among, watch_dns
from proxy.cluster.owner import Member
from proxy.cluster.peers import Cluster
from proxy.serve.metrics import Stats

KEYS = [f"media.test/gen/{i}" for i in range(400)]
addresses = st.one_of(
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(str),
    st.text(max_size=20),  # not an address: ignored
)


@given(st.lists(addresses, max_size=30), st.integers(1, 65535), st.randoms())
def test_records_map_to_one_member_per_distinct_address(
    records: list[str], port: int, rnd: object
) -> None:
    members = members_from(records, port)
    shuffled = list(records) * 2
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert members_from(shuffled, port) == members  # order and repeats do not matter
    assert len(members) == len({ip(r) for r in records} - {None})
    for m in members:
        assert m.weight == 1.0
        assert peer_url(m.name) == m.name  # the name every instance hashes the same way
        assert m.name.endswith(f":{port}")


def test_addresses_are_spelt_one_way() -> None:
    members = members_from(["10.0.0.5", "::1", "0:0:0:0:0:0:0:1", "fe80::1%eth0", "x"], 8090)
    assert [m.name for m in members] == [
        "http://10.0.0.5:8090",
        "http://[::1]:8090",
        "http://[fe80::1]:8090",
    ]


def test_this_instance_is_self_or_the_local_record() -> None:
    members = members_from(["10.0.0.5", "10.0.0.6"], 80)
    assert self_among(members, "http://10.0.0.9:80") == "http://10.0.0.9:80"
    assert self_among(members, None, lambda a: a == "10.0.0.6") == "http://10.0.0.6:80"
    assert self_among(members, None, lambda a: False) is None
    assert self_among(members_from(["::1"], 80), None, lambda a: a == "::1") == "http://[::1]:80"


def test_local_addresses_are_those_a_socket_binds() -> None:
    assert is_local("127.0.0.1")
    assert not is_local("192.0.2.1")  # TEST-NET-1: never on this machine


def ip(text: str) -> object:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def settings(**more: object) -> ClusterSettings:
    base = {"dns": "edge.ns.svc.cluster.local", "dns_port": 8090, "secret": "k"}
    return ClusterSettings.model_validate({**base, "dns_interval": 0.001, **more})


class Script:
    """A resolver answering from a script, then waiting forever (the test ends it)."""

    def __init__(self, answers: list[list[str] | Exception]) -> None:
        self.answers = answers
        self.asked: list[tuple[str, int]] = []
        self.done = asyncio.Event()

    async def __call__(self, name: str, port: int) -> Iterable[str]:
        self.asked.append((name, port))
        if not self.answers:
            self.done.set()
            await asyncio.Future()
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


async def run(cluster: Cluster, script: Script, local: object = lambda a: False) -> list[object]:
    seen: list[object] = []

    def apply(members: tuple[Member, ...], me: str | None) -> list[object]:
        seen.append(tuple(m.name for m in members))
        return cluster.set_instances(members, me)  # type: ignore[return-value]

    task = asyncio.create_task(watch_dns(cluster.settings, apply, script, local))  # type: ignore[arg-type]
    await asyncio.wait_for(script.done.wait(), 60)  # a hang guard only
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    return seen


def owners(cluster: Cluster) -> dict[str, str]:
    assert cluster.instances is not None
    ring = cluster.instances.ring
    return {k: ring.owner(k).name for k in KEYS}  # type: ignore[union-attr]


async def test_a_failed_or_empty_answer_keeps_the_last_good_set_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cluster = Cluster(settings(), Stats())
    script = Script(
        [["10.0.0.1", "10.0.0.2"], OSError("nxdomain"), [], TimeoutError(), ["10.0.0.1"]]
    )
    with caplog.at_level(logging.INFO, "edgeshield.cluster"):
        seen = await run(cluster, script, lambda a: a == "10.0.0.1")
    assert script.asked[0] == ("edge.ns.svc.cluster.local", 8090)
    assert seen == [("http://10.0.0.1:8090", "http://10.0.0.2:8090"), ("http://10.0.0.1:8090",)]
    warnings = [r for r in caplog.records if "does not resolve" in r.getMessage()]
    assert len(warnings) == 1
    assert any("resolves again" in r.getMessage() for r in caplog.records)
    assert cluster.instances is not None
    assert cluster.instances.self_name == "http://10.0.0.1:8090"
    assert cluster.instances.peers == {}  # itself is never a peer
    await cluster.aclose()


async def test_this_instance_owns_its_keys_and_asks_the_others() -> None:
    cluster = Cluster(settings(), Stats())
    await run(cluster, Script([["10.0.0.1", "10.0.0.2"]]), lambda a: a == "10.0.0.2")
    assert cluster.instances is not None
    assert set(cluster.instances.peers) == {"http://10.0.0.1:8090"}
    assert set(owners(cluster).values()) == {"http://10.0.0.1:8090", "http://10.0.0.2:8090"}
    await cluster.aclose()


@given(
    st.sets(st.ip_addresses(v=4).map(str), min_size=1, max_size=8),
    st.ip_addresses(v=6).map(str),
)
def test_a_membership_change_moves_only_the_changed_peers_keys(
    before: set[str], added: str
) -> None:
    # Three readings as the watcher applies them: a peer added, then another removed.
    cluster = Cluster(settings(self="http://[::ffff:1]:8090"), Stats())
    first = sorted(before)
    new = members_from([added], 8090)[0].name
    gone = members_from([first[0]], 8090)[0].name
    cluster.set_instances(members_from(first, 8090))
    a = owners(cluster)
    cluster.set_instances(members_from([*first, added], 8090))
    b = owners(cluster)
    cluster.set_instances(members_from([*first[1:], added], 8090))
    c = owners(cluster)
    assert all(b[k] == a[k] for k in KEYS if b[k] != new)  # only keys to the new peer move
    assert all(c[k] == b[k] for k in KEYS if b[k] != gone)  # only the removed peer's keys move
    asyncio.run(cluster.aclose())
