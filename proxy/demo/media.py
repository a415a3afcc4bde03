"""Generate the demo media set that ``make run`` serves through the local-folder origin.

Everything is synthesised locally (no network, no checked-in binaries): photo-like images
built with pyvips, a short H.264/AAC clip and an adaptive stream (HLS and DASH,
proxy/demo/stream.py) rendered by the ffmpeg binary bundled with imageio-ffmpeg. Output is
deterministic (fixed noise seeds) so ETags and sizes stay stable between runs, which keeps
cache demos and tests reproducible; only the page's signed stream URL changes when it is
re-signed. The page's player, hls.js, is copied from the package when `make vendor` put
it there.
"""

from __future__ import annotations

import contextlib
import html
import json
import logging
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyvips

from proxy.demo import stream

log = logging.getLogger("edgeshield.demo")

# Bump whenever the generated content changes, so existing demo folders get rebuilt.
GENERATOR_VERSION = "3"
MANIFEST_NAME = ".demo-version"

VIDEO_SECONDS = 6
VIDEO_SIZE = (640, 360)
VIDEO_MAX_BYTES = 2 * 1024 * 1024
FFMPEG_TIMEOUT_S = stream.FFMPEG_TIMEOUT_S


@dataclass(frozen=True)
class ImageSpec:
    """One generated image; the encoder is chosen by the path's extension."""

    path: str
    width: int
    height: int
    seed: int
    alt: str


# 3:2 landscapes at common breakpoints, a 2:3 portrait, and a camera-sized 4:3 source.
PHOTOS: tuple[ImageSpec, ...] = (
    ImageSpec("images/landscape-640.jpg", 640, 427, 11, "Landscape, 640 px"),
    ImageSpec("images/landscape-1280.jpg", 1280, 853, 11, "Landscape, 1280 px"),
    ImageSpec("images/landscape-2048.jpg", 2048, 1365, 11, "Landscape, 2048 px"),
    ImageSpec("images/portrait-1080.jpg", 1080, 1620, 23, "Portrait, 1080 px"),
    ImageSpec("images/photo-4000.jpg", 4000, 3000, 37, "Large 4000x3000 source photo"),
    ImageSpec("images/sample.webp", 960, 640, 53, "WebP sample"),
)
LOGO = ImageSpec("images/logo-512.png", 512, 512, 71, "edgeshield logo with transparency")
VIDEO_PATH = "video/clip.mp4"
INDEX_PATH = "index.html"
HELLO_PATH = "hello.txt"

CONTENT_FILES: tuple[str, ...] = (
    *(spec.path for spec in PHOTOS),
    LOGO.path,
    VIDEO_PATH,
    HELLO_PATH,
    INDEX_PATH,
    *stream.fixed_files(),
)


# --------------------------------------------------------------------------- public API


