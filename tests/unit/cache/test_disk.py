"""The disk tier on real files: round trips, restarts, LRU budget, crash safety, damage.

No filesystem mocks: failures come from the real kernel (RLIMIT_FSIZE for a write that
dies half-way, a directory where a file should go, a read-only or immutable directory).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import resource
import shutil
import signal
import subprocess
import tempfile
import time
import zlib
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from config.disk import DiskSettings
from proxy.cache import codec
from proxy.cache.disk import CHUNK_BYTES, DiskTier, DiskTierBusy, encode_header
from proxy.cache.entry import Entry
from proxy.http.freshness import Freshness

NOW = 1_700_000_000.0
KiB = 1024


def make_entry(body: bytes, *, at: float = NOW, lifetime: float = 3600.0) -> Entry:
    etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
    return Entry(
        status=200,
        headers=[(b"content-type", b"video/mp4"), (b"etag", etag.encode())],
        origin_headers=[("content-type", "video/mp4"), ("etag", etag)],
        body=body,
        etag=etag,
        last_modified=at - 100,
        content_type="video/mp4",
        response_time=at,
        freshness=Freshness(True, "", lifetime, 0.0, 30.0, 60.0, False, False),
        upstream_status=b"up; hit",
    )


def file_size(key: str, body: bytes) -> int:
    e = make_entry(body)
    return len(encode_header(key, e, len(body), zlib.crc32(body))) + len(body)


def path_of(root: Path, key: str) -> Path:
    h = hashlib.sha256(key.encode()).hexdigest()
    return root / h[:2] / h


def files_on_disk(root: Path) -> dict[str, int]:
    """key -> size of every entry file, read back with the codec; temp files are listed
    under their own names so a leftover shows up as a difference."""
    found: dict[str, int] = {}
    for p in root.glob("*/*"):
        if p.name.startswith(".tmp-"):
            found[p.name] = -1
            continue
        meta, _ = codec.decode_meta(p.read_bytes())
        found[meta["key"]] = p.stat().st_size
    return found


def write_entries(root: Path, keys: list[str], body: bytes) -> None:
    """Entry files as a previous run of the tier would have left them."""
    entry = make_entry(body)
    for i in range(256):
        (root / f"{i:02x}").mkdir(exist_ok=True)
    for key in keys:
        with open(path_of(root, key), "wb") as f:
            f.write(encode_header(key, entry, len(body), zlib.crc32(body)) + body)


def tier_at(
    root: Path, max_bytes: int = 64 << 20, max_object_bytes: int | None = None, io_threads: int = 2
) -> DiskTier:
    return DiskTier(
        root,
        max_bytes=max_bytes,
        max_object_bytes=max_bytes if max_object_bytes is None else max_object_bytes,
        io_threads=io_threads,
    )


@pytest.fixture
async def tier(tmp_path: Path) -> AsyncIterator[DiskTier]:
    t = tier_at(tmp_path / "disk")
    await t.open(now=NOW)
    yield t
    await t.close()


async def reopen(t: DiskTier, now: float = NOW, max_bytes: int | None = None) -> DiskTier:
    """A "restart": a new tier over the same directory."""
    await t.close()
    fresh = tier_at(Path(t.root), max_bytes=t.max_bytes if max_bytes is None else max_bytes)
    await fresh.open(now=now)
    return fresh


# -- round trips ---------------------------------------------------------------------------


async def test_round_trip_keeps_every_fact_and_the_file_is_codec_readable(tier: DiskTier) -> None:
    e = make_entry(os.urandom(300 * KiB))
    assert await tier.put("k1", e, NOW)
    got = await tier.get("k1", now=NOW)
    assert got is not None
    for name in ("status", "headers", "origin_headers", "body", "etag", "last_modified"):
        assert getattr(got, name) == getattr(e, name), name
    assert (got.fresh_until, got.size, got.full_headers) == (e.fresh_until, e.size, e.full_headers)
    # Format: the codec layout with the key in the meta, at <root>/<h[:2]>/<h>.
    blob = path_of(Path(tier.root), "k1").read_bytes()
    assert codec.decode(blob).body == e.body
    assert codec.decode_meta(blob)[0]["key"] == "k1"
    s = tier.stats()
    assert (s["hits"], s["entries"], s["bytes"], s["stores"]) == (1, 1, len(blob), 1)
    assert s["bytes_read"] == s["bytes_written"] == len(blob)
    assert await tier.get("nope", now=NOW) is None
    assert tier.stats()["misses"] == 1


async def test_keys_of_any_text_round_trip(tier: DiskTier) -> None:
    keys = ["h\x00/img.jpg\x00image\x00w=10", "/vidéo/ü.mp4?x=ß", "k" * 4000]
    for k in keys:
        assert await tier.put(k, make_entry(k.encode()), NOW)
    tier = await reopen(tier)
    for k in keys:
        got = await tier.get(k, now=NOW)
        assert got is not None and got.body == k.encode()
    assert not await tier.put("bad\udc80", make_entry(b"x"), NOW)  # lone surrogate
    await tier.close()


async def test_an_unreadable_file_is_a_miss(tier: DiskTier) -> None:
    await tier.put("k", make_entry(b"x"), NOW)
    path = path_of(Path(tier.root), "k")
    path.unlink()
    path.mkdir()  # open() fails with EISDIR, which is no proof of damage
    assert await tier.get("k", now=NOW) is None
    assert ("k" in tier, tier.stats()["read_errors"], path.is_dir()) == (False, 1, True)
    path.rmdir()
    await tier.put("gone", make_entry(b"x"), NOW)
    path_of(Path(tier.root), "gone").unlink()
    assert await tier.open_body("gone", now=NOW) is None
    assert "gone" not in tier and tier.stats()["bytes"] == 0


async def test_streaming_read_yields_the_body_in_chunks(tier: DiskTier) -> None:
    body = os.urandom(3 * CHUNK_BYTES + 17)
    e = make_entry(body)
    await tier.put("big", e, NOW)
    stream = await tier.open_body("big", now=NOW)
    assert stream is not None
    async with stream:
        chunks = [c async for c in stream]
    assert b"".join(chunks) == body
    assert [len(c) for c in chunks] == [CHUNK_BYTES] * 3 + [17]
    # The facts describe the whole object though the body is not in memory.
    assert stream.length == len(body)
    assert stream.entry.body == b""
    assert (stream.entry.full_headers, stream.entry.size) == (e.full_headers, e.size)
    empty = make_entry(b"")
    await tier.put("empty", empty, NOW)
    s2 = await tier.open_body("empty", now=NOW)
    assert s2 is not None
    assert [c async for c in s2] == []


async def test_limits_refuse_and_drop_the_older_version(tmp_path: Path) -> None:
    t = tier_at(tmp_path, max_bytes=1024 * KiB, max_object_bytes=100 * KiB)
    await t.open(now=NOW)
    assert await t.put("k", make_entry(b"a" * 1000), NOW)
    assert not await t.put("k", make_entry(b"b" * (100 * KiB + 1)), NOW)
    # Too large now: the smaller older copy must not be served in its place.
    assert await t.get("k", now=NOW) is None
    assert files_on_disk(tmp_path) == {}
    # Past every stale window already: nothing to keep.
    assert not await t.put("old", make_entry(b"x", at=NOW - 10_000, lifetime=60), NOW)
    await t.close()


async def test_placement_band(tmp_path: Path) -> None:
    t = DiskTier(tmp_path, max_bytes=10_000, max_object_bytes=5000, min_object_bytes=1000)
    assert [t.accepts("k", n) for n in (999, 1000, 5000, 5001)] == [False, True, True, False]
    # max_object_bytes never exceeds the whole budget.
    assert DiskTier(tmp_path, max_bytes=10, max_object_bytes=5000).max_object_bytes == 10


async def test_tier_off_and_settings() -> None:
    assert await DiskTier.from_settings(DiskSettings()) is None
    s = DiskSettings(path=Path("/x"))
    assert (s.max_bytes, s.max_object_bytes, s.min_object_bytes, s.fsync) == (
        10 << 30,
        64 << 20,
        1 << 20,
        False,
    )
    with pytest.raises(ValidationError):
        DiskSettings(bogus=1)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        DiskSettings(min_object_bytes=10, max_object_bytes=5)
    with pytest.raises(ValidationError):
        s.fsync = True


async def test_from_settings_with_fsync(tmp_path: Path) -> None:
    t = await DiskTier.from_settings(DiskSettings(path=tmp_path, fsync=True, max_bytes=1 << 20))
    assert t is not None
    now = time.time()
    assert await t.put("k", make_entry(b"durable", at=now), now)
    got = await t.get("k")
    assert got is not None and got.body == b"durable"
    await t.close()


# -- restart and LRU -----------------------------------------------------------------------


async def test_survives_restart_with_lru_order_and_budget(tmp_path: Path) -> None:
    body = b"v" * (100 * KiB)
    size = file_size("a", body)
    t = tier_at(tmp_path, max_bytes=3 * size + 100)
    await t.open(now=NOW)
    for k in "abc":
        assert await t.put(k, make_entry(body), NOW)
    assert await t.get("a", now=NOW) is not None  # a is now the most recently used
    t = await reopen(t)
    assert (len(t), t.stats()["bytes"]) == (3, 3 * size)
    assert await t.put("d", make_entry(body), NOW)
    # b was least recently used before the restart, so it goes first after it.
    assert ("b" in t, "a" in t, "c" in t, "d" in t) == (False, True, True, True)
    got = await t.get("a", now=NOW)
    assert got is not None and got.body == body
    assert set(files_on_disk(tmp_path)) == {"a", "c", "d"}
    # A smaller budget after a restart evicts down to it, oldest first.
    t = await reopen(t, max_bytes=size + 100)
    assert set(files_on_disk(tmp_path)) == {"a"} and len(t) == 1
    await t.close()


async def test_restart_keeps_the_exact_order_of_writes_within_one_clock_tick(
    tmp_path: Path,
) -> None:
    # File times from the kernel are coarse (a jiffy): many writes share one. The tier
    # stamps its own strictly increasing times, so the order after a restart is exact.
    body = b"o" * 100
    size = file_size("k00", body)
    t = tier_at(tmp_path, max_bytes=30 * size)
    await t.open(now=NOW)
    for i in range(30):
        await t.put(f"k{i:02}", make_entry(body), NOW)
    for i in range(0, 30, 2):
        await t.get(f"k{i:02}", now=NOW)
    order = [f"k{i:02}" for i in [*range(1, 30, 2), *range(0, 30, 2)]]
    t = await reopen(t)
    for n, key in enumerate(order):
        await t.put(f"n{n:02}", make_entry(body), NOW)  # same file size as k..
        assert key not in t and all(k in t for k in order[n + 1 :])
    await t.close()


async def test_eviction_by_budget_in_lru_order(tmp_path: Path) -> None:
    body = b"e" * (50 * KiB)
    size = file_size("k0", body)
    t = tier_at(tmp_path, max_bytes=4 * size)
    await t.open(now=NOW)
    for i in range(4):
        await t.put(f"k{i}", make_entry(body), NOW)
    await t.get("k0", now=NOW)
    await t.get("k2", now=NOW)
    await t.put("k4", make_entry(body), NOW)
    await t.put("k5", make_entry(body), NOW)
    assert set(files_on_disk(tmp_path)) == {"k0", "k2", "k4", "k5"}
    assert t.stats()["evictions"] == 2
    assert t.stats()["bytes"] <= t.max_bytes
    # One object larger than what two slots free: several go at once.
    await t.put("huge", make_entry(b"h" * (130 * KiB)), NOW)
    assert set(files_on_disk(tmp_path)) == {"k5", "huge"}
    await t.close()


async def test_expired_entries_are_dropped_on_rebuild_and_on_read(tmp_path: Path) -> None:
    t = tier_at(tmp_path)
    await t.open(now=NOW)
    await t.put("short", make_entry(b"s", lifetime=60), NOW)  # + 60 s stale-if-error
    await t.put("long", make_entry(b"l", lifetime=3600), NOW)
    t = await reopen(t, now=NOW + 200)
    assert ("short" in t, "long" in t) == (False, True)
    assert set(files_on_disk(tmp_path)) == {"long"}
    assert t.stats()["expired_dropped"] == 1
    assert await t.get("long", now=NOW + 5000) is None
    await asyncio.sleep(0.05)  # the unlink runs in the background
    await t.close()
    assert files_on_disk(tmp_path) == {}


async def test_rebuild_of_10k_files_does_not_block_the_loop(tmp_path: Path) -> None:
    body = b"segment"
    write_entries(tmp_path, [f"/video/{i}.ts" for i in range(10_000)], body)
    gaps: list[float] = []
    done = False

    async def ticker() -> None:
        last = time.perf_counter()
        while not done:
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    tick = asyncio.create_task(ticker())
    t = tier_at(tmp_path)
    started = time.perf_counter()
    await t.open(now=NOW)
    took = time.perf_counter() - started
    done = True
    await tick
    assert len(t) == 10_000
    # A scan on the loop would leave the ticker no turn until it ends; off the loop the
    # ticker keeps running through it (a count, not a time: loaded machines vary).
    assert len(gaps) > 10, (took, len(gaps))
    got = await t.get("/video/1234.ts", now=NOW)
    assert got is not None and got.body == body
    await t.close()


# -- crash safety --------------------------------------------------------------------------


async def test_leftover_temp_files_are_removed_at_open(tmp_path: Path) -> None:
    body = b"t" * 5000
    path = path_of(tmp_path, "k")
    path.parent.mkdir()
    # A crash mid-write: a temp file with a valid-looking but partial entry.
    whole = encode_header("k", make_entry(body), len(body), zlib.crc32(body)) + body
    (path.parent / ".tmp-0123abcd").write_bytes(whole[:-100])
    t = tier_at(tmp_path)
    await t.open(now=NOW)
    assert len(t) == 0 and t.stats()["temps_removed"] == 1
    assert files_on_disk(tmp_path) == {}
    await t.close()


@contextmanager
def file_size_limit(nbytes: int) -> Iterator[None]:
    """Writes past ``nbytes`` fail with EFBIG in this process: a write that dies half-way."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    old = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old)


