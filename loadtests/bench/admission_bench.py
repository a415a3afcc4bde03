"""Admission benchmark: the memory tier's policy against LRU and Belady's bound, by trace replay.

    python loadtests/bench/admission_bench.py [--requests 60000] [--objects 10000]
                                              [--memory-mib 64] [--scan 10000]
                                              [--skews 0.8,1.0,1.2] [--seed 13]
                                              [--through auto|URL]

No server: each trace is replayed through the policies in this process.

- A trace is `--requests` requests over `--objects` objects whose sizes are uniform in
  2-64 KiB, popularity Zipf(s) for each s of `--skews`, the popularity order shuffled so
  that size and popularity are independent. The `+scan` variant has `--scan` requests
  for objects asked for once each (2-64 KiB too) inserted as one burst in the middle.
  Every random draw comes from `random.Random(--seed)`: the table is the same each run.
- LRU is cachetools' LRUCache bounded in bytes (what the memory tier used before);
  W-TinyLFU is `proxy.cache.admission.WTinyLFU`, the memory tier's policy (size-aware:
  it weighs requests per byte); Belady is the offline bound: it knows the future,
  evicts the entry asked for again the furthest away and never keeps an object that is
  not asked for again.
- Oracle/B, Static and Static/B are not policies but ceilings. Oracle/B knows each
  object's Zipf popularity (the probability the trace was drawn from, not its count in
  this trace) and keeps the most popular per byte, admitting and evicting as requests
  come: what an online policy could reach if it learned popularity instantly. Static
  and Static/B know every object's request count in the whole trace in advance and
  keep, from its first request on, the most requested objects (Static/B: the most
  requested per byte) that fit; knowing this trace's counts, not just the odds, they
  are a little above what any online policy can expect. Belady also knows the order.
- Online bound (no-scan traces, `--bound-share`; 0 leaves it out) is not a replay but
  what no cache that keeps only objects it was asked for can expect to beat: given the
  requests so far, the chance of a hit is at most the posterior popularity of the best
  set of objects already asked for that fits the budget, the posterior knowing the
  trace's exact Zipf prior (loadtests/bench/online_bound.py). An expected object hit
  ratio over traces drawn like this one; no byte ratio ("-").
  It takes 20-60 s per trace; a larger `--bound-share` (blocks of n/share requests) is
  tighter and slower.
- Object hit ratio: hits / requests; byte hit ratio: bytes served from the cache /
  bytes requested. Both count the scan's requests (all misses for every policy).
- Hit cost: ns per `get` of a kept key, the policy's against cachetools' LRUCache in
  the same run (ratio < 1: cheaper than LRU), best of 5 rounds over 2,000 keys.

With `--through` the traces are also replayed, one request at a time, through a real
edgeshield (row "edgeshield"): `auto` starts the test origin
(tests/support/origin_server.py) and `edgeshield serve` in front of it with
`memory_bytes` = --memory-mib; a URL names a running edgeshield whose origin serves the
test origin's `/gen/<size>` objects. Object i of a trace is `/gen/<size>?o=<run>-<i>`,
a hit is an answer whose Cache-Status says `hit`. Entries carry their headers (about
1 KiB each) in the same budget, so the proxy holds a few per cent fewer objects than
the simulated policies. It takes minutes: a few ms per request on a busy 2-core machine.

Disk section (`--section disk`, or `all`): the disk tier's admission. A trace of
`--disk-requests` requests over `--disk-objects` objects of 1-16 MiB, Zipf 1.0, with and
without `--disk-scan` one-time requests mid-trace, replayed through a real
`proxy.cache.disk.DiskTier` on a temporary directory with a `--disk-mib` budget (256),
every size and the budget divided by `--disk-scale` (128: 8-128 KiB objects, 2 MiB) so
a replay takes seconds; the ratios depend on sizes relative to the budget only, but the
few hundred bytes of each file's header weigh a little more at that scale. Each request
is counted by a real `MemoryTier` (too small an object limit to keep any: the requests
the server counts for disk-resident keys), looked up (`open_body`), and a miss stored
the way the store does it (`accepts`, then `put`). Rows: LRU is the tier without a
frequency function (as it was), Admission the tier given the memory tier's counts
(`admit_by`), Belady the offline bound on body sizes.

Prints tables; exit status 0 whatever the figures (it is a measurement).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import heapq
import itertools
import random
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cachetools import LRUCache

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from loadtests.bench.online_bound import Posterior, online_bound  # noqa: E402
from proxy.cache.admission import WTinyLFU  # noqa: E402
from proxy.cache.disk import DiskTier  # noqa: E402
from proxy.cache.entry import Entry  # noqa: E402
from proxy.cache.memory import MemoryTier  # noqa: E402
from proxy.http.freshness import Freshness  # noqa: E402

KiB = 1024
MiB = 1024 * KiB
Request = tuple[int, int]  # (object id, size)


@dataclass
class Score:
    hits: int = 0
    requests: int = 0
    hit_bytes: int = 0
    bytes: int = 0

    def add(self, hit: bool, size: int) -> None:
        self.requests += 1
        self.bytes += size
        if hit:
            self.hits += 1
            self.hit_bytes += size

    @property
    def object_ratio(self) -> float:
        return self.hits / max(1, self.requests)

    @property
    def byte_ratio(self) -> float:
        return self.hit_bytes / max(1, self.bytes)


@dataclass
class Expected:
    """A ceiling computed rather than replayed: an expected object hit ratio."""

    object_ratio: float
    byte_ratio: float | None = None


Row = tuple[str, str, Score | Expected, float]


def zipf_trace(
    rng: random.Random, requests: int, objects: int, skew: float, scan: int
) -> tuple[list[Request], dict[int, float]]:
    """The requests, and each object's popularity (its Zipf weight; 0 for the scan's)."""
    sizes = [rng.randint(2 * KiB, 64 * KiB) for _ in range(objects)]
    ids = list(range(objects))
    rng.shuffle(ids)  # rank -> object id, so popularity says nothing about size
    popularity = [1.0 / (rank + 1) ** skew for rank in range(objects)]
    ranks = rng.choices(
        range(objects), cum_weights=list(itertools.accumulate(popularity)), k=requests
    )
    trace = [(ids[r], sizes[ids[r]]) for r in ranks]
    if scan:
        burst = [(objects + i, rng.randint(2 * KiB, 64 * KiB)) for i in range(scan)]
        middle = len(trace) // 2
        trace[middle:middle] = burst
    return trace, {ids[rank]: weight for rank, weight in enumerate(popularity)}


def replay_lru(trace: Sequence[Request], budget: int) -> Score:
    cache: LRUCache[int, int] = LRUCache(maxsize=budget, getsizeof=lambda size: size)
    score = Score()
    for key, size in trace:
        hit = cache.get(key) is not None
        score.add(hit, size)
        if not hit:
            cache[key] = size
    return score


def replay_wtinylfu(trace: Sequence[Request], budget: int) -> Score:
    cache: WTinyLFU[int, int] = WTinyLFU(budget, getsizeof=lambda size: size)
    score = Score()
    for key, size in trace:
        hit = cache.get(key) is not None
        score.add(hit, size)
        if not hit:
            cache.put(key, size)
    return score


def replay_belady(trace: Sequence[Request], budget: int) -> Score:
    """Evict the entry whose next request is furthest away; keep nothing never asked
    for again (the new object competes too: it is not kept when it is the furthest)."""
    never = len(trace)
    next_use = [never] * len(trace)
    seen: dict[int, int] = {}
    for i in range(len(trace) - 1, -1, -1):
        key = trace[i][0]
        next_use[i] = seen.get(key, never)
        seen[key] = i
    held: dict[int, tuple[int, int]] = {}  # key -> (next use, size)
    heap: list[tuple[int, int]] = []  # (-next use, key), stale rows skipped
    used = 0
    score = Score()
    for i, (key, size) in enumerate(trace):
        nxt = next_use[i]
        hit = key in held
        score.add(hit, size)
        if hit:
            used -= held.pop(key)[1]
        if nxt == never:
            continue
        held[key] = (nxt, size)
        used += size
        heapq.heappush(heap, (-nxt, key))
        while used > budget:
            far, victim = heapq.heappop(heap)
            row = held.get(victim)
            if row is None or row[0] != -far:
                continue  # stale heap row
            used -= held.pop(victim)[1]
    return score


def replay_oracle(trace: Sequence[Request], budget: int, popularity: dict[int, float]) -> Score:
    """Keep the most popular per byte, knowing each object's popularity: a new object
    is kept when it is more popular per byte than every entry it would push out."""
    held: dict[int, int] = {}  # key -> size
    heap: list[tuple[float, int]] = []  # (popularity per byte, key), least first
    used = 0
    score = Score()
    for key, size in trace:
        hit = key in held
        score.add(hit, size)
        if hit:
            continue
        rank = popularity.get(key, 0.0) / size
        victims: list[tuple[float, int]] = []
        freed = 0
        while used - freed + size > budget and heap:
            victims.append(heapq.heappop(heap))
            freed += held[victims[-1][1]]
        if used - freed + size > budget or any(weak >= rank for weak, _ in victims):
            for row in victims:
                heapq.heappush(heap, row)
            continue
        for _, victim in victims:
            used -= held.pop(victim)
        held[key] = size
        used += size
        heapq.heappush(heap, (rank, key))
    return score


def replay_static(trace: Sequence[Request], budget: int, *, per_byte: bool = False) -> Score:
    """The best fixed set, chosen knowing every object's request count in advance."""
    counts: dict[int, int] = {}
    sizes: dict[int, int] = {}
    for key, size in trace:
        counts[key] = counts.get(key, 0) + 1
        sizes[key] = size
    order = sorted(counts, key=lambda k: -counts[k] / (sizes[k] if per_byte else 1))
    chosen: set[int] = set()
    used = 0
    for key in order:
        if used + sizes[key] <= budget:
            chosen.add(key)
            used += sizes[key]
    seen: set[int] = set()
    score = Score()
    for key, size in trace:
        score.add(key in seen, size)
        if key in chosen:
            seen.add(key)
    return score