def generate_demo(out: Path, *, force: bool = False) -> list[Path]:
    """Write the demo set into ``out`` and return the files written.

    Idempotent: when ``out/.demo-version`` names the current generator version, every
    file exists and the page's signed stream URL is not close to expiry, nothing is
    touched and ``[]`` is returned (unless ``force``). Each file is
    written atomically, so a server reading ``out`` concurrently never sees a partial file.
    The manifest is written last, so an interrupted run is redone on the next call.
    """
    out = Path(out)
    if not force and is_up_to_date(out):
        log.info("demo set in %s is up to date (version %s)", out, GENERATOR_VERSION)
        return []

    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def emit(rel: str, data: bytes) -> None:
        dest = out / rel
        _atomic_write_bytes(dest, data)
        written.append(dest)
        log.info("wrote %s (%s)", dest, _human_size(len(data)))

    video = out / VIDEO_PATH
    with _temp_sibling(video) as tmp_video:
        # ffmpeg is a separate process: let it encode while pyvips renders the images.
        encoder = _VideoEncoder(tmp_video)
        streamer = encoder.stream_encoder()
        try:
            for spec in PHOTOS:
                emit(spec.path, _encode(spec.path, _photo(spec)))
            emit(LOGO.path, _encode(LOGO.path, _logo(LOGO.width, LOGO.seed)))
            encoder.wait()
            _emit_stream(out, streamer, emit)
        except BaseException:
            encoder.kill()
            streamer.kill()
            raise
        finally:
            streamer.close()
    written.append(video)
    log.info("wrote %s (%s)", video, _human_size(video.stat().st_size))

    hlsjs = stream.vendored_hlsjs()
    if hlsjs is None:
        log.warning("hls.js is not vendored (`make vendor` needs npm): the page plays HLS natively")
    else:
        emit(stream.HLSJS_PATH, hlsjs)
    emit(HELLO_PATH, _hello_text().encode())
    signed = stream.sign_stream(out)
    # Last, because it lists the sizes of everything above.
    emit(INDEX_PATH, _index_html(out, encoder.codecs, signed, hlsjs is not None).encode())

    manifest = f"{GENERATOR_VERSION}\n{signed.expires}\n{int(hlsjs is not None)}\n"
    _atomic_write_bytes(out / MANIFEST_NAME, manifest.encode())
    log.info(
        "demo set generated in %s: %d files in %.1fs",
        out,
        len(written),
        time.perf_counter() - started,
    )
    return written


def is_up_to_date(out: Path) -> bool:
    """True when ``out`` holds a complete demo set from this generator version, its
    signed stream URL is good for a while yet, and it has hls.js if the package has."""
    try:
        version, expires, with_hlsjs = (out / MANIFEST_NAME).read_text().split()
        signed_until = int(expires)
    except (OSError, ValueError):
        return False
    return (
        version == GENERATOR_VERSION
        and stream.signature_fresh(out, signed_until)
        and with_hlsjs == str(int(stream.VENDORED_HLSJS.is_file()))
        and all((out / rel).is_file() for rel in CONTENT_FILES)
    )


def _emit_stream(
    out: Path, streamer: stream.StreamEncoder, emit: Callable[[str, bytes], None]
) -> None:
    """Write the stream's files, then drop any an earlier generation left behind."""
    names = set()
    for rel, data in streamer.files():
        emit(rel, data)
        names.add(Path(rel).name)
    for old in (out / stream.STREAM_DIR).iterdir():
        if old.name not in names and not old.name.startswith("."):
            old.unlink(missing_ok=True)


# --------------------------------------------------------------------------- file writing


