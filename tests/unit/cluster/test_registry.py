"""Registry entries (proxy/cluster/registry.py): what an instance writes reads back, and
anything else found in the sorted set is ignored, never an exception."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from proxy.cluster.owner import Member
from proxy.cluster.registry import entry, parse


def test_an_entry_reads_back() -> None:
    assert parse(entry("http://10.0.0.5:8090", 2.5)) == Member("http://10.0.0.5:8090", 2.5)
    assert parse(b"1.0 HTTP://Node:81/") == Member("http://node:81", 1.0)


def test_entries_that_are_not_members_are_ignored() -> None:
    for raw in (
        "",
        "1.0",
        "x http://a:1",
        "nan http://a:1",
        "inf http://a:1",
        "0 http://a:1",
        "-1 http://a:1",
        "1e9 http://a:1",
        "1.0 https://a:1",
        "1.0 http://a",
        "1.0 http://a:1/path",
        b"\xff\xfe",
    ):
        assert parse(raw) is None, raw


@given(st.binary(max_size=300))
def test_any_bytes_parse_or_are_ignored(raw: bytes) -> None:
    member = parse(raw)
    assert member is None or (member.name.startswith("http://") and member.weight > 0)