async def test_a_write_failing_half_way_leaves_no_file(tier: DiskTier) -> None:
    root = Path(tier.root)
    assert await tier.put("k", make_entry(b"old"), NOW)
    with file_size_limit(64 * KiB):
        assert not await tier.put("k", make_entry(b"n" * (256 * KiB)), NOW)
    # No temp file, no partial file, and the replaced older version is gone too.
    assert files_on_disk(root) == {}
    assert await tier.get("k", now=NOW) is None
    assert tier.stats()["write_errors"] == 1
    assert await tier.put("k", make_entry(b"n" * (256 * KiB)), NOW)
    assert set(files_on_disk(root)) == {"k"}


async def test_a_rename_that_fails_leaves_no_temp_file(tier: DiskTier) -> None:
    target = path_of(Path(tier.root), "k")
    (target / "occupied").mkdir(parents=True)  # a non-empty directory where the file goes
    assert not await tier.put("k", make_entry(b"x" * 1000), NOW)
    assert [p.name for p in target.parent.iterdir()] == [target.name]
    assert tier.stats()["write_errors"] == 1


@contextmanager
def unwritable(path: Path) -> Iterator[None]:
    if os.geteuid() != 0:
        path.chmod(0o555)
        try:
            yield
        finally:
            path.chmod(0o755)
        return
    # root ignores permission bits; the immutable attribute binds root too.
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", str(path)], capture_output=True).returncode:
        pytest.skip("running as root without a working chattr +i")
    try:
        yield
    finally:
        subprocess.run([chattr, "-i", str(path)], check=True)


