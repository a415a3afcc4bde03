"""Image transforms through the running proxy vs the same operation in-process (issue 6).

    python loadtests/bench/image_proxy_bench.py [--ops 120] [--rounds 3] [--threads N]
                                                [--concurrency C] [--hit-duration 5]

Starts `edgeshield serve` (one worker, access log to a file, as in production) over an
fs origin holding a photo-like 2000x1500 JPEG (loadtests/bench/image_bench.py makes it),
on a route with `images = true`, and warms the source so that every measured request is
a cold transform of a cached source. Then, in the same run, alternating (the order
reversed every other round so machine drift hits both):

1. cold transforms: `--ops` unique variants per round and format (JPEG `fm=jpg`, WebP
   `fm=webp`), widths 381-420 px and qualities 60-95 in a fixed shuffled order, so no
   request is ever a hit; through the proxy with `--concurrency` keep-alive connections
   (every answer checked: 200, `fwd=miss`, the right content type), and in-process with
   `ImageWorkers` (same threads) running the very same `ImageOptions` (parsed from the
   same query) with the same concurrency. Reported: transforms/s and the ratio
   proxy / in-process (target >= 0.85);
2. warm-variant hits: one stored variant (`?w=400&fm=webp`) under load (wrk when
   installed, else loadgen.py), against a plain cached file of the same bytes: the cost
   of the image step on a hit.

Exit status 0 whatever the figures; non-zero only when the harness could not measure.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `python loadtests/bench/image_proxy_bench.py` from anywhere
    sys.path.insert(0, str(ROOT))

import pyvips  # noqa: E402

from config.images import ImageSettings  # noqa: E402
from loadtests.bench.common import HOST, Server, free_port, get, run_wrk, wrk_path  # noqa: E402
from loadtests.bench.image_bench import source_jpeg  # noqa: E402
from loadtests.bench.loadgen import LoadResult, run_in_process  # noqa: E402
from transforms.image import ImageOptions, ImageWorkers, parse_query  # noqa: E402

TARGET_RATIO = 0.85
WIDTHS = range(381, 421)
QUALITIES = range(60, 96)
FORMATS = {"jpg": "image/jpeg", "webp": "image/webp"}
HIT_URL = "/photo.jpg?w=400&fm=webp"
PLAIN_URL = "/variant-copy.webp"

CONFIG = """\
[server]
host = "{host}"
port = {port}
workers = 1
access_log = "{access_log}"
log_level = "warning"

[origins.bench]
kind = "fs"
root = "{root}"

[images]
threads = {threads}
queue_depth = 256

[[routes]]
host = "*"
path_prefix = "/"
origin = "bench"
images = true

