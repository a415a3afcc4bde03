"""One disk directory shared by the workers of an instance, each keeping the buckets it
owns (proxy/cache/disk.py, `shared`), on real files: what a worker stores, finds,
adopts and lets go when ownership moves, and the per-worker layout moved in."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.cache.disk import (
    BUCKETS,
    DiskTier,
    DiskTierBusy,
    bucket,
    lock_directory,
    share_directory,
)
from proxy.cluster.listener import owned_buckets
from proxy.cluster.owner import Member, Ring
from tests.unit.cache.test_disk import NOW, files_on_disk, make_entry, path_of

KiB = 1024
KEYS = [f"GET|media.test|/seg/{i}.ts" for i in range(64)]


def halves() -> tuple[frozenset[str], frozenset[str]]:
    ring = Ring.of([Member("unix:1"), Member("unix:2")])
    return owned_buckets(ring, "unix:1"), owned_buckets(ring, "unix:2")


async def shared(root: Path, max_bytes: int = 64 * 1024 * KiB) -> DiskTier:
    tier = DiskTier(root, max_bytes=max_bytes, max_object_bytes=4 * 1024 * KiB, shared=True)
    await tier.open(now=NOW)
    return tier


async def whole(root: Path, max_bytes: int = 64 * 1024 * KiB) -> DiskTier:
    tier = DiskTier(root, max_bytes=max_bytes, max_object_bytes=4 * 1024 * KiB)
    await tier.open(now=NOW)
    return tier


def test_buckets_partition_between_members() -> None:
    a, b = halves()
    assert a | b == BUCKETS and not a & b
    # Rendezvous: each gets about half of the 4,096 (binomial sd 32).
    assert 1800 < len(a) < 2300


@given(st.text())
def test_bucket_is_the_file_name_prefix(key: str) -> None:
    b = bucket(key)
    assert b in BUCKETS
    try:
        name = path_of(Path("/"), key).name
    except UnicodeEncodeError:
        return  # never stored: only stability matters, and it is a pure function
    assert name.startswith(b)


async def test_owns_nothing_until_told(tmp_path: Path) -> None:
    tier = await shared(tmp_path)
    try:
        assert not tier.accepts("k", 10 * KiB)  # no share of the budget yet
        assert not await tier.put(KEYS[0], make_entry(b"x" * KiB), NOW)
        assert files_on_disk(tmp_path) == {}
    finally:
        await tier.close()


async def test_two_workers_store_each_key_once(tmp_path: Path) -> None:
    mine, theirs = halves()
    a, b = await shared(tmp_path), await shared(tmp_path)
    try:
        await a.own(mine, now=NOW)
        await b.own(theirs, now=NOW)
        assert a.max_bytes + b.max_bytes <= 64 * 1024 * KiB
        for key in KEYS:
            owner, other = (a, b) if bucket(key) in mine else (b, a)
            assert owner.accepts(key, 10 * KiB) and not other.accepts(key, 10 * KiB)
            assert not await other.put(key, make_entry(key.encode() * 100), NOW)
            assert await owner.put(key, make_entry(key.encode() * 100), NOW)
        on_disk = files_on_disk(tmp_path)
        assert set(on_disk) == set(KEYS)  # one file per key, in the one directory
        assert len(a) + len(b) == len(KEYS)
        for key in KEYS:
            owner = a if bucket(key) in mine else b
            got = await owner.get(key, now=NOW)
            assert got is not None and got.body == key.encode() * 100
    finally:
        await a.close()
        await b.close()


async def test_a_gained_bucket_is_adopted_and_a_lost_one_left_on_disk(tmp_path: Path) -> None:
    mine, theirs = halves()
    a, b = await shared(tmp_path), await shared(tmp_path)
    try:
        await a.own(mine, now=NOW)
        await b.own(theirs, now=NOW)
        for key in KEYS:
            await (a if bucket(key) in mine else b).put(key, make_entry(b"v" * KiB), NOW)
        held_by_b = [k for k in KEYS if bucket(k) in theirs]
        assert held_by_b
        # b leaves (its worker stopped): a owns every bucket and finds b's files.
        await b.close()
        await a.own(BUCKETS, now=NOW)
        assert len(a) == len(KEYS)
        for key in held_by_b:
            got = await a.get(key, now=NOW)
            assert got is not None and got.body == b"v" * KiB
        # A new worker takes half back: a lets go of those keys, their files stay.
        await a.own(mine, now=NOW)
        assert all(key not in a for key in held_by_b)
        assert set(files_on_disk(tmp_path)) == set(KEYS)
        c = await shared(tmp_path)
        try:
            await c.own(theirs, now=NOW)
            assert all(key in c for key in held_by_b)
        finally:
            await c.close()
    finally:
        await a.close()


async def test_restart_with_another_worker_count_finds_everything(tmp_path: Path) -> None:
    """Files written by two sharing workers are found by one worker alone (and the other
    way round): the layout does not depend on how many workers there are."""
    mine, theirs = halves()
    a, b = await shared(tmp_path), await shared(tmp_path)
    await a.own(mine, now=NOW)
    await b.own(theirs, now=NOW)
    for key in KEYS:
        await (a if bucket(key) in mine else b).put(key, make_entry(b"w" * KiB), NOW)
    await a.close()
    await b.close()
    one = await whole(tmp_path)
    try:
        assert len(one) == len(KEYS)
    finally:
        await one.close()
    ring = Ring.of([Member(f"unix:{i}") for i in range(3)])
    three = [await shared(tmp_path) for _ in range(3)]
    try:
        for i, tier in enumerate(three):
            await tier.own(owned_buckets(ring, f"unix:{i}"), now=NOW)
        assert sum(len(t) for t in three) == len(KEYS)
    finally:
        for tier in three:
            await tier.close()


async def test_budget_is_the_owned_share_and_evicts_within_it(tmp_path: Path) -> None:
    mine, _ = halves()
    budget = 400 * KiB
    a = await shared(tmp_path, max_bytes=budget)
    try:
        await a.own(mine, now=NOW)
        assert a.max_bytes == budget * len(mine) // len(BUCKETS)
        body = b"e" * (20 * KiB)
        for key in [f"GET|h|/{i}" for i in range(200)]:
            if bucket(key) in mine:
                await a.put(key, make_entry(body), NOW)
        assert 0 < a.stats()["bytes"] <= a.max_bytes
        assert a.evictions > 0
    finally:
        await a.close()


async def test_purge_of_another_workers_key_removes_its_file(tmp_path: Path) -> None:
    mine, theirs = halves()
    a, b = await shared(tmp_path), await shared(tmp_path)
    try:
        await a.own(mine, now=NOW)
        await b.own(theirs, now=NOW)
        key = next(k for k in KEYS if bucket(k) in theirs)
        assert await b.put(key, make_entry(b"p" * KiB), NOW)
        await a.delete(key)  # the purge reached the other worker
        assert key not in files_on_disk(tmp_path)
        assert await b.get(key, now=NOW) is None  # its index entry finds no file: a miss
    finally:
        await a.close()
        await b.close()


async def test_young_temp_files_of_a_sharing_writer_are_left(tmp_path: Path) -> None:
    mine, _ = halves()
    shard = tmp_path / next(iter(sorted(mine)))[:2]
    shard.mkdir(parents=True)
    young, old = shard / ".tmp-young", shard / ".tmp-old"
    young.write_bytes(b"half")
    old.write_bytes(b"half")
    hour_ago = time.time() - 3600
    os.utime(old, (hour_ago, hour_ago))
    a = await shared(tmp_path)
    try:
        await a.own(mine)
        assert young.exists() and not old.exists()
    finally:
        await a.close()


async def test_share_directory_moves_per_worker_files_in_and_holds_the_lock(
    tmp_path: Path,
) -> None:
    """Workers that were not peers kept <path>/w0, w1: sharing moves their files in."""
    for i, keys in enumerate((KEYS[:20], KEYS[20:40])):
        tier = await whole(tmp_path / f"w{i}")
        for key in keys:
            await tier.put(key, make_entry(b"m" * KiB), NOW)
        await tier.close()
    fd = share_directory(str(tmp_path))
    try:
        assert not (tmp_path / "w0").exists() and not (tmp_path / "w1").exists()
        assert set(files_on_disk(tmp_path)) == set(KEYS[:40])
        with pytest.raises(DiskTierBusy):
            lock_directory(str(tmp_path))  # a second instance on the directory
        with pytest.raises(DiskTierBusy):
            await whole(tmp_path)
    finally:
        os.close(fd)
    one = await whole(tmp_path)
    try:
        assert len(one) == 40
    finally:
        await one.close()


async def test_own_is_refused_by_a_whole_directory_tier(tmp_path: Path) -> None:
    tier = await whole(tmp_path)
    try:
        with pytest.raises(RuntimeError):
            await tier.own(BUCKETS)
    finally:
        await tier.close()