async def test_an_unwritable_directory_makes_put_return_false(tmp_path: Path) -> None:
    t = tier_at(tmp_path)
    await t.open(now=NOW)
    with unwritable(tmp_path):
        for i in range(5):
            assert not await t.put(f"k{i}", make_entry(b"x" * 1000), NOW)
    assert t.stats()["write_errors"] == 5
    assert len(t) == 0
    assert await t.put("k0", make_entry(b"x"), NOW)
    await t.close()


async def test_a_blocked_shard_directory_makes_put_return_false(tier: DiskTier) -> None:
    # Works as any user: a regular file where the shard directory must be.
    path_of(Path(tier.root), "k").parent.write_bytes(b"")
    assert not await tier.put("k", make_entry(b"x"), NOW)
    assert tier.stats()["write_errors"] == 1


async def test_one_tier_per_directory(tier: DiskTier) -> None:
    with pytest.raises(DiskTierBusy):
        await DiskTier.from_settings(DiskSettings(path=Path(tier.root)))
    await tier.close()
    # Closing releases the directory: a restart in the same process can take it.
    again = await DiskTier.from_settings(DiskSettings(path=Path(tier.root)))
    assert again is not None
    await again.close()


# -- damage --------------------------------------------------------------------------------


def damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[:-1])
    elif how == "flipped":
        i = len(data) - 1000
        path.write_bytes(data[:i] + bytes([data[i] ^ 0x10]) + data[i + 1 :])
    elif how == "garbage":
        path.write_bytes(os.urandom(len(data)))
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "extended":
        path.write_bytes(data + b"\0")