def replay_through(trace: Sequence[Request], url: str) -> Score:
    """One request at a time through a real edgeshield; a hit is what Cache-Status says."""
    import httpx

    run = time.time_ns()
    score = Score()
    with httpx.Client(base_url=url, timeout=30) as client:
        for key, size in trace:
            resp = client.get(f"/gen/{size}?o={run}-{key}")
            if resp.status_code != 200 or len(resp.content) != size:
                raise SystemExit(f"bad answer from {url}: {resp.status_code}")
            score.add(resp.headers.get("cache-status", "").startswith("edgeshield; hit"), size)
    return score


@contextmanager
def edgeshield(through: str, budget: int) -> Iterator[str]:
    """The URL to replay through: `through` itself, or (auto) a started origin + proxy."""
    if through != "auto":
        yield through
        return
    from tests.support.origin_server import running_origin
    from tests.support.proxy_server import proxy_config, running_proxy

    with running_origin() as origin:
        config = proxy_config(origin.url, cache_settings={"memory_bytes": budget})
        with running_proxy(config) as proxy:
            yield proxy.url


POLICIES: dict[str, Callable[[Sequence[Request], int], Score]] = {
    "LRU": replay_lru,
    "W-TinyLFU": replay_wtinylfu,
    "Belady": replay_belady,
    "Static": replay_static,
    "Static/B": lambda trace, budget: replay_static(trace, budget, per_byte=True),
}


