"""Figures of live streaming: many viewers polling one live HLS stream through the shield.

    python loadtests/bench/live_bench.py [--viewers 500] [--seconds 60] [--target 1]
                                         [--delay 0.1] [--size 32768]

A simulated live origin (tests/support/live_origin.py: a new `--size`-byte segment every
`--target` seconds, a 5-segment window, every answer `--delay` seconds away) behind one
edgeshield process. `--viewers` simulated players (asyncio, one process, one keep-alive
connection each, started spread over one target duration) poll the media playlist once
per target duration and fetch each segment it newly lists, as a player at the live edge
does. Run twice, the same way: with the route's default segment prefetch, then with
`prefetch_segments = 0`. Printed per run:

- origin playlist fetches per target duration (one per TTL window of half the target
  duration is 2, whatever the number of viewers);
- the segment hit ratio: segment requests answered without an origin fetch of their own
  (Cache-Status `hit`, or joined to a fetch under way: `collapsed`, a prefetch's included);
- first-viewer segment TTFB: for each segment, the time to the response head of the first
  request sent for it (median and p90 over the segments), beside the origin's `--delay`.

Ratios and latencies come from one run on a shared machine: compare the two runs with
each other, not with another machine's.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.live_origin import LiveOrigin, running_live_origin  # noqa: E402
from tests.support.proxy_server import proxy_config, running_proxy  # noqa: E402

PLAYLIST = "/live/index.m3u8"


@dataclass
class Tally:
    playlist_requests: int = 0
    segment_requests: int = 0
    errors: int = 0
    statuses: dict[str, int] = field(default_factory=dict)  # segment Cache-Status kind
    # segment -> (send time, TTFB) of the first request sent for it
    first: dict[str, tuple[float, float]] = field(default_factory=dict)


async def _get(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str
) -> tuple[int, dict[str, str], bytes, float]:
    """One keep-alive GET: status, fields, body, seconds to the response head."""
    sent = time.perf_counter()
    writer.write(f"GET {path} HTTP/1.1\r\nhost: live.test\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    ttfb = time.perf_counter() - sent
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    fields = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name:
            fields[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(fields.get("content-length", "0")))
    return status, fields, body, ttfb


def _kind(cache_status: str) -> str:
    if "collapsed" in cache_status:
        return "collapsed"
    if "; hit" in cache_status:
        return "hit"
    return "miss"


async def _viewer(port: int, target: float, until: float, tally: Tally) -> None:
    await asyncio.sleep(random.random() * target)  # players do not start in step
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    seen: set[str] = set()
    try:
        while time.monotonic() < until:
            polled = time.monotonic()
            status, _, body, _ = await _get(reader, writer, PLAYLIST)
            tally.playlist_requests += 1
            if status != 200:
                tally.errors += 1
            names = [
                line for line in body.decode().splitlines() if line and not line.startswith("#")
            ]
            new = [n for n in names if n not in seen]
            if seen:  # at the live edge: only what is new since the last poll
                for name in new:
                    sent = time.monotonic()
                    status, fields, _, ttfb = await _get(reader, writer, f"/live/{name}")
                    tally.segment_requests += 1
                    kind = _kind(fields.get("cache-status", "")) if status == 200 else "error"
                    tally.statuses[kind] = tally.statuses.get(kind, 0) + 1
                    earlier = tally.first.get(name)
                    if earlier is None or sent < earlier[0]:
                        tally.first[name] = (sent, ttfb)
            seen.update(names)
            await asyncio.sleep(max(0.0, target - (time.monotonic() - polled)))
    except (ConnectionError, asyncio.IncompleteReadError):
        tally.errors += 1
    finally:
        writer.close()


async def _watch(port: int, viewers: int, seconds: float, target: float) -> Tally:
    tally = Tally()
    until = time.monotonic() + seconds
    await asyncio.gather(*(_viewer(port, target, until, tally) for _ in range(viewers)))
    return tally


def run(origin: LiveOrigin, args: argparse.Namespace, prefetch: int) -> dict[str, float]:
    config = proxy_config(
        origin.url,
        cache={"prefetch_segments": prefetch},
        server={"log_level": "warning"},
    )
    with running_proxy(config) as proxy:
        before = origin.stats()["requests"]
        assert isinstance(before, dict)
        started = time.monotonic()
        tally = asyncio.run(_watch(proxy.port, args.viewers, args.seconds, args.target))
        elapsed = time.monotonic() - started
        after = origin.stats()["requests"]
        assert isinstance(after, dict)
    fetched = {p: n - before.get(p, 0) for p, n in after.items()}
    segment_fetches = sum(n for p, n in fetched.items() if p.endswith(".ts"))
    ttfbs = sorted(t for _, t in tally.first.values())
    answered = tally.statuses.get("hit", 0) + tally.statuses.get("collapsed", 0)
    return {
        "playlist_per_target": fetched.get(PLAYLIST, 0) / (elapsed / args.target),
        "hit_ratio": answered / max(1, tally.segment_requests),
        "hits": tally.statuses.get("hit", 0) / max(1, tally.segment_requests),
        "offload": 1 - segment_fetches / max(1, tally.segment_requests),
        "ttfb_median_ms": statistics.median(ttfbs) * 1000 if ttfbs else float("nan"),
        "ttfb_p90_ms": ttfbs[int(len(ttfbs) * 0.9)] * 1000 if ttfbs else float("nan"),
        "playlist_requests": tally.playlist_requests,
        "segment_requests": tally.segment_requests,
        "segments": len(ttfbs),
        "errors": tally.errors,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--viewers", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--target", type=float, default=1.0)
    parser.add_argument("--delay", type=float, default=0.1)
    parser.add_argument("--size", type=int, default=32 * 1024)
    args = parser.parse_args()
    print(
        f"{args.viewers} viewers, {args.seconds:.0f} s, target duration {args.target} s, "
        f"origin {args.delay * 1000:.0f} ms away, {args.size} B segments"
    )
    origin_args = ("--target", str(args.target), "--delay", str(args.delay))
    with running_live_origin(*origin_args, "--size", str(args.size)) as origin:
        for label, prefetch in (("prefetch 2", 2), ("prefetch 0", 0)):
            r = run(origin, args, prefetch)
            print(
                f"{label}: playlist fetches/target {r['playlist_per_target']:.2f}, "
                f"segment hit ratio {r['hit_ratio']:.4f} (hit {r['hits']:.4f}, origin "
                f"offload {r['offload']:.4f}), first-viewer TTFB median "
                f"{r['ttfb_median_ms']:.1f} ms p90 {r['ttfb_p90_ms']:.1f} ms over "
                f"{r['segments']:.0f} segments; {r['playlist_requests']:.0f} playlist and "
                f"{r['segment_requests']:.0f} segment requests, {r['errors']:.0f} errors"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