DAMAGE = ["truncated", "flipped", "garbage", "empty", "extended"]


@pytest.mark.parametrize("how", DAMAGE)
async def test_a_damaged_file_is_a_miss_and_goes(tier: DiskTier, how: str) -> None:
    await tier.put("k", make_entry(os.urandom(50 * KiB)), NOW)
    damage(path_of(Path(tier.root), "k"), how)
    assert await tier.get("k", now=NOW) is None
    assert not path_of(Path(tier.root), "k").exists()
    assert ("k" in tier, tier.stats()["corrupt_dropped"], tier.stats()["bytes"]) == (False, 1, 0)


@pytest.mark.parametrize("how", DAMAGE)
async def test_a_damaged_file_never_streams_to_the_end(tier: DiskTier, how: str) -> None:
    body = os.urandom(2 * CHUNK_BYTES + 5000)
    await tier.put("k", make_entry(body), NOW)
    damage(path_of(Path(tier.root), "k"), how)
    stream = await tier.open_body("k", now=NOW)
    if stream is not None:
        # Only a flipped bit gets past the size check; the last chunk is never handed out.
        assert how == "flipped"
        got = []
        with pytest.raises(codec.CorruptEntry):
            async for chunk in stream:
                got.append(chunk)
        assert sum(map(len, got)) < len(body)
    assert not path_of(Path(tier.root), "k").exists()
    assert ("k" in tier, tier.stats()["corrupt_dropped"]) == (False, 1)