def hit_cost(rounds: int = 5, keys: int = 2_000, reps: int = 50) -> tuple[float, float]:
    """Seconds per `get` of a kept key: (cachetools' LRUCache, the memory tier's policy)."""
    names = [f"/host/path/object-{i}" for i in range(keys)]
    lru: LRUCache[str, int] = LRUCache(maxsize=64 * MiB, getsizeof=lambda size: size)
    policy: WTinyLFU[str, int] = WTinyLFU(64 * MiB, getsizeof=lambda size: size)
    for name in names:
        lru[name] = KiB
        policy.get(name)
        policy.put(name, KiB)
    assert all(name in policy for name in names)
    best = [float("inf"), float("inf")]
    gets: tuple[Callable[[str], object], ...] = (lru.get, policy.get)
    for _ in range(rounds):
        for i, get in enumerate(gets):
            t0 = time.perf_counter()
            for _ in range(reps):
                for name in names:
                    get(name)
            best[i] = min(best[i], (time.perf_counter() - t0) / (reps * keys))
    return best[0], best[1]


def run(
    skews: Iterable[float],
    requests: int,
    objects: int,
    budget: int,
    scan: int,
    seed: int,
    through: str | None = None,
    bound_share: int = 0,
) -> list[Row]:
    rows: list[Row] = []
    for skew in skews:
        for scan_n in (0, scan) if scan else (0,):
            trace, popularity = zipf_trace(random.Random(seed), requests, objects, skew, scan_n)
            name = f"zipf {skew:g}" + (" +scan" if scan_n else "")
            policies = dict(POLICIES)
            policies["Oracle/B"] = functools.partial(replay_oracle, popularity=popularity)
            if through:
                policies["edgeshield"] = lambda t, b: _through(t, b, through)
            for policy, replay in policies.items():
                t0 = time.perf_counter()
                score = replay(trace, budget)
                rows.append((name, policy, score, time.perf_counter() - t0))
            if bound_share and not scan_n:
                t0 = time.perf_counter()
                bound = online_bound(trace, budget, Posterior(popularity.values()), bound_share)
                rows.append((name, "Online bound", Expected(bound), time.perf_counter() - t0))
    return rows