@contextlib.contextmanager
def _temp_sibling(dest: Path) -> Iterator[Path]:
    """Yield a temp path next to ``dest``; on success it is renamed over ``dest``.

    Same directory => same filesystem => ``os.replace`` is an atomic rename. The dot
    prefix keeps half-written files out of casual directory listings.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp creates 0600; the origin may run as another user, so publish as 0644.
        tmp.chmod(0o644)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _atomic_write_bytes(dest: Path, data: bytes) -> None:
    with _temp_sibling(dest) as tmp:
        tmp.write_bytes(data)


def _human_size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{n / (1024 * 1024):.1f} MiB"


# --------------------------------------------------------------------------- images


def _encode(rel: str, image: pyvips.Image) -> bytes:
    """Encode by extension with web-typical settings; strip metadata for stable bytes."""
    suffix = Path(rel).suffix.lower()
    if suffix == ".jpg":
        # Progressive + optimised Huffman tables, as a real CDN-facing origin would serve.
        data = image.jpegsave_buffer(
            Q=82, interlace=True, optimize_coding=True, keep=pyvips.enums.ForeignKeep.NONE
        )
    elif suffix == ".webp":
        data = image.webpsave_buffer(Q=78, effort=4, keep=pyvips.enums.ForeignKeep.NONE)
    elif suffix == ".png":
        data = image.pngsave_buffer(compression=9, keep=pyvips.enums.ForeignKeep.NONE)
    else:
        raise ValueError(f"no encoder for {rel}")
    return bytes(data)


def _lerp(a: pyvips.Image, b: pyvips.Image | list[float], t: pyvips.Image) -> pyvips.Image:
    """Per-pixel blend from ``a`` to ``b`` by ``t`` in [0, 1]; a 1-band ``t`` covers all bands."""
    return a * (1 - t) + t * b


def _const(width: int, height: int, rgb: tuple[float, float, float]) -> pyvips.Image:
    return (pyvips.Image.black(width, height, bands=3) + list(rgb)).cast("float")


def _smooth_noise(width: int, height: int, cell: int, seed: int) -> pyvips.Image:
    """Perlin noise in [-1, 1], computed at 1/8 scale and upsampled.

    Full-resolution Perlin on a 12 MP canvas costs seconds; the noise is low-frequency
    anyway, so a cheap bilinear upscale is visually identical.
    """
    scale = 8
    small_w = -(-width // scale) + 1
    small_h = -(-height // scale) + 1
    small = pyvips.Image.perlin(small_w, small_h, cell_size=max(cell // scale, 2), seed=seed)
    return small.resize(scale, kernel="linear").crop(0, 0, width, height)


def _clamp01(image: pyvips.Image) -> pyvips.Image:
    return (image < 0).ifthenelse(0, (image > 1).ifthenelse(1, image))


# Smooth content is rendered with its long side at most this many pixels, then upsampled.
BASE_MAX_SIDE = 1400
GRAIN_TILE = 509  # prime-ish tile size, so the repeat never lines up with 8x8 JPEG blocks


def _photo(spec: ImageSpec) -> pyvips.Image:
    """A stylised landscape: sky gradient, clouds, sun glow, two ridgelines, lake, grain.

    It mixes smooth gradients (banding shows bad quantisation), fine grain and hard edges
    (ringing shows bad resampling) and text (blur shows over-compression), so resize and
    quality settings make a visible, measurable difference.
    """
    w, h = spec.width, spec.height
    # The scene is ~60 float ops per pixel: at 12 MP that is seconds. It is all smooth, so
    # render it small and upsample; the full-resolution detail (grain, swatches, caption)
    # is added afterwards and is what makes large sizes genuinely large.
    scale = -(-max(w, h) // BASE_MAX_SIDE)
    base = _scene(-(-w // scale), -(-h // scale), spec.seed)
    if scale > 1:
        base = base.resize(scale, kernel="cubic").crop(0, 0, w, h)

    # Luma film grain from a small seeded tile: deterministic, and ~free at any size.
    tile = pyvips.Image.gaussnoise(GRAIN_TILE, GRAIN_TILE, sigma=5.0, mean=0.0, seed=spec.seed)
    grain = tile.copy_memory().replicate(-(-w // GRAIN_TILE), -(-h // GRAIN_TILE))
    photo = (base + grain.crop(0, 0, w, h)).cast("uchar").copy(interpretation="srgb")

    photo = _swatches(photo, w)
    return _caption(photo, f"edgeshield demo \u00b7 {w}\u00d7{h}")


def _scene(w: int, h: int, seed: int) -> pyvips.Image:
    """The smooth part of the landscape as a float sRGB image, in resolution-free units."""
    xyz = pyvips.Image.xyz(w, h).cast("float")
    u = xyz[0] / w  # 0..1 across
    v = xyz[1] / h  # 0..1 down
    horizon = 0.62

    # Sky: deep blue at the top to warm haze at the horizon, with drifting clouds.
    sky = _lerp(_const(w, h, (32, 64, 140)), [250, 190, 140], _clamp01(v / horizon))
    clouds = _clamp01(_smooth_noise(w, h, max(w, h) // 3, seed) * 1.6 - 0.15)
    sky = _lerp(sky, [245, 240, 235], clouds * 0.75 * _clamp01(1.2 - v / horizon))

    # Sun: radial glow, added on top so it brightens the clouds too, plus a hard disc.
    sun_x, sun_y = 0.72, horizon * 0.55
    dist = ((u - sun_x) ** 2 + ((v - sun_y) * h / w) ** 2) ** 0.5
    sky = sky + (dist * -14).exp() * [255, 200, 120]
    sky = _lerp(sky, [255, 250, 225], _clamp01((0.045 - dist) * w / 3))

    # Ridgelines from a few sines (pyvips trig works in degrees) with a ~1 px soft edge.
    def ridge(base: float, amps: tuple[float, ...], freqs: tuple[float, ...]) -> pyvips.Image:
        line = u * 0 + base
        for i, (amp, freq) in enumerate(zip(amps, freqs, strict=True)):
            line = line + (u * (360 * freq) + seed * 37.0 * (i + 1)).sin() * amp
        return _clamp01((v - line) * h)

    far = ridge(horizon - 0.12, (0.04, 0.02, 0.008), (1.3, 3.7, 11.0))
    near = ridge(horizon - 0.04, (0.05, 0.015, 0.006), (0.8, 5.3, 17.0))
    texture = _smooth_noise(w, h, max(w, h) // 12, seed + 1)
    far_rock = _lerp(_const(w, h, (96, 110, 150)), [150, 150, 175], v) + texture * 12
    near_rock = _lerp(_const(w, h, (40, 70, 50)), [20, 45, 30], v) + texture * 18
    scene = _lerp(sky, far_rock, far)
    scene = _lerp(scene, near_rock, near)

    # Lake below the hills: a darkened, vertically flipped sky with horizontal ripples.
    lake = _clamp01((v - (horizon + 0.1)) * h)
    ripple = (v * (360 * 60) + u * 720).sin() * 6
    reflection = sky.flip("vertical") * 0.55 + [10, 25, 45] + ripple
    return _lerp(scene, reflection, lake)


def _swatches(image: pyvips.Image, w: int) -> pyvips.Image:
    """A row of saturated colour patches: hard edges that expose chroma subsampling."""
    colours = ((220, 40, 40), (240, 200, 30), (40, 170, 70), (30, 150, 220), (130, 60, 200))
    size = max(w // 40, 8)
    margin = size // 2
    for i, rgb in enumerate(colours):
        image = image.draw_rect(list(rgb), margin + i * size, margin, size, size, fill=True)
    return image


def _caption(image: pyvips.Image, text: str) -> pyvips.Image:
    """White caption with a drop shadow in the bottom-left corner, scaled to the image."""
    dpi = max(int(image.width / 8), 60)
    mask = pyvips.Image.text(f"<b>{html.escape(text, quote=False)}</b>", font="sans", dpi=dpi)
    pad = max(image.width // 60, 4)
    x, y = pad, image.height - mask.height - pad
    shadow = mask.gaussblur(max(dpi / 120, 0.8))
    offset = max(dpi // 100, 1)
    layers = [_ink(shadow, (0, 0, 0), 0.6), _ink(mask, (255, 255, 255), 1.0)]
    composed = image.composite(layers, "over", x=[x + offset, x], y=[y + offset, y])
    # Back to 3-band RGB: JPEG has no alpha and the caption is fully inside the frame.
    return composed.flatten().cast("uchar")


def _ink(mask: pyvips.Image, rgb: tuple[int, int, int], opacity: float) -> pyvips.Image:
    """Turn a one-band coverage mask into an RGBA layer of a single colour."""
    colour = (mask.new_from_image(list(rgb))).copy(interpretation="srgb")
    return colour.bandjoin((mask * opacity).cast("uchar"))


def _logo(size: int, seed: int) -> pyvips.Image:
    """A shield-ish badge on a transparent background (RGBA PNG)."""
    xyz = pyvips.Image.xyz(size, size).cast("float")
    u = xyz[0] / size
    v = xyz[1] / size
    # Diagonal gradient fill with a little texture so the PNG isn't trivially compressible.
    fill = _lerp(_const(size, size, (20, 150, 190)), [110, 40, 170], _clamp01((u + v) / 2))
    fill = fill + _smooth_noise(size, size, size // 4, seed) * 14
    # Anti-aliased disc: alpha falls from 255 to 0 over ~1.5 px at the rim.
    dist = ((u - 0.5) ** 2 + (v - 0.5) ** 2) ** 0.5 * size
    alpha = _clamp01((size * 0.46 - dist) / 1.5) * 255
    # Soft drop shadow under the disc, partially transparent.
    shadow = _clamp01((size * 0.49 - dist) / (size * 0.05)) * 70
    rgb = _lerp(_const(size, size, (0, 0, 0)), fill, alpha / 255)
    alpha_all = (alpha > shadow).ifthenelse(alpha, shadow)
    logo = rgb.cast("uchar").bandjoin(alpha_all.cast("uchar")).copy(interpretation="srgb")
    # Giving both width and height makes libvips pick the dpi that fills the box.
    mark = pyvips.Image.text("<b>es</b>", font="sans", width=size * 6 // 10, height=size * 4 // 10)
    x = (size - mark.width) // 2
    y = (size - mark.height) // 2
    return logo.composite2(_ink(mark, (255, 255, 255), 1.0), "over", x=x, y=y)


# --------------------------------------------------------------------------- video


def _ffmpeg_exe() -> str:
    import imageio_ffmpeg  # local import: only needed for the video step

    return str(imageio_ffmpeg.get_ffmpeg_exe())


def _ffmpeg_encoders(ffmpeg: str) -> str:
    proc = subprocess.run(
        [ffmpeg, "-hide_banner", "-encoders"],
        capture_output=True,
        text=True,
        timeout=FFMPEG_TIMEOUT_S,
        check=True,
    )
    return proc.stdout


def _pick_codecs(encoders: str) -> tuple[list[str], list[str], str]:
    """Prefer H.264 + AAC (plays everywhere); fall back to what this ffmpeg build has."""

    def has(name: str) -> bool:
        return re.search(rf"^\s*\S+\s+{re.escape(name)}\s", encoders, re.MULTILINE) is not None

    if has("libx264"):
        # yuv420p + main profile: the combination every browser's <video> decodes.
        video = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "30"]
        video += ["-profile:v", "main", "-pix_fmt", "yuv420p"]
        label = "H.264"
    elif has("libopenh264"):
        video = ["-c:v", "libopenh264", "-b:v", "600k", "-pix_fmt", "yuv420p"]
        label = "H.264"
    else:
        video = ["-c:v", "mpeg4", "-q:v", "6", "-pix_fmt", "yuv420p"]
        label = "MPEG-4 Part 2"
    if has("aac"):
        return video, ["-c:a", "aac", "-b:a", "64k"], f"{label}/AAC"
    return video, ["-an"], label


def _ffmpeg_command(
    ffmpeg: str, dest: Path, video_args: list[str], audio_args: list[str]
) -> list[str]:
    """6 s 640x360 test pattern with a beeping 440 Hz tone, as a web-friendly MP4."""
    w, h = VIDEO_SIZE
    return [
        ffmpeg,
        *("-hide_banner", "-nostdin", "-loglevel", "error", "-y"),
        *("-f", "lavfi", "-i", f"testsrc2=size={w}x{h}:rate=25:duration={VIDEO_SECONDS}"),
        *("-f", "lavfi", "-i", f"sine=frequency=440:beep_factor=4:duration={VIDEO_SECONDS}"),
        *video_args,
        # A keyframe every 2 s keeps seeking (and byte-range demos) snappy.
        *("-g", "50"),
        *audio_args,
        "-shortest",
        # moov atom up front: playback can start before the whole file has arrived.
        *("-movflags", "+faststart"),
        # No encoder/creation-time tags: identical bytes on every run.
        *("-map_metadata", "-1", "-fflags", "+bitexact"),
        *("-flags:v", "+bitexact", "-flags:a", "+bitexact"),
        # The temp file ends in .tmp, so name the container explicitly.
        *("-f", "mp4", str(dest)),
    ]


class _VideoEncoder:
    """Runs ffmpeg in the background, writing ``dest``; ``wait`` checks the result."""

    def __init__(self, dest: Path) -> None:
        ffmpeg = _ffmpeg_exe()
        video_args, audio_args, self.codecs = _pick_codecs(_ffmpeg_encoders(ffmpeg))
        self.ffmpeg, self.video_codec, self.audio = ffmpeg, video_args[1], audio_args != ["-an"]
        self.dest = dest
        self.deadline = time.monotonic() + FFMPEG_TIMEOUT_S
        self.proc = subprocess.Popen(
            _ffmpeg_command(ffmpeg, dest, video_args, audio_args),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            # -loglevel error keeps stderr tiny, so the pipe cannot fill up and block.
            stderr=subprocess.PIPE,
            text=True,
        )

    def wait(self) -> None:
        stream.finish_ffmpeg(self.proc, self.deadline)
        size = self.dest.stat().st_size
        if size > VIDEO_MAX_BYTES:
            raise RuntimeError(f"demo clip is {size} bytes, over the {VIDEO_MAX_BYTES} budget")

    def kill(self) -> None:
        self.proc.kill()
        self.proc.communicate()

    def stream_encoder(self) -> stream.StreamEncoder:
        """The adaptive stream's encode, started now, with this clip's codecs."""
        return stream.StreamEncoder(self.ffmpeg, self.video_codec, self.audio)


# --------------------------------------------------------------------------- text + html


def _hello_text() -> str:
    return (
        "hello from edgeshield\n"
        "\n"
        "This file is served from the local demo folder through the edgeshield cache.\n"
        "Fetch it twice and compare the Cache-Status and Age headers:\n"
        "\n"
        "  curl -sI http://127.0.0.1:8080/hello.txt\n"
    )


# What each tile shows: the original, an imgix-style query variant (the tile image) and a
# Cloudflare-style path variant (a square thumbnail), both negotiated to AVIF/WebP.
TILE_WIDTH = 480
THUMB_SIDE = 120


def imgix_url(rel: str) -> str:
    """The tile image: `rel` resized to the tile with imgix query parameters."""
    return f"{rel}?w={TILE_WIDTH}&auto=format,compress"


def cloudflare_url(rel: str) -> str:
    """The thumbnail: a square crop of `rel` in Cloudflare's /cdn-cgi/image/ path syntax
    (relative, since the page sits at the site root), twice the shown size for HiDPI."""
    side = THUMB_SIDE * 2
    return f"cdn-cgi/image/width={side},height={side},fit=cover,format=auto/{rel}"


def _index_html(out: Path, codecs: str, signed: stream.SignedStream, hlsjs: bool) -> str:
    """Self-contained page (inline CSS and script, no external assets, relative links;
    hls.js is served from the demo folder itself)."""

    def size_of(rel: str) -> str:
        return _human_size((out / rel).stat().st_size)

    figures = [_tile(spec, size_of(spec.path)) for spec in (*PHOTOS, LOGO)]
    vw, vh = VIDEO_SIZE
    video_rel = html.escape(VIDEO_PATH)
    return _PAGE.format(
        figures="\n      ".join(figures),
        video=video_rel,
        video_w=vw,
        video_h=vh,
        video_size=size_of(VIDEO_PATH),
        seconds=VIDEO_SECONDS,
        codecs=html.escape(codecs),
        hello=html.escape(HELLO_PATH),
        script=_PROBE_SCRIPT,
        stream=_stream_section(signed, hlsjs),
    )


def _stream_section(signed: stream.SignedStream, hlsjs: bool) -> str:
    """The adaptive stream, played by hls.js (or natively where it is not vendored)."""
    sizes = ", ".join(f"{w}&times;{h}" for w, h, _ in stream.RENDITIONS)
    master, mpd = html.escape(signed.master), html.escape(signed.mpd)
    loader = f'<script src="{stream.HLSJS_PATH}"></script>' if hlsjs else ""
    return _STREAM.format(
        master=master,
        mpd=mpd,
        master_js=json.dumps(signed.master),
        sizes=sizes,
        seconds=stream.STREAM_SECONDS,
        segment=stream.SEGMENT_SECONDS,
        loader=loader,
        player="hls.js" if hlsjs else "the browser's own HLS player",
    )


def _tile(spec: ImageSpec, original_size: str) -> str:
    """One image: the transformed variants shown, every URL listed with what it weighs."""
    rel = html.escape(spec.path)
    query, path = html.escape(imgix_url(spec.path)), html.escape(cloudflare_url(spec.path))
    # width/height let the browser reserve space before loading.
    shown_w = min(spec.width, TILE_WIDTH)
    shown_h = round(spec.height * shown_w / spec.width)
    alt = html.escape(spec.alt)

    def row(label: str, url: str, text: str) -> str:
        return (
            f'<tr><th>{label}</th><td><a href="{url}"><code>/{url}</code></a></td>'
            f'<td data-probe="{url}">{text}</td></tr>'
        )

    rows = [
        row(f"original, {spec.width}&times;{spec.height}", rel, original_size),
        row("imgix query", query, "&hellip;"),
        row("Cloudflare path", path, "&hellip;"),
    ]
    return (
        f'<figure><div class="shots"><a href="{query}"><img src="{query}" width="{shown_w}" '
        f'height="{shown_h}" alt="{alt}, resized" loading="lazy"></a>'
        f'<a href="{path}"><img src="{path}" width="{THUMB_SIDE}" height="{THUMB_SIDE}" '
        f'alt="{alt}, square crop" loading="lazy"></a></div>'
        f"<figcaption><table>{''.join(rows)}</table></figcaption></figure>"
    )


# Fills each [data-probe] cell with what the server answers that URL with: the bytes and
# the negotiated format, asked with the Accept header a current browser sends for images.
_PROBE_SCRIPT = """
  const ACCEPT = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8";
  const kib = (n) => n < 1024 ? n + " B" : n < 1048576 ? (n / 1024).toFixed(1) + " KiB"
    : (n / 1048576).toFixed(1) + " MiB";
  for (const cell of document.querySelectorAll("[data-probe]")) {
    fetch(cell.dataset.probe, {method: "HEAD", headers: {accept: ACCEPT}}).then((r) => {
      const bytes = Number(r.headers.get("content-length"));
      const type = (r.headers.get("content-type") || "?").split(";")[0];
      const status = r.headers.get("cache-status") || "";
      cell.textContent = r.ok ? kib(bytes) + " \u00b7 " + type
        + (status.includes("hit") ? " \u00b7 cache hit" : "") : "HTTP " + r.status;
    }).catch(() => { cell.textContent = "unreachable"; });
  }