@pytest.mark.parametrize("how", [*DAMAGE, "misplaced"])
async def test_damaged_files_are_dropped_by_the_restart_scan(tmp_path: Path, how: str) -> None:
    t = tier_at(tmp_path)
    await t.open(now=NOW)
    await t.put("k", make_entry(os.urandom(50 * KiB)), NOW)
    await t.put("ok", make_entry(b"fine"), NOW)
    if how == "misplaced":  # a valid entry under another key's name
        os.replace(path_of(tmp_path, "ok"), path_of(tmp_path, "k"))
    else:
        damage(path_of(tmp_path, "k"), how)
    t = await reopen(t)
    if how == "flipped":  # bodies are not read at start; the first read catches it
        assert "k" in t
        assert await t.get("k", now=NOW) is None
    elif how != "misplaced":
        assert t.stats()["corrupt_dropped"] == 1
    assert "k" not in t
    assert not path_of(tmp_path, "k").exists()
    await t.close()


# -- deletes -------------------------------------------------------------------------------


async def test_delete_and_clear(tier: DiskTier) -> None:
    root = Path(tier.root)
    for k in "abcd":
        await tier.put(k, make_entry(k.encode() * 100), NOW)
    assert await tier.delete("a", "b", "zz") == 2
    assert set(files_on_disk(root)) == {"c", "d"}
    # An entry file the index does not know (say, from a failed read) goes with clear too.
    stray = path_of(root, "stray")
    stray.parent.mkdir(exist_ok=True)
    stray.write_bytes(encode_header("stray", make_entry(b"s"), 1, zlib.crc32(b"s")) + b"s")
    assert await tier.clear() == 2
    assert files_on_disk(root) == {}
    assert tier.stats()["bytes"] == 0
    assert await tier.put("e", make_entry(b"e"), NOW)