def _through(trace: Sequence[Request], budget: int, through: str) -> Score:
    with edgeshield(through, budget) as url:  # a fresh proxy per trace (auto): cold cache
        return replay_through(trace, url)


def disk_trace(
    rng: random.Random, requests: int, objects: int, scale: int, scan: int
) -> list[Request]:
    """Zipf 1.0 over objects of 1-16 MiB (divided by `scale`), popularity independent of
    size, `scan` one-time requests inserted mid-trace."""
    low, high = MiB // scale, 16 * MiB // scale
    sizes = [rng.randint(low, high) for _ in range(objects)]
    ids = list(range(objects))
    rng.shuffle(ids)
    weights = list(itertools.accumulate(1.0 / (rank + 1) for rank in range(objects)))
    trace = [
        (ids[r], sizes[ids[r]])
        for r in rng.choices(range(objects), cum_weights=weights, k=requests)
    ]
    middle = len(trace) // 2
    trace[middle:middle] = [(objects + i, rng.randint(low, high)) for i in range(scan)]
    return trace


def _disk_entry(body: bytes, now: float) -> Entry:
    return Entry(
        status=200,
        headers=[(b"content-type", b"video/mp4")],
        origin_headers=[("content-type", "video/mp4")],
        body=body,
        etag=None,
        last_modified=None,
        content_type="video/mp4",
        response_time=now,
        freshness=Freshness(True, "", 86400.0, 0.0, 0.0, 0.0, False, False),
    )


