"""In-process image transform benchmark (no HTTP): what one worker can do.

    python loadtests/bench/image_bench.py [--ops 60] [--rounds 3] [--skip-avif-table]
                                          [--webp-table]

Source: a photo-like 2000x1500 JPEG (gradients, Perlin "clouds", grain, hard-edged
patches), made here with pyvips. Prints, per case, the median milliseconds per operation
over ``--rounds`` rounds of ``--ops`` unique variants (widths 381..420 in turn, so no two
consecutive requests are the same variant; the libvips operation cache is off anyway):

1. shrink-on-load: ``thumbnail_buffer`` vs ``jpegload_buffer(shrink=)`` + ``resize`` vs no
   shrink, 400 px JPEG (the numbers behind transforms/image/steps/load.py);
2. the engine (``transforms.image.transform``), 400 px JPEG and WebP, one thread;
3. the engine through ``ImageWorkers`` (one thread per core): throughput;
4. AVIF effort 0..6 for the 400 px output: ms and bytes (the default's evidence);
5. with --webp-table, WebP effort 0..6 (and smart_subsample): CPU ms of the encode alone
   and median bytes over the widths 381..420 at Q 60/70/80/90, as nginx_bench.py's
   thumbor comparison asks (the evidence for ``webp_effort``).

Through the running proxy, against this in-process figure: image_proxy_bench.py.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `python loadtests/bench/image_bench.py` from anywhere
    sys.path.insert(0, str(ROOT))

import pyvips  # noqa: E402

from config.images import ImageSettings  # noqa: E402
from transforms.image import ImageOptions, ImageWorkers, configure_vips, transform  # noqa: E402
from transforms.image.options import RequestedFormat  # noqa: E402

WIDTHS = tuple(range(381, 421))
ENGINE_FORMATS: tuple[RequestedFormat, ...] = ("jpeg", "webp", "avif")
POOL_FORMATS: tuple[RequestedFormat, ...] = ("jpeg", "webp")


def source_jpeg(width: int = 2000, height: int = 1500) -> bytes:
    xyz = pyvips.Image.xyz(width, height)
    u, v = xyz[0] / width, xyz[1] / height
    sky = (u * 60 + 40).bandjoin([v * 120 + 60, (1 - v) * 160 + 60])
    clouds = pyvips.Image.perlin(width, height, cell_size=256, seed=7) * 50
    grain = pyvips.Image.gaussnoise(width, height, sigma=6, seed=3)
    image = (sky + clouds + grain).cast("uchar").copy(interpretation="srgb")
    for i in range(12):
        colour = [(i * 67) % 256, (i * 151) % 256, (i * 29) % 256]
        image = image.draw_rect(colour, 60 + i * 150, 1100, 100, 100, fill=True)
    return bytes(image.jpegsave_buffer(Q=85, optimize_coding=True))


def median_ms(fn: Callable[[int], object], ops: int, rounds: int) -> float:
    fn(WIDTHS[0])  # warm up codecs
    per_round = []
    for _ in range(rounds):
        started = time.perf_counter()
        for i in range(ops):
            fn(WIDTHS[i % len(WIDTHS)])
        per_round.append((time.perf_counter() - started) * 1000 / ops)
    return statistics.median(per_round)


def shrink_on_load(data: bytes, ops: int, rounds: int) -> None:
    print("1. shrink-on-load, 2000x1500 JPEG -> w px JPEG q80 (ms/op, 1 thread)")

    def thumbnail(w: int) -> bytes:
        return bytes(pyvips.Image.thumbnail_buffer(data, w).jpegsave_buffer(Q=80))

    def shrink(w: int) -> bytes:
        image = pyvips.Image.jpegload_buffer(data, shrink=4, access="sequential")
        return bytes(image.resize(w / image.width).jpegsave_buffer(Q=80))

    def full(w: int) -> bytes:
        image = pyvips.Image.jpegload_buffer(data, access="sequential")
        return bytes(image.resize(w / image.width).jpegsave_buffer(Q=80))

    for name, fn in (("thumbnail_buffer", thumbnail), ("load shrink=4 + resize", shrink)):
        print(f"   {name:<28} {median_ms(fn, ops, rounds):7.2f}")
    print(f"   {'load (no shrink) + resize':<28} {median_ms(full, ops, rounds):7.2f}")


def engine(data: bytes, settings: ImageSettings, ops: int, rounds: int) -> None:
    print("2. engine transform, 2000x1500 JPEG -> w px (ms/op, 1 thread, unique variants)")
    print(f"   (AVIF at the configured effort, {settings.avif.effort})")
    for fmt in ENGINE_FORMATS:

        def run(w: int, fmt: RequestedFormat = fmt) -> object:
            return transform(data, ImageOptions(width=w, format=fmt), None, settings)

        result = transform(data, ImageOptions(width=400, format=fmt), None, settings)
        ms = median_ms(run, ops, rounds)
        print(
            f"   {fmt:<5} {ms:7.2f} ms/op  {1000 / ms:6.1f} ops/s"
            f"  ({len(result.body)} bytes at 400 px)"
        )


async def pooled(data: bytes, settings: ImageSettings, ops: int) -> None:
    workers = ImageWorkers(settings)
    print(f"3. engine through ImageWorkers ({workers.threads} threads), {ops * 2} unique variants")
    try:
        for fmt in POOL_FORMATS:
            started = time.perf_counter()
            gate = asyncio.Semaphore(workers.capacity)

            async def one(
                i: int, fmt: RequestedFormat = fmt, gate: asyncio.Semaphore = gate
            ) -> object:
                async with gate:
                    options = ImageOptions(width=WIDTHS[i % len(WIDTHS)], format=fmt)
                    return await workers.run(data, options, None)

            jobs = [one(i) for i in range(ops * 2)]
            await asyncio.gather(*jobs)
            elapsed = time.perf_counter() - started
            print(
                f"   {fmt:<5} {ops * 2 / elapsed:6.1f} ops/s"
                f"  ({elapsed * 1000 / (ops * 2):.2f} ms/op wall)"
            )
    finally:
        workers.close()


def avif_table(data: bytes, rounds: int) -> None:
    print("4. AVIF effort, the 400x300 result of that JPEG, Q=60 (ms/op encode only, bytes)")
    image = pyvips.Image.jpegload_buffer(data, shrink=4).resize(0.8).copy_memory()
    webp = bytes(image.webpsave_buffer(Q=80, effort=4))
    print(f"   (WebP Q80 effort 4: {len(webp)} bytes)")
    for effort in range(7):

        def encode(_: int, effort: int = effort) -> bytes:
            return bytes(image.heifsave_buffer(Q=60, effort=effort, compression="av1", bitdepth=8))

        size = len(encode(0))
        ms = median_ms(encode, 5 if effort > 3 else 15, rounds)
        print(
            f"   effort {effort}: {ms:8.1f} ms  {size:6d} bytes"
            f"  ({100 * size / len(webp) - 100:+.0f}% vs WebP)"
        )


def webp_table(data: bytes) -> None:
    print("5. WebP encoder, 381-420 px results of that JPEG, Q 60/70/80/90 (CPU ms, bytes)")
    resized = {
        w: pyvips.Image.jpegload_buffer(data, shrink=4).resize(w / 500).copy_memory()
        for w in WIDTHS
    }
    cases: list[dict[str, object]] = [{"effort": e} for e in range(7)]
    cases += [{"effort": 2, "smart_subsample": True}, {"effort": 4, "smart_subsample": True}]
    for case in cases:
        started = time.process_time()  # CPU time: steadier than the clock on a busy machine
        sizes = [
            len(resized[w].webpsave_buffer(Q=q, keep=0, **case))
            for w in WIDTHS
            for q in (60, 70, 80, 90)
        ]
        ms = (time.process_time() - started) * 1000 / len(sizes)
        label = ", ".join(f"{k}={v}" for k, v in case.items())
        print(f"   {label:<32} {ms:6.2f} CPU ms  {statistics.median(sizes):8.0f} bytes")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-avif-table", action="store_true")
    parser.add_argument("--webp-table", action="store_true", help="only the WebP table")
    args = parser.parse_args()
    settings = ImageSettings()
    configure_vips(settings)
    data = source_jpeg()
    print(
        f"libvips {pyvips.version(0)}.{pyvips.version(1)}.{pyvips.version(2)}, pyvips "
        f"{pyvips.__version__}, Python {platform.python_version()}, {os.cpu_count()} cores; "
        f"source 2000x1500 JPEG, {len(data)} bytes"
    )
    if args.webp_table:
        webp_table(data)
        return 0
    shrink_on_load(data, args.ops, args.rounds)
    engine(data, settings, args.ops, args.rounds)
    asyncio.run(pooled(data, settings, args.ops))
    if not args.skip_avif_table:
        avif_table(data, args.rounds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