"""


_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>edgeshield demo</title>
  <style>
    :root {{ color-scheme: light dark; --accent: #1496be; }}
    body {{ font: 16px/1.5 system-ui, sans-serif; max-width: 72rem; margin: 2rem auto;
           padding: 0 1rem; }}
    h1 {{ margin-bottom: .25rem; }}
    code, pre {{ font-family: ui-monospace, monospace; background: rgba(127,127,127,.15);
                border-radius: 4px; }}
    code {{ padding: 0 .25rem; }}
    pre {{ padding: .75rem; overflow-x: auto; }}
    a {{ color: var(--accent); }}
    .grid {{ display: grid; gap: 1rem;
             grid-template-columns: repeat(auto-fill, minmax(18rem, 1fr)); }}
    figure {{ margin: 0; }}
    img, video {{ max-width: 100%; height: auto; border-radius: 6px; display: block; }}
    figcaption {{ font-size: .85rem; }}
    .shots {{ display: flex; gap: .5rem; align-items: flex-start; }}
    .shots a:first-child {{ flex: 1; min-width: 0; }}
    table {{ border-collapse: collapse; width: 100%; }}
    th, td {{ text-align: left; padding: .1rem .4rem .1rem 0; vertical-align: top; }}
    th {{ font-weight: normal; opacity: .7; white-space: nowrap; }}
    td code {{ word-break: break-all; }}
  </style>
</head>
<body>
  <h1>edgeshield demo</h1>
  <p>Everything on this page is served through the edgeshield cache from a local
    folder origin. The first request for a file is a miss that goes to the origin;
    repeats are hits served from the cache.</p>
  <p>Try it with <code>curl -I</code> and watch the <code>Cache-Status</code> and
    <code>Age</code> headers change between requests:</p>
  <pre>curl -sI http://127.0.0.1:8080/{hello}
curl -sI http://127.0.0.1:8080/images/landscape-1280.jpg</pre>
  <p>Proxy endpoints (this page sits at the site root, so relative links reach them):
    <a href="_admin">/_admin</a> (status: origins, hit ratios, top objects) &middot;
    <a href="metrics">/metrics</a> (Prometheus) &middot; <a href="healthz">/healthz</a>
    &middot; plain text: <a href="{hello}">{hello}</a></p>

  <h2>Video</h2>
  <figure>
    <video controls preload="metadata" width="{video_w}" height="{video_h}">
      <source src="{video}" type="video/mp4">
      <a href="{video}">{video}</a>
    </video>
    <figcaption><a href="{video}">{video}</a> &middot; {seconds} s, {video_w}&times;{video_h},
      {codecs} &middot; {video_size}</figcaption>
  </figure>

  {stream}

  <h2>Images</h2>
  <p>The originals are camera-sized files. The tiles are variants the proxy makes from
    them on the fly, in either URL syntax: imgix query parameters
    (<code>?w=480&amp;auto=format,compress</code>) and Cloudflare's path options
    (<code>/cdn-cgi/image/width=240,height=240,fit=cover,format=auto/&hellip;</code>).
    Each is resized with libvips, encoded as AVIF or WebP when the browser accepts them
    (<code>Vary: Accept</code>), and cached like any other object. The sizes and formats
    below are what the proxy answers a browser's image request with.</p>
  <div class="grid">
      {figures}
  </div>
  <script>{script}</script>
</body>
</html>
"""