async def replay_disk(trace: Sequence[Request], budget: int, *, admission: bool) -> Score:
    """Through a real DiskTier on a temporary directory, as the server asks it."""
    blob = bytes(range(256)) * (max(size for _, size in trace) // 256 + 1)
    memory = MemoryTier(256 * MiB, 0)  # the server's default budget; it keeps nothing here
    score = Score()
    with tempfile.TemporaryDirectory(prefix="admission-bench-") as root:
        tier = DiskTier(
            root,
            max_bytes=budget,
            max_object_bytes=budget,
            frequency=memory.frequency if admission else None,
        )
        await tier.open()
        try:
            for obj, size in trace:
                key = f"GET|bench.test|/video/{obj}.mp4"
                memory.get(key)  # counted, as every request is
                body = await tier.open_body(key)
                score.add(body is not None, size)
                if body is not None:
                    await body.aclose()
                    continue
                entry = _disk_entry(blob[:size], time.time())
                if tier.accepts(key, entry.size):
                    await tier.put(key, entry, time.time())
        finally:
            await tier.close()
    return score


DISK_POLICIES: dict[str, Callable[[Sequence[Request], int], Score]] = {
    "LRU": lambda trace, budget: asyncio.run(replay_disk(trace, budget, admission=False)),
    "Admission": lambda trace, budget: asyncio.run(replay_disk(trace, budget, admission=True)),
    "Belady": replay_belady,
}


def run_disk(
    requests: int, objects: int, budget: int, scale: int, scan: int, seed: int
) -> list[Row]:
    rows: list[Row] = []
    for scan_n in (0, scan) if scan else (0,):
        trace = disk_trace(random.Random(seed), requests, objects, scale, scan_n)
        name = "zipf 1" + (" +scan" if scan_n else "")
        for policy, replay in DISK_POLICIES.items():
            t0 = time.perf_counter()
            score = replay(trace, budget // scale)
            rows.append((name, policy, score, time.perf_counter() - t0))
    return rows


def print_rows(rows: Sequence[Row]) -> None:
    print(f"{'trace':<16} {'policy':<12} {'object hit':>10} {'byte hit':>9} {'seconds':>9}")
    for name, policy, score, seconds in rows:
        byte = "-" if score.byte_ratio is None else f"{score.byte_ratio:.3f}"
        print(f"{name:<16} {policy:<12} {score.object_ratio:>10.3f} {byte:>9} {seconds:>9.2f}")


def main_disk(args: argparse.Namespace) -> None:
    budget = int(args.disk_mib * MiB)
    rows = run_disk(
        args.disk_requests, args.disk_objects, budget, args.disk_scale, args.disk_scan, args.seed
    )
    print(
        f"disk: {args.disk_requests} requests over {args.disk_objects} objects of 1-16 MiB,"
        f" {args.disk_mib:g} MiB, all divided by {args.disk_scale}, seed {args.seed}"
        + (f", +scan: {args.disk_scan} one-time requests mid-trace" if args.disk_scan else "")
    )
    print_rows(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=60_000)
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--memory-mib", type=float, default=64)
    parser.add_argument("--scan", type=int, default=10_000)
    parser.add_argument("--skews", default="0.8,1.0,1.2")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--through", default=None, help="auto, or an edgeshield URL")
    parser.add_argument("--bound-share", type=int, default=256)
    parser.add_argument("--section", choices=("memory", "disk", "all"), default="all")
    parser.add_argument("--disk-requests", type=int, default=6_000)
    parser.add_argument("--disk-objects", type=int, default=1_000)
    parser.add_argument("--disk-mib", type=float, default=256)
    parser.add_argument("--disk-scan", type=int, default=1_000)
    parser.add_argument("--disk-scale", type=int, default=128)
    args = parser.parse_args(argv)
    if args.section != "memory":
        main_disk(args)
        if args.section == "disk":
            return 0
    skews = [float(s) for s in args.skews.split(",")]
    budget = int(args.memory_mib * MiB)
    rows = run(
        skews,
        args.requests,
        args.objects,
        budget,
        args.scan,
        args.seed,
        args.through,
        args.bound_share,
    )
    print(
        f"{args.requests} requests over {args.objects} objects of 2-64 KiB, "
        f"{args.memory_mib:g} MiB, seed {args.seed}"
        + (f", +scan: {args.scan} one-time requests mid-trace" if args.scan else "")
    )
    print_rows(rows)
    lru_get, policy_get = hit_cost()
    print(
        f"get on a hit: LRU {lru_get * 1e9:.0f} ns, W-TinyLFU {policy_get * 1e9:.0f} ns"
        f" ({policy_get / lru_get:.2f} of LRU)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
