"""Compression of stored text: size ratio and CPU per compressed entry (no HTTP).

    python loadtests/bench/compression_bench.py [--rounds 15] [--levels]

Samples made here: a VOD HLS playlist (1,200 segments), a JSON API answer (catalogue of
300 items), an SVG drawing (paths and text), a DASH manifest. Each is compressed with
`proxy.compress.encode` (what the proxy runs, at the [compression] defaults, or with
--levels at a few levels each); the table prints the compressed size as a fraction of
the original, the CPU milliseconds of one compression (median of --rounds, process time
of this thread, so a busy machine changes it little) and that CPU cost relative to gzip
at its default level on the same sample in the same run. A form is made once per stored
entry and encoding, so this is the whole cost per entry; every later hit sends it as is.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from config.compression import CompressionSettings  # noqa: E402
from proxy.compress import decode, encode  # noqa: E402


def playlist(segments: int = 1200) -> bytes:
    lines = ["#EXTM3U", "#EXT-X-VERSION:6", "#EXT-X-TARGETDURATION:6", "#EXT-X-PLAYLIST-TYPE:VOD"]
    for i in range(segments):
        lines += [f"#EXTINF:{6 - (i % 7) * 0.04:.3f},", f"v1080p/segment-{i:05d}.m4s"]
    lines.append("#EXT-X-ENDLIST")
    return ("\n".join(lines) + "\n").encode()


def catalogue(items: int = 300) -> bytes:
    rows = [
        {
            "id": f"ep-{i:06d}",
            "title": f"Episode {i}: the {['north', 'south', 'east', 'west'][i % 4]} coast",
            "duration": 1200 + (i * 37) % 900,
            "published": f"2026-{i % 12 + 1:02d}-{i % 28 + 1:02d}T06:00:00Z",
            "images": {"poster": f"/img/ep-{i:06d}/poster.jpg", "w": 1280, "h": 720},
            "tags": ["news", "daily", f"region-{i % 9}"],
        }
        for i in range(items)
    ]
    return json.dumps({"items": rows, "next": None}).encode()


def drawing(shapes: int = 250) -> bytes:
    parts = ['<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 1000 1000">']
    for i in range(shapes):
        x, y = (i * 97) % 1000, (i * 61) % 1000
        parts.append(
            f'<path d="M{x} {y} C{x + 20} {y - 30} {x + 60} {y + 30} {x + 80} {y}" '
            f'fill="none" stroke="#{(i * 40503) % 0xFFFFFF:06x}" stroke-width="{1 + i % 4}"/>'
        )
        if i % 10 == 0:
            parts.append(f'<text x="{x}" y="{y}" font-family="sans-serif">label {i}</text>')
    parts.append("</svg>")
    return "\n".join(parts).encode()


def manifest(periods: int = 40) -> bytes:
    out = ['<?xml version="1.0"?>', '<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static">']
    for p in range(periods):
        out.append(f'<Period id="p{p}" start="PT{p * 60}S"><AdaptationSet mimeType="video/mp4">')
        for height in (360, 540, 720, 1080):
            out.append(
                f'<Representation id="v{height}" bandwidth="{height * 4000}" height="{height}">'
                f'<SegmentTemplate media="p{p}/v{height}/$Number$.m4s" timescale="1000" '
                f'duration="6000" startNumber="1"/></Representation>'
            )
        out.append("</AdaptationSet></Period>")
    out.append("</MPD>")
    return "\n".join(out).encode()


SAMPLES: dict[str, Callable[[], bytes]] = {
    "HLS playlist": playlist,
    "JSON": catalogue,
    "SVG": drawing,
    "DASH MPD": manifest,
}


def cpu_ms(fn: Callable[[], object], rounds: int) -> float:
    fn()  # warm up
    times = []
    for _ in range(rounds):
        start = time.thread_time()
        fn()
        times.append((time.thread_time() - start) * 1000)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--levels", action="store_true", help="also other levels per coding")
    args = parser.parse_args(argv)
    default = CompressionSettings()
    configs = [("default", default)]
    if args.levels:
        configs += [
            ("fast", CompressionSettings(gzip_level=1, brotli_quality=1, zstd_level=1)),
            ("max", CompressionSettings(gzip_level=9, brotli_quality=11, zstd_level=19)),
        ]
    print(
        f"levels: gzip {default.gzip_level}, br {default.brotli_quality}, zstd "
        f"{default.zstd_level} (default); median of {args.rounds} rounds"
    )
    print(
        f"{'sample':14} {'bytes':>8} {'levels':8} {'coding':6} {'ratio':>6} "
        f"{'cpu ms':>7} {'vs gzip':>7} {'decode ms':>9}"
    )
    for name, make in SAMPLES.items():
        body = make()
        reference = cpu_ms(partial(encode, body, "gzip", default), args.rounds)
        for label, settings in configs:
            for coding in ("gzip", "br", "zstd"):
                packed = encode(body, coding, settings)
                assert decode(packed, coding, len(body)) == body
                ms = cpu_ms(partial(encode, body, coding, settings), args.rounds)
                dec = cpu_ms(partial(decode, packed, coding, len(body)), args.rounds)
                print(
                    f"{name:14} {len(body):8d} {label:8} {coding:6} "
                    f"{len(packed) / len(body):6.3f} {ms:7.2f} {ms / reference:7.2f} {dec:9.2f}"
                )


if __name__ == "__main__":
    main()