[routes.cache]
override_ttl = 3600
"""


@dataclass
class Round:
    rate: float  # transforms per second
    cpu_ms: float  # CPU milliseconds per transform (the measured process)


@dataclass
class Series:
    name: str
    rounds: list[Round] = field(default_factory=list)

    def median(self, attr: str) -> float:
        return statistics.median(getattr(r, attr) for r in self.rounds)


def queries(fmt: str, pairs: list[tuple[int, int]]) -> list[str]:
    return [f"w={w}&q={q}&fm={fmt}" for w, q in pairs]


async def _fetch(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, target: str
) -> tuple[int, dict[str, str], bytes]:
    writer.write(f"GET {target} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name:
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers, body


async def through_proxy(port: int, targets: list[str], fmt: str, concurrency: int) -> float:
    """Seconds to get every target, `concurrency` keep-alive connections; each answer
    must be a 200 cold transform (fwd=miss) of the right type."""
    pending = iter(targets)
    problems: list[str] = []

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            for target in pending:
                status, headers, _ = await _fetch(reader, writer, target)
                cache = headers.get("cache-status", "")
                if status != 200 or "fwd=miss" not in cache:
                    problems.append(f"{target}: {status} {cache}")
                elif headers.get("content-type") != FORMATS[fmt]:
                    problems.append(f"{target}: {headers.get('content-type')}")
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    if problems:
        raise RuntimeError(f"{len(problems)} bad answers, e.g. {problems[:3]}")
    return elapsed


async def in_process(
    workers: ImageWorkers, source: bytes, options: list[ImageOptions], concurrency: int
) -> float:
    gate = asyncio.Semaphore(concurrency)

    async def one(opts: ImageOptions) -> None:
        async with gate:
            await workers.run(source, opts, None)

    started = time.perf_counter()
    await asyncio.gather(*(one(o) for o in options))
    return time.perf_counter() - started


def hit_load(port: int, path: str, args: argparse.Namespace) -> LoadResult:
    url = f"http://{HOST}:{port}{path}"
    if wrk_path() and args.generator != "loadgen":
        return run_wrk(url, args.hit_connections, args.hit_duration, 1)
    return run_in_process(url, args.hit_connections, args.hit_duration)


def metric(port: int, name: str) -> dict[str, float]:
    text = get(port, "/metrics").body.decode()
    found: dict[str, float] = {}
    for m in re.finditer(rf"^{name}\{{([^}}]*)\}} (\S+)$", text, re.M):
        found[m.group(1)] = found.get(m.group(1), 0.0) + float(m.group(2))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=120, help="unique variants per round/format")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--concurrency", type=int, default=0, help="default: 2 x threads")
    parser.add_argument("--hit-duration", type=float, default=5.0)
    parser.add_argument("--hit-connections", type=int, default=32)
    parser.add_argument("--generator", choices=("auto", "loadgen"), default="auto")
    args = parser.parse_args(argv)
    concurrency = args.concurrency or 2 * args.threads
    pairs = [(w, q) for w in WIDTHS for q in QUALITIES]
    random.Random(20261122).shuffle(pairs)
    if args.ops * args.rounds > len(pairs):
        parser.error(f"--ops x --rounds must be <= {len(pairs)} (unique variants)")

    settings = ImageSettings(threads=args.threads, queue_depth=256)
    source = source_jpeg()
    print(
        f"edgeshield image transforms through the proxy vs in-process, "
        f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n"
        f"{os.cpu_count()} CPU(s), Python {platform.python_version()}, libvips "
        f"{pyvips.version(0)}.{pyvips.version(1)}.{pyvips.version(2)}; source 2000x1500 JPEG "
        f"({len(source)} bytes); {args.threads} transform threads, {concurrency} concurrent "
        f"requests, {args.ops} unique variants per round and format\n"
        f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="edgeshield-image-bench-") as tmp_name:
        tmp = Path(tmp_name)
        root = tmp / "objects"
        root.mkdir()
        (root / "photo.jpg").write_bytes(source)
        port = free_port()
        config = tmp / "edgeshield.toml"
        config.write_text(
            CONFIG.format(
                host=HOST,
                port=port,
                access_log=tmp / "access.log",
                root=root,
                threads=args.threads,
            )
        )
        argv_ = [sys.executable, "-m", "proxy.serve.cli", "serve", "--config", str(config)]
        server = Server("edgeshield", argv_, port, tmp / "edgeshield.log")
        workers = ImageWorkers(settings)  # same process-wide libvips settings as the proxy
        try:
            server.start("/healthz")
            for _ in range(2):
                warm = get(port, "/photo.jpg")
            if warm.status != 200 or "; hit" not in warm.headers.get("cache-status", ""):
                raise RuntimeError(f"source not cached: {warm.status} {warm.headers}")
            cold = run_cold(args, server, workers, source, pairs, concurrency)
            hits = run_hits(args, server, root)
            transforms = metric(port, "edgeshield_image_transforms_total")
        finally:
            workers.close()
            server.stop()
    lines = report(args, cold, hits, transforms)
    lines.append(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("\n".join(lines))
    return 0


def run_cold(
    args: argparse.Namespace,
    server: Server,
    workers: ImageWorkers,
    source: bytes,
    pairs: list[tuple[int, int]],
    concurrency: int,
) -> dict[str, tuple[Series, Series]]:
    settings = workers.settings
    results = {fmt: (Series(f"proxy {fmt}"), Series(f"in-process {fmt}")) for fmt in FORMATS}
    # Warm-up, not measured: codecs and the pool in both processes.
    warm_targets = [f"/photo.jpg?{q}" for q in queries("jpg", [(400, 50), (400, 51)])]
    asyncio.run(through_proxy(server.port, warm_targets, "jpg", 1))
    asyncio.run(in_process(workers, source, [ImageOptions(width=400)] * 4, concurrency))
    for r in range(args.rounds):
        chunk = pairs[r * args.ops : (r + 1) * args.ops]
        for fmt in FORMATS:
            qs = queries(fmt, chunk)
            # The very options the proxy parses from these queries.
            options = [o for o in (parse_query(q, settings=settings) for q in qs) if o]
            assert len(options) == len(qs)
            proxy_series, local_series = results[fmt]
            order = ("proxy", "local") if r % 2 == 0 else ("local", "proxy")
            for which in order:
                if which == "proxy":
                    cpu0 = server.cpu_seconds()
                    targets = [f"/photo.jpg?{q}" for q in qs]
                    elapsed = asyncio.run(through_proxy(server.port, targets, fmt, concurrency))
                    cpu = server.cpu_seconds() - cpu0
                    sample = Round(len(qs) / elapsed, cpu * 1000 / len(qs))
                    proxy_series.rounds.append(sample)
                else:
                    cpu0 = time.process_time()
                    elapsed = asyncio.run(in_process(workers, source, options, concurrency))
                    cpu = time.process_time() - cpu0
                    sample = Round(len(qs) / elapsed, cpu * 1000 / len(qs))
                    local_series.rounds.append(sample)
                print(
                    f"  round {r + 1}/{args.rounds} {fmt:<4} {which:<5} "
                    f"{sample.rate:7.1f} transforms/s  {sample.cpu_ms:6.2f} CPU ms each",
                    flush=True,
                )
    return results


def run_hits(args: argparse.Namespace, server: Server, root: Path) -> tuple[Series, Series]:
    port = server.port
    first = get(port, HIT_URL)
    (root / PLAIN_URL.lstrip("/")).write_bytes(first.body)
    for path in (HIT_URL, PLAIN_URL):
        get(port, path)
        check = get(port, path)
        if (
            check.status != 200
            or check.body != first.body
            or "; hit" not in check.headers.get("cache-status", "")
        ):
            raise RuntimeError(f"{path}: not a hit with the variant's bytes")
    variant, plain = Series("variant hit"), Series("plain hit (same bytes)")
    for r in range(args.rounds):
        order = ((HIT_URL, variant), (PLAIN_URL, plain))
        for path, series in order if r % 2 == 0 else order[::-1]:
            result = hit_load(port, path, args)
            if result.errors or result.non_2xx:
                raise RuntimeError(f"{path}: {result.errors} errors, {result.non_2xx} non-2xx")
            series.rounds.append(Round(result.rps, 0.0))
            print(f"  round {r + 1}/{args.rounds} {series.name:<22} {result.rps:9,.0f} req/s")
    print(f"  (variant size {len(first.body)} bytes)")
    return variant, plain


def report(
    args: argparse.Namespace,
    cold: dict[str, tuple[Series, Series]],
    hits: tuple[Series, Series],
    transforms: dict[str, float],
) -> list[str]:
    lines = ["", "== cold transforms, 2000x1500 JPEG -> 381-420 px, medians =="]
    lines.append(f"{'format':<6} {'proxy/s':>8} {'in-proc/s':>9} {'ratio':>6}  CPU ms each p/i")
    verdicts = []
    for fmt, (proxy, local) in cold.items():
        ratio = proxy.median("rate") / local.median("rate")
        per_round = " ".join(
            f"{p.rate / q.rate:.2f}" for p, q in zip(proxy.rounds, local.rounds, strict=True)
        )
        lines.append(
            f"{fmt:<6} {proxy.median('rate'):8.1f} {local.median('rate'):9.1f} {ratio:6.2f}  "
            f"{proxy.median('cpu_ms'):.2f}/{local.median('cpu_ms'):.2f}  "
            f"(ratio per round: {per_round})"
        )
        verdicts.append((fmt, ratio))
    variant, plain = hits
    generator = "wrk" if wrk_path() and args.generator != "loadgen" else "loadgen"
    hit_ratio = variant.median("rate") / plain.median("rate")
    lines.append("")
    lines.append(
        f"== warm-variant hits, {args.hit_connections} connections, {args.hit_duration:g} s x "
        f"{args.rounds} rounds, {generator} =="
    )
    lines.append(
        f"variant hit {variant.median('rate'):,.0f} req/s, plain hit of the same bytes "
        f"{plain.median('rate'):,.0f} req/s, ratio {hit_ratio:.2f}"
    )
    lines.append(f"proxy transform counter: {transforms}")
    lines.append("")
    for fmt, ratio in verdicts:
        lines.append(
            f"{'TARGET MET' if ratio >= TARGET_RATIO else 'TARGET MISSED'}: cold {fmt} "
            f"proxy / in-process = {ratio:.2f} (target >= {TARGET_RATIO})"
        )
    return lines


if __name__ == "__main__":
    raise SystemExit(main())
