"""Real test images, generated with pyvips at test time (no binary fixtures)."""

from __future__ import annotations

import pytest
import pyvips

from config.images import ImageSettings
from transforms.image.workers import configure_vips


def photo(width: int, height: int, seed: int = 1) -> pyvips.Image:
    """A photo-like sRGB image: colour gradients plus noise (so encoders have work)."""
    xyz = pyvips.Image.xyz(width, height)
    x = xyz[0] * (255 / max(width - 1, 1))
    y = xyz[1] * (255 / max(height - 1, 1))
    base = x.bandjoin([y, (x + y) / 2])
    noise = pyvips.Image.gaussnoise(width, height, sigma=18, seed=seed)
    return (base + noise).cast("uchar").copy(interpretation="srgb")


def with_alpha(image: pyvips.Image) -> pyvips.Image:
    """A radial alpha: opaque centre, transparent corners."""
    xyz = pyvips.Image.xyz(image.width, image.height)
    cx, cy = image.width / 2, image.height / 2
    dist = ((xyz[0] - cx) ** 2 + (xyz[1] - cy) ** 2) ** 0.5
    alpha = (255 - dist * (255 / max(cx, cy))).cast("uchar")
    return image.bandjoin(alpha).copy(interpretation="srgb")


def jpeg(image: pyvips.Image, **kwargs: object) -> bytes:
    return bytes(image.jpegsave_buffer(Q=85, **kwargs))


def png(image: pyvips.Image, **kwargs: object) -> bytes:
    return bytes(image.pngsave_buffer(compression=1, **kwargs))


def animated_gif(width: int, height: int, frames: int) -> bytes:
    strips = [photo(width, height, seed=i + 1) for i in range(frames)]
    image = pyvips.Image.arrayjoin(strips, across=1).copy()
    image.set_type(pyvips.GValue.gint_type, "page-height", height)
    image.set_type(pyvips.GValue.array_int_type, "delay", [80] * frames)
    image.set_type(pyvips.GValue.gint_type, "loop", 0)
    return bytes(image.gifsave_buffer())


def exif_rotated_jpeg(width: int, height: int, orientation: int = 6) -> bytes:
    """Pixels stored width x height, EXIF says to turn them (6: 90 degrees clockwise)."""
    image = photo(width, height).copy()
    # A red block in the stored top-left corner, to check where it ends up.
    image = image.draw_rect([255, 0, 0], 0, 0, width // 4, height // 4, fill=True)
    image.set_type(pyvips.GValue.gint_type, "orientation", orientation)
    return bytes(image.jpegsave_buffer(Q=90, keep=pyvips.enums.ForeignKeep.EXIF))


def png16(width: int, height: int) -> bytes:
    image = (photo(width, height).cast("ushort") * 257).copy(interpretation="rgb16")
    return bytes(image.pngsave_buffer(bitdepth=16, compression=1))


def cmyk_jpeg(width: int, height: int) -> bytes:
    """A CMYK JPEG with no embedded profile (libvips' fallback CMYK profile applies)."""
    cmyk = photo(width, height).icc_transform("cmyk", input_profile="srgb")
    cmyk = cmyk.copy()
    cmyk.remove("icc-profile-data")
    return bytes(cmyk.jpegsave_buffer(Q=90, keep=pyvips.enums.ForeignKeep.NONE))


def decode(data: bytes) -> pyvips.Image:
    """Any output, with every frame of an animation."""
    image = pyvips.Image.new_from_buffer(data, "")
    if str(image.get("vips-loader")) in ("gifload_buffer", "webpload_buffer"):
        image = pyvips.Image.new_from_buffer(data, "", n=-1)
    return image


def loader(data: bytes) -> str:
    return str(decode(data).get("vips-loader"))


@pytest.fixture(scope="session")
def settings() -> ImageSettings:
    s = ImageSettings(presets={"thumb": {"w": 100, "h": 100, "fit": "crop"}})
    configure_vips(s)
    return s


@pytest.fixture(scope="session")
def photo_jpeg() -> bytes:
    return jpeg(photo(640, 480))


@pytest.fixture(scope="session")
def alpha_png() -> bytes:
    return png(with_alpha(photo(320, 240)))


def flat_animation(width: int, height: int, frames: int, fmt: str = "gif") -> bytes:
    """A cheap animation like most real ones: a flat background and a moving square
    (small on the wire, like the 150 KB 190-frame GIF of issue 11)."""
    side = max(1, min(width, height) // 8)
    strips = []
    for i in range(frames):
        frame = pyvips.Image.black(width, height).new_from_image([200, 220, 240]).cast("uchar")
        x, y = (i * 7) % max(1, width - side), (i * 3) % max(1, height - side)
        strips.append(frame.draw_rect([255, 0, 0], x, y, side, side, fill=True))
    image = pyvips.Image.arrayjoin(strips, across=1).copy(interpretation="srgb")
    image.set_type(pyvips.GValue.gint_type, "page-height", height)
    image.set_type(pyvips.GValue.array_int_type, "delay", [40] * frames)
    image.set_type(pyvips.GValue.gint_type, "loop", 0)
    saver = image.gifsave_buffer if fmt == "gif" else image.webpsave_buffer
    return bytes(saver())