# hls.js plays the master playlist through Media Source Extensions; where it is not
# vendored, or MSE is missing (iOS Safari), the browser's own HLS player does.
_STREAM = """<h2>Adaptive stream (HLS and DASH)</h2>
  <p>The same segments as HLS and as DASH: {sizes}, {seconds} s in {segment} s fMP4
    segments. The stream's route needs a signed URL: this page carries one for the
    stream's directory, and the proxy gives every URI in a signed playlist a token of its
    own (tokenized playlists), so the player never sees an unsigned URL. Played here with
    {player}.</p>
  <figure>
    <video id="stream" controls muted autoplay playsinline loop width="640" height="360">
    </video>
    <figcaption><a href="{master}">HLS master playlist</a> &middot;
      <a href="{mpd}">DASH manifest</a> &middot; <span id="stream-state">loading</span>
    </figcaption>
  </figure>
  {loader}
  <script>
    (() => {{
      const video = document.getElementById("stream");
      const state = document.getElementById("stream-state");
      const src = {master_js};
      if (window.Hls && Hls.isSupported()) {{
        const hls = new Hls();
        hls.on(Hls.Events.LEVEL_SWITCHED, (_, d) => {{
          const level = hls.levels[d.level];
          state.textContent = "playing " + level.width + "\u00d7" + level.height;
        }});
        hls.on(Hls.Events.ERROR, (_, d) => {{
          if (d.fatal) state.textContent = "error: " + d.details;
        }});
        hls.loadSource(src);
        hls.attachMedia(video);
      }} else if (video.canPlayType("application/vnd.apple.mpegurl")) {{
        video.src = src;
        state.textContent = "native HLS";
      }} else {{
        state.textContent = "this browser plays neither MSE nor HLS";
      }}
    }})();
  </script>"""
