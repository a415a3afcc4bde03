"""Failover and hedging figures for origin groups (issue 3), measured either on
OriginGroup directly (`--through group`, the default) or through a real `edgeshield
serve` process (`--through proxy`).

    python loadtests/bench/failover_bench.py [--through group|proxy] [--rate 250]
                                             [--duration 10] [--kill-at 3]
                                             [--restore-at 6] [--hedge-duration 8]
                                             [--timeline] [--verbose] [--json]

Two real test origin processes (tests/support/origin_server.py) on 127.0.0.1, one
failover group over them (primary first), active probes on both (interval 0.2 s,
window 5, threshold 3) and passive outlier detection, as a production config would
have them.

The phases below are the same in both modes. Through the proxy (one worker, config from
`proxy_config()`), the load comes from RawClient (a lean keep-alive HTTP/1.1 client in
this process) and the keys are split: half cached (`/f/c/<n>`, max-age=60, filled from
the primary and checked to be hits before the load), half uncached (`/f/u/<n>`,
no-store). Every body says which origin produced it ("A" * 1024 from the primary,
"B" * 1024 from the secondary). The restarted primary gets its scripts again as soon as
it listens. When the probes see the primary down and up again is read from
`/_admin/origins` (polled every 20 ms on its own connection); failovers, ejections and
hedges from `/metrics`. Hedging goes through three routes (`/no-hedge`, `/hedge-50ms`,
`/hedge-p95`) onto three groups over the same two origins, with no-store paths, each
fetched once first (see proxy_hedge_phase on why).

Phase 1, failover: an open-loop load of `--rate` GET/s (each reads its whole body) for
`--duration` seconds over a small set of hot keys and ever-new cold keys; the primary is
SIGKILLed at `--kill-at` and started again (same port) at `--restore-at`. Figures:
failed client requests (an error or a 5xx reaching the caller, or a broken body), the
time from the kill to the first response served by the secondary, when the probes saw
the primary down, and the time from the restart to the first response served by the
primary again, against the bound probe interval x threshold (+1 interval).
With `--through group` hot and cold keys both reach the group: there is no cache in
front of it, so "cached" keys are only cached through the proxy.

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
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `python loadtests/bench/failover_bench.py` from anywhere
    sys.path.insert(0, str(ROOT))

from config.schema import HealthCheck, OutlierDetection  # noqa: E402
from config.schema import HttpOrigin as HttpOriginSettings  # noqa: E402
from proxy.serve.metrics import Stats  # noqa: E402
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
) -> dict[str, float]:
    """`make(i)` -> the coroutine that sends request i, started at t0 + i / rate;
    `events` maps a time offset to a coroutine function run then (in the loop, not
    blocking it). Requests beyond MAX_INFLIGHT in flight are shed (counted, not sent)."""
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
        task = asyncio.ensure_future(make(i))
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

    def make(i: int) -> Any:
        if i % 2 == 0:
            return one(group, f"/gen/{1024 + i % HOT_KEYS}", t0, out)  # hot keys
        return one(group, f"/gen/{4096 + next(counter)}", t0, out)  # ever-new cold keys

    try:
        marks = await open_loop(
            args.rate,
            args.duration,
            make,
            {args.kill_at: kill, args.restore_at: restore},
            t0,
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

    def make(i: int) -> Any:
        return one(groups[i % len(groups)], f"/h/{rng.randrange(HEDGE_PATHS)}", t0, out)

    try:
        await open_loop(args.rate, args.hedge_duration, make, {}, t0)
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


# --------------------------------------------------------------------------------------
# --through proxy: the same figures measured on a real `edgeshield serve` process
# --------------------------------------------------------------------------------------

CACHED_KEYS = 20  # /f/c/<n>: max-age=60, warmed before the load
UNCACHED_KEYS = 200  # /f/u/<n>: no-store, every request reaches an origin
BODY_BYTES = 1024  # bodies are LABEL * BODY_BYTES: "A" = primary, "B" = secondary
LABELS = {"primary": "A", "secondary": "B"}
HEDGE_ROUTES = ("no-hedge", "hedge-50ms", "hedge-p95")
PROXY_ORIGIN = {"connect_timeout": 0.25}  # small: a dead origin's connect fails fast
ADMIN_POLL = 0.02  # seconds between /_admin/origins polls during the failover phase
KEEPALIVE_EXPIRY = 4.0  # seconds an idle client connection is kept (uvicorn: 5)


@dataclass(slots=True)
class Reply:
    start: float  # seconds since the run began
    end: float
    kind: str  # "cached" / "uncached", or the hedging route
    status: int  # 0 = transport error
    origin: str  # "primary" / "secondary" by the body's label, "" if unknown
    hit: bool = False  # Cache-Status says hit
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.origin != ""


class RawResponse(NamedTuple):
    status: int
    headers: dict[str, str]  # lower-cased names; a repeated field keeps its last value
    body: bytes


class RawClient:
    """A lean HTTP/1.1 keep-alive GET client on asyncio streams: one request per
    connection at a time, idle connections reused LIFO, no pool limit (the open loop
    bounds the requests in flight). httpx.AsyncClient was tried first: in 2 of 4 runs on
    a 2 vCPU machine requests queued inside its pool from the start, never drained, and
    client-side p50 was 3.6-4.4 s, where this client measures 1-2 ms on the same proxy
    and load.

    Like httpx (keepalive_expiry 5 s), an idle connection older than KEEPALIVE_EXPIRY
    is closed rather than reused (uvicorn closes idle connections after 5 s). As any
    HTTP client does (RFC 9112, 9.3.1), a GET that fails on a reused connection before
    a single response byte arrived (the server had closed it) is sent again once on a
    new connection: `stale_retries` counts those, so they are not hidden."""

    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.port = port
        self.timeout = timeout
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []
        self.opened = 0
        self.stale_retries = 0

    async def get(self, path: str) -> RawResponse:
        return await asyncio.wait_for(self._get(path), self.timeout)

    async def _get(self, path: str) -> RawResponse:
        while self.idle:
            reader, writer, since = self.idle.pop()
            if reader.at_eof() or time.perf_counter() - since > KEEPALIVE_EXPIRY:
                writer.close()
                continue
            try:
                return await self._exchange(reader, writer, path)
            except _StaleConnection:
                self.stale_retries += 1
                break
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.opened += 1
        try:
            return await self._exchange(reader, writer, path)
        except _StaleConnection as exc:
            raise ConnectionResetError("connection closed before any response byte") from exc

    async def _exchange(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str
    ) -> RawResponse:
        try:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionResetError) as exc:
                partial = getattr(exc, "partial", b"")
                if not partial:
                    raise _StaleConnection from exc
                raise
            status_line, *fields = head.decode("latin-1").split("\r\n")
            headers = {}
            for line in fields:
                name, sep, value = line.partition(":")
                if sep:
                    headers[name.strip().lower()] = value.strip()
            if "chunked" in headers.get("transfer-encoding", ""):
                parts = []
                while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
                    parts.append(await reader.readexactly(size))
                    await reader.readexactly(2)
                while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
                    pass
                body = b"".join(parts)
            else:
                body = await reader.readexactly(int(headers.get("content-length", "0")))
        except BaseException:
            writer.close()
            raise
        if headers.get("connection", "").lower() == "close":
            writer.close()
        else:
            self.idle.append((reader, writer, time.perf_counter()))
        return RawResponse(int(status_line.split(" ", 2)[1]), headers, body)

    async def json(self, path: str) -> Any:
        return json.loads((await self.get(path)).body)

    def close(self) -> None:
        for _, writer, _ in self.idle:
            writer.close()
        self.idle.clear()


class _StaleConnection(Exception):
    """No response byte arrived on a connection: the request may be sent again."""


def proxy_config(primary: OriginServer, secondary: OriginServer) -> str:
    """Two http origins with probes, a failover group for the failover figure and three
    groups over the same origins for the hedging figure (no hedging, 50 ms, p95)."""
    lines = ["[server]", 'access_log = "off"', ""]
    for name, server in (("primary", primary), ("secondary", secondary)):
        lines += [f"[origins.{name}]", 'kind = "http"', f'url = "{server.url}"']
        lines += [f"{k} = {v}" for k, v in {**ORIGIN, **PROXY_ORIGIN}.items()]
        lines += [f"[origins.{name}.health]", f'path = "{PROBE.path}"']
        lines += [
            f"{k} = {getattr(PROBE, k)}"
            for k in ("interval", "timeout", "window", "threshold", "initial")
        ]
        lines.append("")
    lines += ["[outlier_detection]"]
    lines += [f"{k} = {getattr(OUTLIER, k)}" for k in OUTLIER.model_fields_set]
    group = ['policy = "failover"', 'members = ["primary", "secondary"]']
    group += ["max_attempts = 2", "deadline = 3.0"]
    lines += ["", "[groups.media]", *group]
    for name, hedge in zip(
        HEDGE_ROUTES, ("", "hedge_after = 0.05", 'hedge_after = "p95"'), strict=True
    ):
        lines += ["", f"[groups.{name}]", *group, hedge]
    for name in HEDGE_ROUTES:
        route = f'path_prefix = "/{name}"\nstrip_prefix = "/{name}"\norigin = "{name}"'
        lines += ["", "[[routes]]", route]
    lines += ["", "[[routes]]", 'path_prefix = "/f"', 'origin = "media"']
    return "\n".join(lines) + "\n"


def failover_scripts(label: str) -> list[dict[str, Any]]:
    body = label * BODY_BYTES
    cached = [
        {"path": f"/f/c/{n}", "body": body, "headers": {"cache-control": "max-age=60"}}
        for n in range(CACHED_KEYS)
    ]
    uncached = [
        {"path": f"/f/u/{n}", "body": body, "headers": {"cache-control": "no-store"}}
        for n in range(UNCACHED_KEYS)
    ]
    return cached + uncached


def hedge_scripts(label: str, stall: bool) -> list[dict[str, Any]]:
    stalled = set(range(int(HEDGE_PATHS * STALL_SHARE))) if stall else set()
    return [
        {
            "path": f"/h/{n}",
            "body": label * BODY_BYTES,
            "headers": {"cache-control": "no-store"},
            **({"delay": STALL} if n in stalled else {}),
        }
        for n in range(HEDGE_PATHS)
    ]


async def fetch(client: RawClient, path: str, kind: str, t0: float, out: list[Reply]) -> None:
    start = time.perf_counter() - t0
    try:
        response = await client.get(path)
        body = response.body
        origin = next((o for o, label in LABELS.items() if body == label.encode() * BODY_BYTES), "")
        cache_status = response.headers.get("cache-status", "")
        reply = Reply(start, time.perf_counter() - t0, kind, response.status, origin)
        reply.hit = is_hit(cache_status)
        if not reply.ok:
            reply.error = f"{response.status} {body[:60]!r} {cache_status}"
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
        reply = Reply(start, time.perf_counter() - t0, kind, 0, "", error=repr(exc)[:120])
    except TimeoutError:
        reply = Reply(start, time.perf_counter() - t0, kind, 0, "", error="client timeout")
    out.append(reply)


def is_hit(cache_status: str) -> bool:
    """`Cache-Status: edgeshield; hit; ttl=59` (RFC 9211)."""
    return any(part.strip() == "hit" for part in cache_status.split(";")[1:])


def parse_metrics(text: str, name: str) -> dict[tuple[str, ...], float]:
    """Samples of one counter family from the Prometheus text format, by label values."""
    values: dict[tuple[str, ...], float] = {}
    for line in text.splitlines():
        if not line.startswith((name + "{", name + "_total{")):
            continue
        labels, _, value = line.rpartition(" ")
        found = tuple(re.findall(r'="((?:[^"\\]|\\.)*)"', labels))
        values[found] = values.get(found, 0.0) + float(value)
    return values


def latency_row(replies: list[Reply]) -> dict[str, Any]:
    lat = [r.end - r.start for r in replies]
    return {
        "n": len(lat),
        "failed": sum(1 for r in replies if not r.ok),
        "p50_ms": percentile(lat, 50) * 1000,
        "p99_ms": percentile(lat, 99) * 1000,
        "max_ms": max(lat) * 1000 if lat else math.nan,
    }


async def proxy_failover_phase(
    args: argparse.Namespace, port: int, primary: OriginServer, client: RawClient
) -> dict[str, Any]:
    origin_port = primary.port
    out: list[Reply] = []
    states: list[tuple[float, str]] = []  # (t, primary's probe state) on every change
    t0 = time.perf_counter() + 0.2
    stop = asyncio.Event()

    async def watch_admin() -> None:
        """Poll /_admin/origins on its own connection: when the probes change their mind."""
        admin = RawClient(port, timeout=2.0)
        last = ""
        try:
            while not stop.is_set():
                try:
                    state = str(
                        (await admin.json("/_admin/origins"))["origins"]["primary"]["state"]
                    )
                except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError, KeyError):
                    state = "?"
                if state != last:
                    states.append((time.perf_counter() - t0, state))
                    last = state
                await asyncio.sleep(ADMIN_POLL)
        finally:
            admin.close()

    async def kill(marks: dict[str, float]) -> None:
        marks["kill_issued"] = time.perf_counter() - t0
        await asyncio.to_thread(primary.kill)
        marks["killed"] = time.perf_counter() - t0

    async def restore(marks: dict[str, float]) -> None:
        marks["restart_issued"] = time.perf_counter() - t0
        await asyncio.to_thread(primary.start, origin_port)
        marks["listening"] = time.perf_counter() - t0
        # A restarted origin forgets its scripts: label its answers again at once (its
        # probes need `threshold` passes, >= 2 intervals, before it gets traffic).
        await asyncio.to_thread(primary.scripts, failover_scripts("A"))
        await asyncio.to_thread(primary.scripts, hedge_scripts("A", stall=True))
        marks["scripted"] = time.perf_counter() - t0

    rng = random.Random(11)

    def make(i: int) -> Any:
        if i % 2 == 0:
            return fetch(client, f"/f/c/{rng.randrange(CACHED_KEYS)}", "cached", t0, out)
        return fetch(client, f"/f/u/{rng.randrange(UNCACHED_KEYS)}", "uncached", t0, out)

    watcher = asyncio.ensure_future(watch_admin())
    try:
        marks = await open_loop(
            args.rate, args.duration, make, {args.kill_at: kill, args.restore_at: restore}, t0
        )
    finally:
        stop.set()
        await watcher
    killed = marks.get("killed", math.nan)
    listening = marks.get("listening", math.nan)
    uncached = [r for r in out if r.kind == "uncached"]
    by_secondary = [r.end for r in uncached if r.origin == "secondary" and r.end >= killed]
    back = [r.end for r in uncached if r.origin == "primary" and r.start >= listening]
    down = [t for t, state in states if state == "down" and t >= killed]
    up = [t for t, state in states if state == "up" and t >= listening]
    phases = {
        "before": [r for r in out if r.start < killed],
        "during": [r for r in out if killed <= r.start < listening],
        "after": [r for r in out if r.start >= listening],
    }
    latency: dict[str, dict[str, Any]] = {}
    for phase, replies in phases.items():
        latency[phase] = latency_row(replies)
        for kind in ("cached", "uncached"):
            latency[f"{phase} {kind}"] = latency_row([r for r in replies if r.kind == kind])
    failed = [r for r in out if not r.ok]
    return {
        "requests": len(out),
        "rate": len(out) / (marks["sent_for"] or 1),
        "failed": {
            kind: sum(1 for r in failed if r.kind == kind) for kind in ("cached", "uncached")
        },
        "failed_examples": sorted({f"{r.kind} t={r.start:.2f}s {r.error}" for r in failed})[:8],
        "shed": int(marks["shed"]),
        "cached_hits": sum(1 for r in out if r.kind == "cached" and r.hit),
        "cached_total": sum(1 for r in out if r.kind == "cached"),
        "cached_not_primary": sum(1 for r in out if r.kind == "cached" and r.origin != "primary"),
        "kill_to_first_secondary_s": (min(by_secondary) - killed) if by_secondary else None,
        "kill_to_probes_down_s": (down[0] - killed) if down else None,
        "restart_spawn_s": listening - marks.get("restart_issued", math.nan),
        "restart_to_probes_up_s": (up[0] - listening) if up else None,
        "restart_to_first_primary_s": (min(back) - listening) if back else None,
        "restore_bound_s": PROBE.interval * PROBE.threshold + PROBE.interval,
        "served_uncached_by": {
            name: sum(1 for r in uncached if r.origin == name) for name in LABELS
        },
        "latency": latency,
        "timeline": proxy_timeline(out),
        "marks": marks,
        "probe_states": states,
    }


def proxy_timeline(replies: list[Reply], step: float = 0.5) -> list[dict[str, Any]]:
    """Per `step` seconds of start time: requests, failures, who served uncached keys."""
    buckets: dict[int, list[Reply]] = {}
    for reply in replies:
        buckets.setdefault(int(reply.start / step), []).append(reply)
    return [
        {
            "t": key * step,
            "n": len(rows),
            "failed": sum(1 for r in rows if not r.ok),
            "primary": sum(1 for r in rows if r.kind == "uncached" and r.origin == "primary"),
            "secondary": sum(1 for r in rows if r.kind == "uncached" and r.origin == "secondary"),
            "p99_ms": round(percentile([r.end - r.start for r in rows], 99) * 1000, 1),
        }
        for key, rows in sorted(buckets.items())
    ]


async def proxy_hedge_phase(
    args: argparse.Namespace,
    primary: OriginServer,
    secondary: OriginServer,
    client: RawClient,
) -> dict[str, Any]:
    primary.scripts(hedge_scripts("A", stall=True))
    secondary.scripts(hedge_scripts("B", stall=False))
    # One GET per key first: the proxy collapses concurrent requests for a key it has not
    # seen yet, and only a first no-store answer marks the key hit-for-miss (120 s), so
    # on cold keys a request that joined a stalled fetch waits for it and then for its own
    # (~450 ms). Warm keys keep that cold-start effect out of the hedging figure.
    paths = [f"/{route}/h/{n}" for route in HEDGE_ROUTES for n in range(HEDGE_PATHS)]
    warm: list[Reply] = []
    for start in range(0, len(paths), 20):
        await asyncio.gather(
            *(fetch(client, p, "warm", 0.0, warm) for p in paths[start : start + 20])
        )
    if not all(r.ok for r in warm):
        raise RuntimeError(f"hedge warm-up failed: {[r.error for r in warm if not r.ok][:3]}")
    before = parse_metrics(await metrics(client), "edgeshield_group_hedges")
    rng = random.Random(7)
    out: list[Reply] = []
    t0 = time.perf_counter() + 0.2

    def make(i: int) -> Any:
        route = HEDGE_ROUTES[i % len(HEDGE_ROUTES)]
        return fetch(client, f"/{route}/h/{rng.randrange(HEDGE_PATHS)}", route, t0, out)

    await open_loop(args.rate, args.hedge_duration, make, {}, t0)
    after = parse_metrics(await metrics(client), "edgeshield_group_hedges")
    result: dict[str, Any] = {}
    for route in HEDGE_ROUTES:
        replies = [r for r in out if r.kind == route]
        row = latency_row(replies)
        for what in ("sent", "won"):
            row[f"hedges_{what}"] = int(after.get((route, what), 0) - before.get((route, what), 0))
        row["by_secondary"] = sum(1 for r in replies if r.origin == "secondary")
        result[route] = row
    return result


async def metrics(client: RawClient) -> str:
    return (await client.get("/metrics")).body.decode()


async def wait_up(client: RawClient, names: tuple[str, ...], limit: float = 5.0) -> None:
    deadline = time.perf_counter() + limit
    while True:
        doc = (await client.json("/_admin/origins"))["origins"]
        if all(doc[name]["state"] == "up" for name in names):
            return
        if time.perf_counter() > deadline:
            raise RuntimeError(f"origins {names} not up after {limit} s: {doc}")
        await asyncio.sleep(0.02)


async def run_proxy(args: argparse.Namespace) -> dict[str, Any]:
    from tests.support.proxy_server import ProxyServer

    primary, secondary = OriginServer().start(), OriginServer().start()
    proxy: ProxyServer | None = None
    client: RawClient | None = None
    try:
        for server, label in ((primary, "A"), (secondary, "B")):
            server.scripts(failover_scripts(label))
            server.scripts(hedge_scripts(label, stall=server is primary))
        proxy = await asyncio.to_thread(ProxyServer(proxy_config(primary, secondary)).start)
        client = RawClient(proxy.port)
        await wait_up(client, tuple(LABELS))  # initial probes count as passed
        # Warm: fill the cache from the primary, open client and origin connections.
        for n in range(CACHED_KEYS):
            first = await client.get(f"/f/c/{n}")
            again = await client.get(f"/f/c/{n}")
            if first.body[:1] != b"A" or not is_hit(again.headers.get("cache-status", "")):
                raise RuntimeError(f"cache warm-up failed for /f/c/{n}: {again.headers}")
        warm: list[Reply] = []
        for start in range(0, UNCACHED_KEYS, 20):
            await asyncio.gather(
                *(
                    fetch(client, f"/f/u/{n}", "uncached", 0.0, warm)
                    for n in range(start, start + 20)
                )
            )
        if not all(r.ok and r.origin == "primary" for r in warm):
            raise RuntimeError(f"warm-up failed: {[r.error for r in warm if not r.ok][:3]}")
        failover = await proxy_failover_phase(args, proxy.port, primary, client)
        if not primary.running:
            primary.start(primary.port)
        primary.scripts(hedge_scripts("A", stall=True))
        await wait_up(client, ("primary",))
        hedging = await proxy_hedge_phase(args, primary, secondary, client)
        text = await metrics(client)
        failover["failovers"] = {
            "/".join(k): v for k, v in parse_metrics(text, "edgeshield_group_failovers").items()
        }
        failover["ejections"] = {
            "/".join(k): v for k, v in parse_metrics(text, "edgeshield_origin_ejections").items()
        }
        failover["client"] = {"connections": client.opened, "stale_retries": client.stale_retries}
        log = [
            line
            for line in proxy.log().splitlines()
            if "edgeshield.health" in line or "edgeshield.groups" in line or "rror" in line
        ]
        return {"failover": failover, "hedging": hedging, "proxy_log": log[-40:]}
    finally:
        if client is not None:
            client.close()
        if proxy is not None:
            await asyncio.to_thread(proxy.stop)
        primary.stop()
        secondary.stop()


def report_proxy(figures: dict[str, Any], args: argparse.Namespace) -> str:
    f = figures["failover"]

    def s(value: float | None) -> str:
        return "n/a" if value is None or math.isnan(value) else f"{value * 1000:.1f} ms"

    lines = [
        f"through the proxy (edgeshield serve, 1 worker): {f['requests']} requests at "
        f"{f['rate']:.0f}/s over {args.duration:.0f} s, half cached keys, half uncached; "
        f"primary killed at {args.kill_at:.0f} s, restarted at {args.restore_at:.0f} s",
        f"  failed client requests:            cached {f['failed']['cached']}, "
        f"uncached {f['failed']['uncached']} (shed by the harness: {f['shed']})",
        f"  cached keys: {f['cached_hits']}/{f['cached_total']} hits, "
        f"{f['cached_not_primary']} not labelled A",
        f"  kill -> first uncached from secondary: {s(f['kill_to_first_secondary_s'])}",
        f"  kill -> /_admin/origins says down:     {s(f['kill_to_probes_down_s'])}",
        f"  restart: process up after {s(f['restart_spawn_s'])}; from listening:",
        f"    -> /_admin/origins says up:          {s(f['restart_to_probes_up_s'])}",
        f"    -> first uncached from primary:      {s(f['restart_to_first_primary_s'])} "
        f"(bound: interval x threshold + interval = {s(f['restore_bound_s'])})",
        f"  uncached served by: {f['served_uncached_by']}",
        f"  failovers: {f['failovers']}; ejections: {f['ejections']}",
        f"  client: {f['client']['connections']} connections opened, "
        f"{f['client']['stale_retries']} GETs resent after an idle keep-alive close",
        "  latency (client side)      n   failed   p50 ms   p99 ms   max ms",
    ]
    for phase, row in f["latency"].items():
        lines.append(
            f"    {phase:<18} {row['n']:>6} {row['failed']:>8} {row['p50_ms']:>8.1f} "
            f"{row['p99_ms']:>8.1f} {row['max_ms']:>8.1f}"
        )
    if args.timeline:
        lines.append("  t(s)    sent  failed  uncached: primary  secondary  p99(ms)")
        for row in f["timeline"]:
            lines.append(
                f"  {row['t']:<6.1f} {row['n']:>5} {row['failed']:>7} {row['primary']:>17} "
                f"{row['secondary']:>10} {row['p99_ms']:>8}"
            )
    for example in f["failed_examples"]:
        lines.append(f"  failure: {example}")
    lines.append(
        f"hedging through the proxy: primary stalls {STALL * 1000:.0f} ms on "
        f"{STALL_SHARE:.0%} of paths (uncached), {args.rate:.0f}/s for "
        f"{args.hedge_duration:.0f} s, routes interleaved"
    )
    for name, g in figures["hedging"].items():
        lines.append(
            f"  {name:<11} n={g['n']:<5} p50 {g['p50_ms']:6.1f} ms  p99 {g['p99_ms']:6.1f} ms  "
            f"max {g['max_ms']:6.1f} ms  hedges sent {g['hedges_sent']}, won "
            f"{g['hedges_won']}, answered by secondary {g['by_secondary']}, failed {g['failed']}"
        )
    if args.verbose:
        lines.append("proxy log (health/groups/errors):")
        lines += [f"  {line}" for line in figures["proxy_log"]]
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
    parser.add_argument(
        "--through",
        choices=("group", "proxy"),
        default="group",
        help="group: drive OriginGroup in this process; proxy: a real edgeshield serve",
    )
    parser.add_argument("--verbose", action="store_true", help="proxy mode: its state log")
    args = parser.parse_args(argv)
    if not 0 < args.rate <= 2000 or not 0 < args.duration <= 120 or args.hedge_duration > 120:
        parser.error("keep the load bounded: rate <= 2000/s, durations <= 120 s")
    if not 0 < args.kill_at < args.restore_at < args.duration:
        parser.error("need 0 < --kill-at < --restore-at < --duration")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    runner = run_proxy if args.through == "proxy" else run
    try:
        import uvloop

        figures = uvloop.run(runner(args))
    except ImportError:
        figures = asyncio.run(runner(args))
    except (OSError, RuntimeError) as exc:
        print(f"failover_bench: harness failed: {exc}", file=sys.stderr)
        return 1
    print(report_proxy(figures, args) if args.through == "proxy" else report(figures, args))
    if args.json:
        print(json.dumps(figures, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
