"""Weighted rendezvous hashing (proxy/cluster/owner.py): stable, minimal movement on a
membership change, shares by weight, the same in every process."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.cluster.owner import Member, Ring
from tests.support.proxy_server import REPO_ROOT

names = st.text(min_size=1, max_size=80)
weights = st.floats(min_value=0.01, max_value=100, allow_nan=False)
members = st.lists(
    st.builds(Member, names, weights), min_size=1, max_size=8, unique_by=lambda m: m.name
)
keys = st.lists(st.text(max_size=200), min_size=1, max_size=50)


@given(members, keys)
def test_the_owner_is_a_member_whatever_the_order(ms: list[Member], ks: list[str]) -> None:
    ring, reversed_ring = Ring.of(ms), Ring.of(reversed(ms))
    for key in ks:
        owner = ring.owner(key)
        assert owner in ms
        assert reversed_ring.owner(key) == owner


@given(members, st.builds(Member, names, weights), keys)
def test_a_peer_joining_takes_keys_only_for_itself(
    ms: list[Member], new: Member, ks: list[str]
) -> None:
    before = Ring.of(ms)
    if any(m.name == new.name for m in ms):
        return
    after = Ring.of([*ms, new])
    for key in ks:
        moved_to = after.owner(key)
        assert moved_to == before.owner(key) or moved_to == new


@given(members, keys)
def test_a_peer_leaving_moves_only_its_own_keys(ms: list[Member], ks: list[str]) -> None:
    if len(ms) < 2:
        return
    gone, rest = ms[0], ms[1:]
    before, after = Ring.of(ms), Ring.of(rest)
    for key in ks:
        if before.owner(key) != gone:
            assert after.owner(key) == before.owner(key)


@given(members, keys, st.integers(min_value=0, max_value=7), weights)
def test_a_weight_change_moves_keys_only_to_or_from_that_peer(
    ms: list[Member], ks: list[str], i: int, weight: float
) -> None:
    changed = ms[i % len(ms)]
    before = Ring.of(ms)
    after = Ring.of([Member(m.name, weight) if m == changed else m for m in ms])
    for key in ks:
        a, b = before.owner(key), after.owner(key)
        if a != b:
            assert changed.name in (a.name if a else None, b.name if b else None)


def test_shares_follow_weights() -> None:
    ring = Ring.of([Member("a", 1), Member("b", 1), Member("c", 2)])
    counts = Counter(ring.owner(f"host/object/{i}").name for i in range(20_000))  # type: ignore[union-attr]
    assert ring.shares() == {"a": 0.25, "b": 0.25, "c": 0.5}
    for name, share in ring.shares().items():
        assert abs(counts[name] / 20_000 - share) < 0.02


def test_duplicates_keep_the_first_weight_and_an_empty_ring_owns_nothing() -> None:
    assert Ring.of([Member("a", 1), Member("a", 5)]).members == (Member("a", 1),)
    assert Ring.of([]).owner("k") is None


def test_every_process_agrees() -> None:
    """blake2b, not hash(): another interpreter (another PYTHONHASHSEED) picks the same."""
    script = (
        "from proxy.cluster.owner import Member, Ring\n"
        "r = Ring.of([Member('http://a:1'), Member('http://b:1', 2), Member('http://c:1')])\n"
        "print(','.join(r.owner(f'h/k{i}').name for i in range(200)))\n"
    )
    ring = Ring.of([Member("http://a:1"), Member("http://b:1", 2), Member("http://c:1")])
    here = ",".join(ring.owner(f"h/k{i}").name for i in range(200))  # type: ignore[union-attr]
    for seed in ("1", "2"):
        out = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            check=True,
            cwd=REPO_ROOT,
            env={"PYTHONHASHSEED": seed, "PATH": ""},
        ).stdout.strip()
        assert out == here


@settings(max_examples=50)
@given(st.text(max_size=300), st.text(min_size=65, max_size=300))
def test_long_names_and_any_text_hash(key: str, name: str) -> None:
    assert Ring.of([Member(name), Member("x")]).owner(key) is not None
