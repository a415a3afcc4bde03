"""Generate the object set the Locust scenarios request: images and MP4 videos in a folder
an fs origin serves, plus the manifest the scenarios read.

    .venv/bin/python loadtests/make_objects.py [--out var/loadtest] [--images 200]
        [--videos 2] [--album-size 20] [--max-side 3000] [--video-seconds 10]
        [--video-kbps 1500] [--seed 1]

writes

    <out>/objects/images/album-NN/img-NNNN.{jpg,webp,png}   varied sizes and aspects
    <out>/objects/video/clip-NN.mp4                         H.264/AAC, faststart
    <out>/objects/health.txt                                for origin health probes
    <out>/manifest.json                                     paths, sizes, types, tags

Nothing is checked in and nothing is downloaded: images are synthesised with pyvips and
videos rendered by the ffmpeg binary bundled with imageio-ffmpeg. Output is deterministic
for a given seed. `<out>/objects` is replaced on every run (only when `<out>` holds a
manifest of ours, so a wrong --out never deletes someone's files).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyvips

try:
    from loadtests.lib.objects import MANIFEST_FORMAT, MANIFEST_VERSION
except ModuleNotFoundError:  # run as a script: the repository root is not on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from loadtests.lib.objects import MANIFEST_FORMAT, MANIFEST_VERSION

# Bounds, so a typo cannot fill the disk or run for an hour.
MAX_IMAGES = 20_000
MAX_VIDEOS = 50
MAX_VIDEO_SECONDS = 120
MAX_SIDE = 8192
FFMPEG_TIMEOUT_S = 180.0
FFMPEG_PARALLEL = 2

# Long sides of camera and CMS uploads, and their aspect ratios (w, h).
SIDES = (480, 640, 800, 1024, 1280, 1600, 2048, 2400, 3000, 4000)
ASPECTS = ((3, 2), (2, 3), (4, 3), (3, 4), (16, 9), (1, 1))
# Mostly JPEG, as on real sites. PNGs are graphics (no grain) and small; WebP encoding
# is slow enough that big ones would dominate the generation time.
FORMATS = (("jpg", 0.75), ("webp", 0.15), ("png", 0.10))
CAPPED_SIDES = {"png": 1024, "webp": 2048}
VIDEO_SIZES = ((640, 360), (960, 540), (1280, 720))
GRAIN_TILE = 256


@dataclass(frozen=True)
class Plan:
    images: int
    videos: int
    album_size: int
    max_side: int
    video_seconds: float
    video_kbps: int
    seed: int


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("var/loadtest"))
    parser.add_argument("--images", type=int, default=200, help="number of images")
    parser.add_argument("--videos", type=int, default=2, help="number of MP4 videos")
    parser.add_argument("--album-size", type=int, default=20, help="images per folder")
    parser.add_argument("--max-side", type=int, default=3000, help="longest image side, px")
    parser.add_argument("--video-seconds", type=float, default=10.0)
    parser.add_argument("--video-kbps", type=int, default=1500, help="video bit rate")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    plan = Plan(
        images=args.images,
        videos=args.videos,
        album_size=args.album_size,
        max_side=args.max_side,
        video_seconds=args.video_seconds,
        video_kbps=args.video_kbps,
        seed=args.seed,
    )
    try:
        check(plan)
        started = time.perf_counter()
        manifest = generate(args.out, plan)
    except (ValueError, RuntimeError, OSError) as exc:
        print(f"make_objects: {exc}", file=sys.stderr)
        return 1
    objects = manifest["objects"]
    total = sum(o["bytes"] for o in objects)
    print(
        f"{len(objects)} objects ({total / 1e6:.1f} MB) in {manifest['root']}, "
        f"manifest {args.out / 'manifest.json'}, {time.perf_counter() - started:.1f}s"
    )
    return 0


def check(plan: Plan) -> None:
    if not 0 <= plan.images <= MAX_IMAGES:
        raise ValueError(f"--images must be 0..{MAX_IMAGES}")
    if not 0 <= plan.videos <= MAX_VIDEOS:
        raise ValueError(f"--videos must be 0..{MAX_VIDEOS}")
    if plan.images + plan.videos == 0:
        raise ValueError("nothing to generate")
    if not 1 <= plan.album_size <= 10_000:
        raise ValueError("--album-size must be 1..10000")
    if not 64 <= plan.max_side <= MAX_SIDE:
        raise ValueError(f"--max-side must be 64..{MAX_SIDE}")
    if not 1 <= plan.video_seconds <= MAX_VIDEO_SECONDS:
        raise ValueError(f"--video-seconds must be 1..{MAX_VIDEO_SECONDS}")
    if not 100 <= plan.video_kbps <= 20_000:
        raise ValueError("--video-kbps must be 100..20000")


def generate(out: Path, plan: Plan) -> dict[str, Any]:
    """Write the object set and its manifest into `out`; return the manifest."""
    check(plan)
    out = out.resolve()
    root = out / "objects"
    manifest_path = out / "manifest.json"
    if root.exists():
        if not manifest_path.exists():
            raise RuntimeError(f"{root} exists but was not made by this script; not touching it")
        shutil.rmtree(root)
    root.mkdir(parents=True)
    rng = random.Random(plan.seed)

    objects: list[dict[str, Any]] = []
    videos = _VideoQueue(root, plan, rng)
    try:
        for index in range(plan.images):
            objects.append(_image(root, plan, rng, index))
            videos.poll()
        objects.extend(videos.finish())
    finally:
        videos.kill()
    (root / "health.txt").write_text("ok\n")

    manifest = {
        "format": MANIFEST_FORMAT,
        "version": MANIFEST_VERSION,
        "root": str(root),
        "seed": plan.seed,
        "objects": objects,
    }
    tmp = manifest_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=1) + "\n")
    os.replace(tmp, manifest_path)
    return manifest


# --------------------------------------------------------------------------- images


def _image(root: Path, plan: Plan, rng: random.Random, index: int) -> dict[str, Any]:
    ext = rng.choices([f for f, _ in FORMATS], weights=[w for _, w in FORMATS])[0]
    side = rng.choice([s for s in SIDES if s <= plan.max_side] or [plan.max_side])
    if ext in CAPPED_SIDES:
        side = min(side, CAPPED_SIDES[ext])
    aw, ah = rng.choice(ASPECTS)
    width, height = (side, side * ah // aw) if aw >= ah else (side * aw // ah, side)
    album = f"album-{index // plan.album_size + 1:02d}"
    rel = f"images/{album}/img-{index + 1:04d}.{ext}"
    alpha = ext == "png" and rng.random() < 0.5
    seed = rng.randrange(1 << 30)
    image = _picture(width, height, seed, rng, grain=ext != "png", alpha=alpha)
    data = _encode(image, ext)
    dest = root / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(data)
    return {
        "path": "/" + rel,
        "type": "image",
        "content_type": {"jpg": "image/jpeg", "webp": "image/webp", "png": "image/png"}[ext],
        "bytes": len(data),
        "width": width,
        "height": height,
        "tags": [album],
    }


def _picture(
    w: int, h: int, seed: int, rng: random.Random, *, grain: bool, alpha: bool
) -> pyvips.Image:
    """Photo-like enough for codecs: smooth colour fields (cheap to render small and
    upsample), film grain (what makes JPEG sizes realistic) and a few hard-edged blocks."""
    cw, ch = max(w // 256, 2) + 2, max(h // 256, 2) + 2
    field = pyvips.Image.gaussnoise(cw, ch, sigma=60, mean=128, seed=seed)
    field = field.bandjoin(
        [pyvips.Image.gaussnoise(cw, ch, sigma=60, mean=128, seed=seed + i) for i in (1, 2)]
    )
    base = field.resize(max(w / (cw - 2), h / (ch - 2)), kernel="cubic").crop(0, 0, w, h)
    if grain:
        # A small seeded tile repeated: deterministic and almost free at any size.
        tile = pyvips.Image.gaussnoise(GRAIN_TILE, GRAIN_TILE, sigma=7, mean=0, seed=seed + 3)
        noise = tile.copy_memory().replicate(-(-w // GRAIN_TILE), -(-h // GRAIN_TILE))
        base = base + noise.crop(0, 0, w, h)
    image = base.cast("uchar").copy(interpretation="srgb")
    for _ in range(rng.randint(2, 6)):
        colour = [rng.randrange(256) for _ in range(3)]
        rw, rh = rng.randint(w // 20 + 1, w // 3 + 1), rng.randint(h // 20 + 1, h // 3 + 1)
        block = (pyvips.Image.black(rw, rh) + colour).cast("uchar").copy(interpretation="srgb")
        # insert, not draw_rect: draw_* copies the whole image into memory each time.
        image = image.insert(block, rng.randrange(w), rng.randrange(h))
    if alpha:
        xyz = pyvips.Image.xyz(w, h)
        dist = ((xyz[0] - w / 2) ** 2 + (xyz[1] - h / 2) ** 2) ** 0.5
        mask = ((min(w, h) * 0.48 - dist) * 4).cast("uchar")  # soft-edged disc, clamped
        image = image.bandjoin(mask)
    return image


def _encode(image: pyvips.Image, ext: str) -> bytes:
    if ext == "jpg":
        data = image.jpegsave_buffer(Q=82, optimize_coding=True, strip=True)
    elif ext == "webp":
        data = image.webpsave_buffer(Q=80, effort=2, strip=True)
    else:
        data = image.pngsave_buffer(compression=6, strip=True)
    return bytes(data)


# --------------------------------------------------------------------------- videos


class _VideoQueue:
    """Renders the videos with ffmpeg in the background (at most FFMPEG_PARALLEL at once)
    while the images are made in this process."""

    def __init__(self, root: Path, plan: Plan, rng: random.Random) -> None:
        self.root = root
        self.plan = plan
        self.pending = [
            (i, *VIDEO_SIZES[i % len(VIDEO_SIZES)], rng.randint(1, 9)) for i in range(plan.videos)
        ]
        self.running: list[tuple[subprocess.Popen[bytes], dict[str, Any], float]] = []
        self.done: list[dict[str, Any]] = []
        self.ffmpeg = _ffmpeg_exe() if plan.videos else ""
        self.poll()

    def poll(self) -> None:
        for proc, entry, deadline in list(self.running):
            code = proc.poll()
            if code is None:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"ffmpeg took longer than {FFMPEG_TIMEOUT_S:.0f}s")
                continue
            self.running.remove((proc, entry, deadline))
            stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            if code != 0:
                raise RuntimeError(f"ffmpeg failed ({code}) on {entry['path']}: {stderr[-500:]}")
            entry["bytes"] = (self.root / entry["path"].lstrip("/")).stat().st_size
            self.done.append(entry)
        while self.pending and len(self.running) < FFMPEG_PARALLEL:
            index, w, h, pattern = self.pending.pop(0)
            rel = f"video/clip-{index + 1:02d}.mp4"
            dest = self.root / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            entry = {
                "path": "/" + rel,
                "type": "video",
                "content_type": "video/mp4",
                "bytes": 0,
                "width": w,
                "height": h,
                "duration": self.plan.video_seconds,
                "tags": ["video"],
            }
            proc = subprocess.Popen(
                _ffmpeg_command(self.ffmpeg, dest, w, h, self.plan, pattern),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                # -loglevel error keeps stderr tiny, so the pipe cannot fill up and block.
                stderr=subprocess.PIPE,
            )
            self.running.append((proc, entry, time.monotonic() + FFMPEG_TIMEOUT_S))

    def finish(self) -> list[dict[str, Any]]:
        while self.pending or self.running:
            self.poll()
            time.sleep(0.05)
        return sorted(self.done, key=lambda e: str(e["path"]))

    def kill(self) -> None:
        for proc, _, _ in self.running:
            proc.kill()
            proc.wait()
        self.running.clear()


def _ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return str(imageio_ffmpeg.get_ffmpeg_exe())


def _ffmpeg_command(ffmpeg: str, dest: Path, w: int, h: int, plan: Plan, pattern: int) -> list[str]:
    seconds = f"{plan.video_seconds:g}"
    kbps = plan.video_kbps
    return [
        ffmpeg,
        *("-hide_banner", "-nostdin", "-loglevel", "error", "-y"),
        *("-f", "lavfi", "-i", f"testsrc2=size={w}x{h}:rate=25:duration={seconds}"),
        *("-f", "lavfi", "-i", f"sine=frequency={220 * pattern}:duration={seconds}"),
        # Temporal noise: a test pattern alone compresses to almost nothing, and a video
        # far below its nominal bit rate would make range reads unrealistically small.
        *("-vf", "noise=alls=12:allf=t"),
        *("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"),
        *("-b:v", f"{kbps}k", "-maxrate", f"{kbps}k", "-bufsize", f"{2 * kbps}k"),
        # A keyframe every 2 s, as streaming encoders do: seeks land near one.
        *("-g", "50", "-c:a", "aac", "-b:a", "64k", "-shortest"),
        # moov first, as web video is published: a player starts from the first range.
        *("-movflags", "+faststart", "-map_metadata", "-1", "-fflags", "+bitexact"),
        *("-f", "mp4", str(dest)),
    ]


if __name__ == "__main__":
    sys.exit(main())