async def test_a_cancelled_put_still_lands_in_the_index(tier: DiskTier) -> None:
    task = asyncio.create_task(tier.put("k", make_entry(b"c" * (512 * KiB)), NOW))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await tier.close()  # waits for the shielded write
    assert "k" in tier and "k" in files_on_disk(Path(tier.root))


# -- concurrency ---------------------------------------------------------------------------


async def test_concurrent_puts_and_reads_of_one_key_never_see_a_torn_file(tmp_path: Path) -> None:
    t = tier_at(tmp_path, max_bytes=64 << 20, io_threads=4)
    await t.open(now=NOW)
    bodies = [bytes([i]) * (300 * KiB) + os.urandom(64) for i in range(6)]
    seen = 0

    def check(body: bytes, entry: Entry) -> None:
        assert body in bodies
        assert entry.etag == make_entry(body).etag  # header and body from one write

    async def writer(i: int) -> None:
        for j in range(5):
            assert await t.put("hot", make_entry(bodies[(i + j) % len(bodies)]), NOW)

    async def reader() -> None:
        nonlocal seen
        for _ in range(20):
            await asyncio.sleep(0.001)
            got = await t.get("hot", now=NOW)
            if got is not None:
                check(got.body, got)
                seen += 1
            stream = await t.open_body("hot", now=NOW)
            if stream is not None:
                check(b"".join([c async for c in stream]), stream.entry)
                seen += 1

    await asyncio.gather(*(writer(i) for i in range(6)), *(reader() for _ in range(6)))
    assert seen > 0
    assert t.stats()["corrupt_dropped"] == 0
    assert set(files_on_disk(tmp_path)) == {"hot"}
    assert t.stats()["bytes"] == sum(files_on_disk(tmp_path).values())
    await t.close()


async def test_concurrent_churn_over_a_small_budget_keeps_index_and_directory_in_step(
    tmp_path: Path,
) -> None:
    # Evictions, replacements, deletes and reads of the same few keys, all at once: the
    # index must end up describing exactly the files on disk.
    t = tier_at(tmp_path, max_bytes=3 * file_size("k0", b"x" * (40 * KiB)), io_threads=4)
    await t.open(now=NOW)
    rng = random.Random(7)

    async def worker(n: int) -> None:
        for i in range(25):
            key = f"k{rng.randrange(6)}"
            op = rng.random()
            if op < 0.5:
                await t.put(key, make_entry(bytes([n]) * (40 * KiB + i)), NOW)
            elif op < 0.8:
                got = await t.get(key, now=NOW)
                assert got is None or got.etag == make_entry(got.body).etag
            elif op < 0.9:
                await t.delete(key)
            else:
                stream = await t.open_body(key, now=NOW)
                if stream is not None:
                    assert make_entry(b"".join([c async for c in stream])).etag == stream.entry.etag

    await asyncio.gather(*(worker(n) for n in range(12)))
    await t.close()
    on_disk = files_on_disk(tmp_path)
    assert set(on_disk) == {k for k in (f"k{i}" for i in range(6)) if k in t}
    assert t.stats()["bytes"] == sum(on_disk.values()) <= t.max_bytes
    assert t.stats()["corrupt_dropped"] == 0


