"""Failover and hedging figures for origin groups (issue 3), measured on OriginGroup
directly for now (the lead reruns it through the full proxy later).

    python loadtests/bench/failover_bench.py [--rate 250] [--duration 10] [--kill-at 3]
                                             [--restore-at 6] [--hedge-duration 8]
                                             [--json]

Two real test origin processes (tests/support/origin_server.py) on 127.0.0.1, one
failover group over them (primary first), active probes on both and passive outlier
detection, as a production config would have them.

Phase 1, failover: an open-loop load of `--rate` GET/s (each reads its whole body) for
`--duration` seconds over a small set of hot keys and ever-new cold keys; the primary is
SIGKILLed at `--kill-at` and started again (same port) at `--restore-at`. Figures:
failed client requests (an error or a 5xx reaching the caller, or a broken body), the
time from the kill to the first response served by the secondary, when the probes saw
the primary down, and the time from the restart to the first response served by the
primary again, against the bound probe interval x threshold (+1 interval).
Hot and cold keys both reach the group here: there is no cache in front of it in this
harness, so "cached" keys are only cached once this runs through the proxy.

Phase 2, hedging: the primary stalls 300 ms on 5 % of the paths (scripted delay); three
groups over the same two origins get interleaved requests in the same run: no hedging,
`hedge_after = 0.05`, `hedge_after = "p95"`. Figures: p50/p99/max per group, hedges sent
and won.

Exit status 0 whatever the figures (it is a measurement), 1 when the harness failed.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import math
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `python loadtests/bench/failover_bench.py` from anywhere
    sys.path.insert(0, str(ROOT))

from config.schema import HealthCheck, OutlierDetection  # noqa: E402
from config.schema import HttpOrigin as HttpOriginSettings  # noqa: E402
from proxy.metrics import Stats  # noqa: E402
from routing.groups import OriginGroup  # noqa: E402
from routing.health import HealthChecker  # noqa: E402
from routing.origins.base import OriginError, OriginRequest  # noqa: E402
from routing.origins.http import HttpOrigin  # noqa: E402
from tests.support.origin_server import OriginServer  # noqa: E402

PROBE = HealthCheck(path="/gen/16", interval=0.2, timeout=0.5, window=5, threshold=3, initial=5)
OUTLIER = OutlierDetection(consecutive_failures=3, base_ejection=1.0, max_ejection=10.0)
ORIGIN = {"connect_timeout": 1.0, "first_byte_timeout": 3.0, "read_timeout": 2.0}
MAX_INFLIGHT = 1000
HOT_KEYS = 20
STALL = 0.3
STALL_SHARE = 0.05
HEDGE_PATHS = 100


@dataclass(slots=True)
class Sample:
    start: float  # seconds since the run began
    end: float
    ok: bool
    origin: str
    error: str = ""
    group: str = ""


async def until(predicate: Any, limit: float = 30.0) -> None:
    """Poll (2 ms) until predicate() is true; TimeoutError after `limit` seconds."""
    deadline = time.perf_counter() + limit
    while not predicate():
        if time.perf_counter() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.002)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


async def one(group: OriginGroup, path: str, t0: float, out: list[Sample]) -> None:
    start = time.perf_counter() - t0
    try:
        response, name = await group.fetch(OriginRequest("GET", path))
        try:
            async for _ in response.body():
                pass
        finally:
            await response.aclose()
        ok = response.status < 500
        sample = Sample(
            start, time.perf_counter() - t0, ok, name, "" if ok else str(response.status)
        )
    except OriginError as exc:
        sample = Sample(start, time.perf_counter() - t0, False, "", f"{type(exc).__name__}: {exc}")
    sample.group = group.name
    out.append(sample)


async def open_loop(
    rate: float,
    duration: float,
    make: Any,
    events: dict[float, Any],
    t0: float,
    out: list[Sample],
) -> dict[str, float]:
    """`make(i)` -> (group, path) for request i, sent at t0 + i / rate; `events` maps a
    time offset to a coroutine function run then (in the loop, not blocking it)."""
    tasks: set[asyncio.Task[Any]] = set()
    marks: dict[str, float] = {}
    pending_events = sorted(events.items())
    shed = 0
    total = int(rate * duration)
    for i in range(total):
        at = i / rate
        while pending_events and pending_events[0][0] <= at:
            _, action = pending_events.pop(0)
            task = asyncio.ensure_future(action(marks))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        delay = t0 + at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if len(tasks) >= MAX_INFLIGHT:
            shed += 1
            continue
        group, path = make(i)
        task = asyncio.ensure_future(one(group, path, t0, out))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    while tasks:
        await asyncio.gather(*list(tasks), return_exceptions=True)
    marks["shed"] = shed
    marks["sent_for"] = time.perf_counter() - t0
    return marks


def make_origins(primary: OriginServer, secondary: OriginServer) -> list[HttpOrigin]:
    return [
        HttpOrigin(
            name, HttpOriginSettings.model_validate({"kind": "http", "url": s.url, **ORIGIN})
        )
        for name, s in (("primary", primary), ("secondary", secondary))
    ]


async def failover_phase(
    args: argparse.Namespace, primary: OriginServer, secondary: OriginServer
) -> dict[str, Any]:
    origins = make_origins(primary, secondary)
    stats = Stats()
    health = HealthChecker({o.name: o for o in origins}, {o.name: PROBE for o in origins}, stats)
    group = OriginGroup(
        "media",
        [(o, 1) for o in origins],
        health=health,
        stats=stats,
        policy="failover",
        max_attempts=2,
        deadline=3.0,
        outlier=OUTLIER,
    )
    health.start()
    out: list[Sample] = []
    port = primary.port
    down_at: list[float] = []
    t0 = time.perf_counter() + 0.2

    async def kill(marks: dict[str, float]) -> None:
        await asyncio.to_thread(primary.kill)
        marks["killed"] = time.perf_counter() - t0
        await until(lambda: not health.is_up("primary"))
        down_at.append(time.perf_counter() - t0)

    async def restore(marks: dict[str, float]) -> None:
        await asyncio.to_thread(primary.start, port)
        marks["restored"] = time.perf_counter() - t0
        await until(lambda: health.is_up("primary"))
        marks["probes_up"] = time.perf_counter() - t0

    counter = itertools.count()

    def make(i: int) -> tuple[OriginGroup, str]:
        if i % 2 == 0:
            return group, f"/gen/{1024 + i % HOT_KEYS}"  # hot keys
        return group, f"/gen/{4096 + next(counter)}"  # ever-new cold keys

    try:
        marks = await open_loop(
            args.rate,
            args.duration,
            make,
            {args.kill_at: kill, args.restore_at: restore},
            t0,
            out,
        )
    finally:
        await health.stop()
        for origin in origins:
            await origin.aclose()
    killed, restored = marks.get("killed", math.nan), marks.get("restored", math.nan)
    failed = [s for s in out if not s.ok]
    by_secondary = [s.end for s in out if s.origin == "secondary" and s.end >= killed]
    back = [s.end for s in out if s.origin == "primary" and s.start >= restored]
    lat = [s.end - s.start for s in out]
    around = [s.end - s.start for s in out if killed - 0.5 <= s.start <= killed + 1.5]
    bound = PROBE.interval * PROBE.threshold + PROBE.interval
    return {
        "requests": len(out),
        "rate": len(out) / (marks["sent_for"] or 1),
        "failed": len(failed),
        "failed_examples": sorted({s.error for s in failed})[:5],
        "shed": int(marks["shed"]),
        "kill_to_first_secondary_s": (min(by_secondary) - killed) if by_secondary else None,
        "kill_to_probes_down_s": (down_at[0] - killed) if down_at else None,
        "restart_to_probes_up_s": marks.get("probes_up", math.nan) - restored,
        "restart_to_first_primary_s": (min(back) - restored) if back else None,
        "restore_bound_s": bound,
        "served_by": {
            name: sum(1 for s in out if s.origin == name) for name in ("primary", "secondary")
        },
        "p50_ms": percentile(lat, 50) * 1000,
        "p99_ms": percentile(lat, 99) * 1000,
        "max_ms": max(lat) * 1000 if lat else math.nan,
        "p99_ms_around_kill": percentile(around, 99) * 1000,
        "failovers": dict(stats.counters["edgeshield_group_failovers"]),
        "ejections": dict(stats.counters["edgeshield_origin_ejections"]),
        "timeline": timeline(out),
    }


def timeline(samples: list[Sample], step: float = 0.5) -> list[dict[str, Any]]:
    """Per `step` seconds of start time: requests, failures, who served, p99."""
    buckets: dict[int, list[Sample]] = {}
    for sample in samples:
        buckets.setdefault(int(sample.start / step), []).append(sample)
    rows = []
    for key in sorted(buckets):
        group = buckets[key]
        rows.append(
            {
                "t": key * step,
                "n": len(group),
                "failed": sum(1 for s in group if not s.ok),
                "primary": sum(1 for s in group if s.origin == "primary"),
                "secondary": sum(1 for s in group if s.origin == "secondary"),
                "p99_ms": round(percentile([s.end - s.start for s in group], 99) * 1000, 1),
            }
        )
    return rows


async def hedge_phase(
    args: argparse.Namespace, primary: OriginServer, secondary: OriginServer
) -> dict[str, Any]:
    stalled = set(range(int(HEDGE_PATHS * STALL_SHARE)))
    primary.scripts(
        [
            {"path": f"/h/{n}", "size": 1024, **({"delay": STALL} if n in stalled else {})}
            for n in range(HEDGE_PATHS)
        ]
    )
    secondary.scripts([{"path": f"/h/{n}", "size": 1024} for n in range(HEDGE_PATHS)])
    origins = make_origins(primary, secondary)
    stats = Stats()
    health = HealthChecker({o.name: o for o in origins}, {}, stats)
    common: dict[str, Any] = {"policy": "failover", "max_attempts": 2, "deadline": 3.0}
    groups = [
        OriginGroup(name, [(o, 1) for o in origins], health=health, stats=stats, **common, **extra)
        for name, extra in (
            ("no-hedge", {}),
            ("hedge-50ms", {"hedge_after": 0.05}),
            ("hedge-p95", {"hedge_after": "p95"}),
        )
    ]
    rng = random.Random(7)
    out: list[Sample] = []
    t0 = time.perf_counter() + 0.2

    def make(i: int) -> tuple[OriginGroup, str]:
        return groups[i % len(groups)], f"/h/{rng.randrange(HEDGE_PATHS)}"

    try:
        await open_loop(args.rate, args.hedge_duration, make, {}, t0, out)
    finally:
        for origin in origins:
            await origin.aclose()
    result: dict[str, Any] = {}
    hedges = stats.counters["edgeshield_group_hedges"]
    for group in groups:
        lat = [s.end - s.start for s in out if s.group == group.name]
        result[group.name] = {
            "requests": len(lat),
            "failed": sum(1 for s in out if s.group == group.name and not s.ok),
            "p50_ms": percentile(lat, 50) * 1000,
            "p99_ms": percentile(lat, 99) * 1000,
            "max_ms": max(lat) * 1000 if lat else math.nan,
            "hedges_sent": int(hedges.get((group.name, "sent"), 0)),
            "hedges_won": int(hedges.get((group.name, "won"), 0)),
        }
    return result


async def run(args: argparse.Namespace) -> dict[str, Any]:
    primary, secondary = OriginServer().start(), OriginServer().start()
    try:
        failover = await failover_phase(args, primary, secondary)
        if not primary.running:
            primary.start(primary.port)
        primary.reset()
        secondary.reset()
        hedging = await hedge_phase(args, primary, secondary)
    finally:
        primary.stop()
        secondary.stop()
    return {"failover": failover, "hedging": hedging}


def report(figures: dict[str, Any], args: argparse.Namespace) -> str:
    f = figures["failover"]

    def s(value: float | None) -> str:
        return "n/a" if value is None or math.isnan(value) else f"{value * 1000:.1f} ms"

    lines = [
        f"failover: {f['requests']} requests at {f['rate']:.0f}/s over {args.duration:.0f} s, "
        f"primary killed at {args.kill_at:.0f} s, restarted at {args.restore_at:.0f} s",
        f"  failed client requests:           {f['failed']} (shed by the harness: {f['shed']})",
        f"  kill -> first secondary response: {s(f['kill_to_first_secondary_s'])}",
        f"  kill -> probes say down:          {s(f['kill_to_probes_down_s'])}",
        f"  restart -> probes say up:         {s(f['restart_to_probes_up_s'])}",
        f"  restart -> first primary response: {s(f['restart_to_first_primary_s'])} "
        f"(bound: interval x threshold + interval = {s(f['restore_bound_s'])})",
        f"  served by: {f['served_by']}; failovers: {f['failovers']}; ejections: {f['ejections']}",
        f"  latency p50 {f['p50_ms']:.1f} ms, p99 {f['p99_ms']:.1f} ms "
        f"(p99 around the kill {f['p99_ms_around_kill']:.1f} ms), max {f['max_ms']:.1f} ms",
    ]
    if f["failed_examples"]:
        lines.append(f"  failures: {f['failed_examples']}")
    if args.timeline:
        lines.append("  t(s)    sent  failed  primary  secondary  p99(ms)")
        for row in f["timeline"]:
            lines.append(
                f"  {row['t']:<6.1f} {row['n']:>5} {row['failed']:>7} {row['primary']:>8} "
                f"{row['secondary']:>10} {row['p99_ms']:>8}"
            )
    lines.append(
        f"hedging: primary stalls {STALL * 1000:.0f} ms on {STALL_SHARE:.0%} of paths, "
        f"{args.rate:.0f}/s for {args.hedge_duration:.0f} s, groups interleaved"
    )
    for name, g in figures["hedging"].items():
        lines.append(
            f"  {name:<11} n={g['requests']:<5} p50 {g['p50_ms']:6.1f} ms  "
            f"p99 {g['p99_ms']:6.1f} ms  max {g['max_ms']:6.1f} ms  "
            f"hedges sent {g['hedges_sent']}, won {g['hedges_won']}, failed {g['failed']}"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=250.0, help="requests per second")
    parser.add_argument("--duration", type=float, default=10.0, help="failover phase, s")
    parser.add_argument("--kill-at", type=float, default=3.0)
    parser.add_argument("--restore-at", type=float, default=6.0)
    parser.add_argument("--hedge-duration", type=float, default=8.0, help="hedging phase, s")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    parser.add_argument("--timeline", action="store_true", help="per 0.5 s table, phase 1")
    args = parser.parse_args(argv)
    if not 0 < args.rate <= 2000 or not 0 < args.duration <= 120 or args.hedge_duration > 120:
        parser.error("keep the load bounded: rate <= 2000/s, durations <= 120 s")
    if not 0 < args.kill_at < args.restore_at < args.duration:
        parser.error("need 0 < --kill-at < --restore-at < --duration")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    try:
        import uvloop

        figures = uvloop.run(run(args))
    except ImportError:
        figures = asyncio.run(run(args))
    except (OSError, RuntimeError) as exc:
        print(f"failover_bench: harness failed: {exc}", file=sys.stderr)
        return 1
    print(report(figures, args))
    if args.json:
        print(json.dumps(figures, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
