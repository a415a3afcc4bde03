"""The disk tier admits by the memory tier's rule (proxy/cache/disk.py, Admission), on real
files: a one-time scan passes by the hot set, a hot newcomer gets in, a refusal writes
nothing, `accepts` and `put` agree; and the rule itself (proxy/cache/admission.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.cache.admission import MAX_VICTIMS, contest, outweighs, size_class
from proxy.cache.disk import DiskTier, bucket
from proxy.cache.memory import MemoryTier
from tests.unit.cache.test_disk import NOW, files_on_disk, make_entry
from tests.unit.cache.test_disk_shared import halves

KiB = 1024
BODY = b"v" * (64 * KiB)
HOT = [f"GET|media.test|/hot/{i}.mp4" for i in range(6)]
SCAN = [f"GET|media.test|/scan/{i}.mp4" for i in range(60)]


def counter() -> MemoryTier:
    """A real memory tier, used for what the server uses it for here: counting requests
    (its `get` counts every request, found or not)."""
    return MemoryTier(64 * 1024 * KiB, 4 * KiB)


def ask(memory: MemoryTier, key: str, times: int = 1) -> None:
    for _ in range(times):
        assert memory.get(key) is None  # too large for memory: only counted


async def tier_at(
    root: Path, frequency: Callable[[str], int] | None, max_bytes: int = 8 * 68 * KiB
) -> DiskTier:
    """Room for 8 of the 64 KiB entries (a file is the body and about 300 header bytes)."""
    tier = DiskTier(root, max_bytes=max_bytes, max_object_bytes=1024 * KiB, frequency=frequency)
    await tier.open(now=NOW)
    return tier


@pytest.fixture
async def memory_and_tier(tmp_path: Path) -> AsyncIterator[tuple[MemoryTier, DiskTier]]:
    memory = counter()
    tier = await tier_at(tmp_path, memory.frequency)
    try:
        yield memory, tier
    finally:
        await tier.close()


async def fill_hot(memory: MemoryTier, tier: DiskTier) -> None:
    for key in HOT:
        ask(memory, key, 5)
        assert await tier.put(key, make_entry(BODY), NOW)


async def scan(memory: MemoryTier, tier: DiskTier) -> list[bool]:
    results = []
    for key in SCAN:
        ask(memory, key)
        results.append(await tier.put(key, make_entry(BODY), NOW))
    return results


async def test_a_one_time_scan_leaves_the_hot_set(
    tmp_path: Path, memory_and_tier: tuple[MemoryTier, DiskTier]
) -> None:
    memory, tier = memory_and_tier
    await fill_hot(memory, tier)
    results = await scan(memory, tier)
    # The first two fill the free room (no victim to beat), the rest lose to the hot set.
    assert results == [True, True] + [False] * (len(SCAN) - 2)
    assert all(key in tier for key in HOT)
    assert set(files_on_disk(tmp_path)) == {*HOT, *SCAN[:2]}
    assert tier.rejections == len(SCAN) - 2
    assert tier.stats()["admission_rejections"] == tier.rejections
    for key in HOT:
        got = await tier.get(key, NOW)
        assert got is not None and got.body == BODY


async def test_without_a_frequency_the_scan_flushes_it(tmp_path: Path) -> None:
    """What admission prevents: the tier without it is the LRU it was."""
    memory = counter()
    tier = await tier_at(tmp_path, None)
    try:
        await fill_hot(memory, tier)
        assert all(await scan(memory, tier))
        assert not any(key in tier for key in HOT)
        assert tier.rejections == 0
    finally:
        await tier.close()


async def test_a_hot_newcomer_gets_in(memory_and_tier: tuple[MemoryTier, DiskTier]) -> None:
    memory, tier = memory_and_tier
    cold = [f"GET|media.test|/cold/{i}.mp4" for i in range(8)]
    for key in cold:
        ask(memory, key)
        assert await tier.put(key, make_entry(BODY), NOW)
    newcomer = "GET|media.test|/new.mp4"
    ask(memory, newcomer)
    assert not await tier.put(newcomer, make_entry(BODY), NOW)  # as cold: ties to residents
    ask(memory, newcomer, 3)
    assert await tier.put(newcomer, make_entry(BODY), NOW)
    assert newcomer in tier and cold[0] not in tier  # the least recently used made room
    assert all(key in tier for key in cold[1:])


async def test_a_smaller_object_as_often_asked_for_wins(
    memory_and_tier: tuple[MemoryTier, DiskTier],
) -> None:
    """Requests per byte: a quarter-size object asked for as often takes the place."""
    memory, tier = memory_and_tier
    await fill_hot(memory, tier)
    await scan(memory, tier)
    small = "GET|media.test|/small.mp4"
    ask(memory, small, 5)
    assert await tier.put(small, make_entry(b"s" * (16 * KiB)), NOW)


async def test_a_kept_key_is_always_rewritten(
    memory_and_tier: tuple[MemoryTier, DiskTier],
) -> None:
    memory, tier = memory_and_tier
    await fill_hot(memory, tier)
    await scan(memory, tier)
    kept = SCAN[0]  # in by the free room, asked for once
    assert kept in tier
    assert await tier.put(kept, make_entry(b"w" * (64 * KiB)), NOW)
    got = await tier.get(kept, NOW)
    assert got is not None and got.body == b"w" * (64 * KiB)


async def test_accepts_and_put_agree(
    tmp_path: Path, memory_and_tier: tuple[MemoryTier, DiskTier]
) -> None:
    memory, tier = memory_and_tier
    await fill_hot(memory, tier)
    await scan(memory, tier)
    entry = make_entry(BODY)
    for times in range(1, 8):
        key = f"GET|media.test|/asked/{times}.mp4"
        ask(memory, key, times)
        said = tier.accepts(key, entry.size)
        assert said is tier.accepts(key, entry.size)  # asked again (head, then store)
        assert await tier.put(key, entry, NOW) is said
        assert (key in files_on_disk(tmp_path)) is said


async def test_a_yes_holds_for_the_next_put_of_its_size(
    memory_and_tier: tuple[MemoryTier, DiskTier],
) -> None:
    """A yes told before the body takes the put of up to twice the size it was weighed
    at, even when the contest would refuse it by then; only that one put. A yes weighed
    at no size (not known yet), or at a body's first chunks, is weighed again at the
    whole: a scan of objects sent without a length cannot pass by the contest."""
    memory, tier = memory_and_tier
    key, other = "GET|media.test|/told.mp4", "GET|media.test|/other.mp4"
    for k in (key, other):
        ask(memory, k)
        assert tier.accepts(k, make_entry(BODY).size)  # room left: a yes
    await fill_hot(memory, tier)
    await scan(memory, tier)
    assert not tier.accepts("GET|media.test|/new.mp4", make_entry(BODY).size)
    assert await tier.put(key, make_entry(BODY), NOW)
    assert not await tier.put(other, make_entry(BODY, at=NOW - 7200, lifetime=1), NOW)
    assert not await tier.put(other, make_entry(BODY), NOW)  # that put used the promise
    chunked = "GET|media.test|/chunked.mp4"
    ask(memory, chunked)
    assert tier.accepts(chunked, 0)
    assert not tier.accepts(chunked, make_entry(BODY).size)
    assert not await tier.put(chunked, make_entry(BODY), NOW)


async def test_size_bounds_come_before_admission(
    memory_and_tier: tuple[MemoryTier, DiskTier],
) -> None:
    memory, tier = memory_and_tier
    key = "GET|media.test|/huge.mp4"
    ask(memory, key, 15)
    assert not tier.accepts(key, 2048 * KiB)  # over max_object_bytes
    assert tier.rejections == 0  # a size refusal is not an admission one


async def test_shared_directory_workers_admit_their_own_buckets(tmp_path: Path) -> None:
    """Two workers sharing one directory, each with its own request counts."""
    mine, theirs = halves()
    memories = counter(), counter()
    tiers = [
        DiskTier(
            tmp_path,
            max_bytes=16 * 68 * KiB,
            max_object_bytes=1024 * KiB,
            shared=True,
            frequency=m.frequency,
        )
        for m in memories
    ]
    try:
        for tier, buckets in zip(tiers, (mine, theirs), strict=True):
            await tier.open(now=NOW)
            await tier.own(buckets, now=NOW)

        def owner(key: str) -> int:
            return 0 if bucket(key) in mine else 1

        # Five hot keys per worker: each keeps about 8 entries (half the budget).
        names = (f"GET|media.test|/shared/hot/{i}.mp4" for i in range(1000))
        hot = [k for k in names if owner(k) == 0][:5] + [k for k in names if owner(k)][:5]
        for key in hot:
            i = owner(key)
            ask(memories[i], key, 5)
            assert await tiers[i].put(key, make_entry(BODY), NOW)
        kept = {key for key in hot if any(key in t for t in tiers)}
        stored_scan = []
        for key in SCAN:
            i = owner(key)
            ask(memories[i], key)
            if await tiers[i].put(key, make_entry(BODY), NOW):
                stored_scan.append(key)
        # Whatever the split, no scan key pushed out a hot one: it only took free room.
        assert {key for key in hot if any(key in t for t in tiers)} == kept
        assert set(files_on_disk(tmp_path)) == kept | set(stored_scan)
        assert sum(t.rejections for t in tiers) == len(SCAN) - len(stored_scan) > 0
    finally:
        for tier in tiers:
            await tier.close()


# -- the rule ------------------------------------------------------------------------------

counts = st.integers(min_value=0, max_value=1000)
sizes = st.integers(min_value=1, max_value=1 << 40)


@given(counts, sizes, counts, sizes)
def test_outweighs_is_more_requests_per_byte_by_size_class(
    count: int, size: int, rcount: int, rsize: int
) -> None:
    assert outweighs(count, size, rcount, rsize) is (
        Fraction(count, size_class(size)) > Fraction(rcount, size_class(rsize))
    )
    assert not outweighs(count, size, count, size)  # a tie goes to the resident
    if outweighs(count, size, rcount, rsize):
        assert not outweighs(rcount, rsize, count, size)


@given(
    counts,
    sizes,
    st.integers(min_value=-(1 << 20), max_value=1 << 22),
    st.lists(st.tuples(counts, st.integers(min_value=1, max_value=1 << 20)), max_size=300),
)
def test_contest_takes_residents_in_order_until_there_is_room(
    count: int, size: int, need: int, residents: list[tuple[int, int]]
) -> None:
    freq = dict(enumerate(c for c, _ in residents))
    offered = iter([(i, s) for i, (_, s) in enumerate(residents)])
    victims = contest(count, size, need, offered, freq.__getitem__)
    # The reference: the shortest prefix freeing `need`, each of it beaten.
    freed, prefix = 0, 0
    while freed < need and prefix < len(residents):
        freed += residents[prefix][1]
        prefix += 1
    wins = freed >= need and prefix <= MAX_VICTIMS
    wins = wins and all(outweighs(count, size, c, s) for c, s in residents[:prefix])
    assert victims == (list(range(prefix)) if wins else None)