async def test_open_in_the_background_misses_until_ready_and_a_purge_waits_for_it(
    tmp_path: Path,
) -> None:
    write_entries(tmp_path, [f"/seg/{i}.ts" for i in range(2000)], b"s")
    t = tier_at(tmp_path)
    opening = asyncio.create_task(t.open(now=NOW))
    await asyncio.sleep(0)
    assert not t.ready
    assert await t.get("/seg/1.ts", now=NOW) is None
    assert not await t.put("/seg/x.ts", make_entry(b"x"), NOW)
    # A purge that arrives during the scan is applied after it, not undone by it.
    assert await t.delete("/seg/2.ts") == 1
    await opening
    assert t.ready and len(t) == 1999
    assert not path_of(tmp_path, "/seg/2.ts").exists()
    await t.close()


# -- model check ---------------------------------------------------------------------------

KEYS = ["a", "b", "c", "d", "e"]
SIZES = [0, 3000, 9000, 20000, 45000]
BUDGET = 48000
Op = tuple[str, str, int]
ops = st.lists(
    st.one_of(
        st.tuples(st.just("put"), st.sampled_from(KEYS), st.sampled_from(SIZES)),
        st.tuples(st.just("get"), st.sampled_from(KEYS), st.just(0)),
        st.tuples(st.just("stream"), st.sampled_from(KEYS), st.just(0)),
        st.tuples(st.just("delete"), st.sampled_from(KEYS), st.just(0)),
        st.tuples(st.just("restart"), st.just(""), st.just(0)),
    ),
    max_size=25,
)


async def run_model(root: Path, steps: list[Op]) -> None:
    t = tier_at(root, max_bytes=BUDGET)
    await t.open(now=NOW)
    # The model: an LRU dict of key -> (body, file size), least recently used first.
    model: OrderedDict[str, tuple[bytes, int]] = OrderedDict()
    for n, (op, key, size) in enumerate(steps):
        if op == "put":
            body = bytes([n % 256]) * size
            fsize = file_size(key, body)
            stored = await t.put(key, make_entry(body), NOW)
            model.pop(key, None)
            assert stored == (fsize <= BUDGET)
            if stored:
                model[key] = (body, fsize)
                while sum(s for _, s in model.values()) > BUDGET:
                    model.popitem(last=False)
        elif op in ("get", "stream"):
            if op == "get":
                got = await t.get(key, now=NOW)
                body_read = None if got is None else got.body
            else:
                stream = await t.open_body(key, now=NOW)
                body_read = None if stream is None else b"".join([c async for c in stream])
            if key in model:
                assert body_read == model[key][0]
                model.move_to_end(key)
            else:
                assert body_read is None
        elif op == "delete":
            assert await t.delete(key) == (key in model)
            model.pop(key, None)
        else:
            t = await reopen(t)
        on_disk = files_on_disk(root)
        assert on_disk == {k: s for k, (_, s) in model.items()}
        assert [k for k in KEYS if k in t] == [k for k in KEYS if k in model]
        assert t.stats()["bytes"] == sum(on_disk.values()) <= BUDGET
    await t.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops)
def test_random_operations_keep_index_directory_and_model_in_step(steps: list[Op]) -> None:
    with tempfile.TemporaryDirectory() as d:
        asyncio.run(run_model(Path(d), steps))
