"""Hostile and oversized inputs: a status and a reason, never a crash, never an OOM."""

from __future__ import annotations

import struct
import threading
import time
import zlib
from collections.abc import Callable

import psutil
import pytest
import pyvips

from config.images import ImageLimits, ImageSettings
from tests.unit.images.conftest import animated_gif, jpeg, photo
from transforms.image import Fit, ImageLimitError, ImageOptions, transform


def png_bomb(width: int, height: int, rows: int = 16) -> bytes:
    """A tiny, valid-looking PNG that declares width x height (8-bit grey): decoding it
    would allocate width*height bytes; only a few rows of data are actually present."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    raw = zlib.compress(b"\x00" * ((width + 1) * rows), 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def rejects(source: bytes, options: ImageOptions, settings: ImageSettings) -> ImageLimitError:
    with pytest.raises(ImageLimitError) as info:
        transform(source, options, None, settings)
    return info.value


def test_decompression_bomb_is_rejected_from_the_header(settings: ImageSettings) -> None:
    bomb = png_bomb(50000, 50000)
    assert len(bomb) < 2000
    error = rejects(bomb, ImageOptions(width=100), settings)
    assert error.status == 413 and "50000x50000" in error.reason


def test_input_bytes_limit() -> None:
    settings = ImageSettings(limits=ImageLimits(max_input_bytes=10_000))
    big = jpeg(photo(400, 300))
    assert len(big) > 10_000
    error = rejects(big, ImageOptions(width=10), settings)
    assert error.status == 413 and "bytes" in error.reason


def test_pixel_limit_on_a_valid_image() -> None:
    settings = ImageSettings(limits=ImageLimits(max_input_pixels=100_000))
    error = rejects(jpeg(photo(400, 300)), ImageOptions(width=10), settings)
    assert error.status == 413


def test_animations_beyond_a_limit_become_their_first_frame() -> None:
    source = animated_gif(40, 30, frames=6)
    options = ImageOptions(width=20)
    assert transform(source, options, None, ImageSettings()).frames == 6
    for limits in (
        ImageLimits(max_frames=4),
        ImageLimits(max_input_pixels=5000),  # 6 x 1200 decoded pixels
        ImageLimits(max_animation_pixels=6 * (1200 + 300) - 1),  # the output's work too
    ):
        result = transform(source, options, None, ImageSettings(limits=limits))
        assert (result.frames, result.width, result.height, result.format) == (1, 20, 15, "gif")
    # A single frame above the pixel limit is still a bomb.
    assert rejects(source, options, ImageSettings(limits=ImageLimits(max_input_pixels=1000)))


def test_output_larger_than_the_limit(settings: ImageSettings) -> None:
    tall = jpeg(photo(20, 400))
    # Width 4000 on a 1:20 image would be 80000 pixels high.
    error = rejects(tall, ImageOptions(width=4000, fit=Fit.CONTAIN), settings)
    assert error.status == 400 and "4096" in error.reason


def test_oversized_sources_without_a_size_are_scaled_to_fit() -> None:
    settings = ImageSettings(limits=ImageLimits(max_output_width=200, max_output_height=200))
    result = transform(jpeg(photo(640, 480)), ImageOptions(format="webp"), None, settings)
    assert (result.width, result.height) == (200, 150)


@pytest.mark.parametrize(
    ("source", "status"),
    [
        (b"", 422),
        (b"hello, I am not an image at all", 422),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 100, 422),  # a JPEG signature, then garbage
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 50, 422),
        (b"BM" + b"\x00" * 100, 422),  # BMP: not an allowed format
    ],
)
def test_garbage_is_422(source: bytes, status: int, settings: ImageSettings) -> None:
    assert rejects(source, ImageOptions(width=10), settings).status == status


def test_truncated_jpeg_never_crashes(photo_jpeg: bytes, settings: ImageSettings) -> None:
    for cut in (20, 200, len(photo_jpeg) // 2):
        try:
            transform(photo_jpeg[:cut], ImageOptions(width=50), None, settings)
        except ImageLimitError as exc:
            assert exc.status == 422


SVG = (
    b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64">'
    b'<rect width="64" height="64" fill="red"/></svg>'
)


def test_svg_is_off_by_default(settings: ImageSettings) -> None:
    error = rejects(SVG, ImageOptions(width=10), settings)
    assert error.status == 422 and "svg" in error.reason
    # Even called directly, libvips refuses: untrusted loaders are blocked.
    with pytest.raises(pyvips.Error, match="blocked"):
        pyvips.Image.svgload_buffer(SVG)


def test_disallowed_input_format(photo_jpeg: bytes) -> None:
    settings = ImageSettings(allowed_input_formats=("png",))
    error = rejects(photo_jpeg, ImageOptions(width=10), settings)
    assert error.status == 422 and "jpeg" in error.reason


def peak_rss_during(fn: Callable[[], object]) -> int:
    """Run fn while sampling this process's RSS; return the peak increase in bytes."""
    process = psutil.Process()
    base = process.memory_info().rss
    peak = base
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, process.memory_info().rss)
            time.sleep(0.002)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        fn()
    finally:
        done.set()
        sampler.join()
    return peak - base


def test_rss_stays_bounded(settings: ImageSettings) -> None:
    mib = 1024 * 1024
    bomb = png_bomb(50000, 50000)

    def bomb_run() -> None:
        for _ in range(3):
            with pytest.raises(ImageLimitError):
                transform(bomb, ImageOptions(width=100), None, settings)

    # Decoding the bomb would need 2.5 GB; the header check costs nothing.
    assert peak_rss_during(bomb_run) < 20 * mib
    large = jpeg(photo(4000, 3000))  # 12 MP, ~36 MB decoded

    def large_run() -> None:
        result = transform(large, ImageOptions(width=400, format="webp"), None, settings)
        assert result.width == 400

    large_run()  # warm up the codecs' one-time allocations
    # Shrink-on-load and streaming keep it far below the decoded size.
    assert peak_rss_during(large_run) < 30 * mib
