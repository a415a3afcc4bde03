"""Every output decoded again: size, format, orientation, alpha, frames."""

from __future__ import annotations

import json

import pytest
import pyvips

from config.images import ImageSettings
from tests.unit.images.conftest import (
    animated_gif,
    cmyk_jpeg,
    decode,
    exif_rotated_jpeg,
    jpeg,
    loader,
    photo,
    png16,
)
from transforms.image import (
    ImageOptions,
    TransformResult,
    encode_avif_later,
    parse_cloudflare_path,
    parse_query,
    transform,
)

CHROME = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"
LOADERS = {
    "jpeg": "jpegload_buffer",
    "png": "pngload_buffer",
    "webp": "webpload_buffer",
    "avif": "heifload_buffer",
    "gif": "gifload_buffer",
}


def run(
    source: bytes, query: str, settings: ImageSettings, accept: str | None = None
) -> TransformResult:
    options = parse_query(query, settings=settings)
    assert options is not None
    return transform(source, options, accept, settings)


def check(result: TransformResult, fmt: str, width: int, height: int) -> pyvips.Image:
    assert result.format == fmt
    assert result.content_type == f"image/{fmt}"
    image = decode(result.body)
    assert loader(result.body) == LOADERS[fmt]
    frames = int(image.get("n-pages")) if image.get_typeof("n-pages") else 1
    assert (
        (image.width, image.height // frames)
        == (width, height)
        == (
            result.width,
            result.height,
        )
    )
    return image


@pytest.mark.parametrize(
    ("query", "fmt", "size"),
    [
        ("w=320", "jpeg", (320, 240)),
        ("h=120&fm=png", "png", (160, 120)),
        ("w=200&h=200&fit=clip&fm=webp", "webp", (200, 150)),
        ("w=200&h=200&fit=crop&fm=avif", "avif", (200, 200)),
        ("w=200&h=100&fit=crop&crop=entropy", "jpeg", (200, 100)),
        ("w=200&h=100&fit=crop&crop=edges", "jpeg", (200, 100)),
        ("w=200&h=200&fit=fill&bg=000", "jpeg", (200, 200)),
        ("w=200&h=200&fit=scale", "jpeg", (200, 200)),
        ("w=1000&fit=max", "jpeg", (640, 480)),  # never upscales
        ("w=1000&fit=clip", "jpeg", (1000, 750)),  # clip does
        ("w=300&h=100&fit=min", "jpeg", (300, 100)),
        ("w=100&dpr=2", "jpeg", (200, 150)),
        ("w=200&rot=90", "jpeg", (200, 267)),
        ("rect=0,0,320,240&w=100", "jpeg", (100, 75)),
        ("w=120&blur=300&sharp=30", "jpeg", (120, 90)),
        ("w=100&rot=30&fm=png", "png", (124, 115)),
    ],
)
def test_sizes_and_formats(
    photo_jpeg: bytes, settings: ImageSettings, query: str, fmt: str, size: tuple[int, int]
) -> None:
    result = run(photo_jpeg, query, settings)
    image = check(result, fmt, *size)
    if "rot=30" in query:
        assert image.hasalpha()  # transparent corners


def test_cloudflare_fits(photo_jpeg: bytes, settings: ImageSettings) -> None:
    for spec, size in (
        ("w=1000,h=1000", (640, 480)),  # scale-down
        ("w=1000,h=1000,fit=contain", (1000, 750)),
        ("w=1000,h=1000,fit=cover", (1000, 1000)),
        ("w=1000,h=300,fit=crop", (640, 300)),  # crop never upscales
        ("w=300,h=300,fit=crop,gravity=auto", (300, 300)),
        ("w=300,h=300,fit=pad,background=red", (300, 300)),
    ):
        parsed = parse_cloudflare_path(f"/cdn-cgi/image/{spec}/p.jpg", settings=settings)
        assert parsed is not None
        check(transform(photo_jpeg, parsed[0], None, settings), "jpeg", *size)


def test_both_syntaxes_produce_identical_bytes(photo_jpeg: bytes, settings: ImageSettings) -> None:
    a = run(photo_jpeg, "w=400&fm=webp&q=80", settings)
    parsed = parse_cloudflare_path(
        "/cdn-cgi/image/width=400,format=webp,quality=80/p.jpg", settings=settings
    )
    assert parsed is not None
    b = transform(photo_jpeg, parsed[0], None, settings)
    assert a.body == b.body and len(a.body) > 1000
    c = run(photo_jpeg, "w=200&h=200&fit=crop&crop=focalpoint&fp-x=0&fp-y=1&fm=pjpg", settings)
    parsed = parse_cloudflare_path(
        "/cdn-cgi/image/w=200,h=200,fit=cover,gravity=0x1,format=jpeg/p.jpg", settings=settings
    )
    assert parsed is not None
    assert transform(photo_jpeg, parsed[0], None, settings).body == c.body


def test_auto_format_follows_accept(
    photo_jpeg: bytes, alpha_png: bytes, settings: ImageSettings
) -> None:
    check(run(photo_jpeg, "w=100&auto=format", settings, CHROME), "avif", 100, 75)
    check(run(photo_jpeg, "w=100&auto=format", settings, "image/webp,*/*"), "webp", 100, 75)
    check(run(photo_jpeg, "w=100&auto=format", settings, "*/*"), "jpeg", 100, 75)
    png_out = check(run(alpha_png, "w=100&auto=format", settings, "*/*"), "png", 100, 75)
    assert png_out.hasalpha()
    webp_out = check(run(alpha_png, "w=100&auto=format", settings, "image/webp"), "webp", 100, 75)
    assert webp_out.hasalpha()


def test_alpha_is_flattened_for_jpeg(alpha_png: bytes, settings: ImageSettings) -> None:
    image = check(run(alpha_png, "w=100&fm=jpg&bg=0f0", settings), "jpeg", 100, 75)
    assert not image.hasalpha()
    corner = image.getpoint(0, 0)
    assert corner[1] > 200 and corner[0] < 60  # the transparent corner became green


def test_exif_orientation_is_applied_and_removed(settings: ImageSettings) -> None:
    source = exif_rotated_jpeg(300, 200)
    assert decode(source).get("orientation") == 6
    image = check(run(source, "w=100", settings), "jpeg", 100, 150)
    orientation = image.get("orientation") if image.get_typeof("orientation") else 1
    assert orientation == 1
    # Orientation 6 turns clockwise: the stored top-left red block is now top-right.
    top_right = image.getpoint(image.width - 5, 5)
    assert top_right[0] > 180 and top_right[1] < 90


def test_sixteen_bit_png_becomes_8_bit(settings: ImageSettings) -> None:
    source = png16(200, 100)
    assert decode(source).format == "ushort"
    image = check(run(source, "w=100&fm=png", settings), "png", 100, 50)
    assert image.format == "uchar" and image.bands == 3
    reference = photo(200, 100).resize(0.5)
    assert abs(image.avg() - reference.avg()) < 3


def test_cmyk_jpeg_becomes_srgb(settings: ImageSettings) -> None:
    source = cmyk_jpeg(200, 100)
    assert decode(source).interpretation == "cmyk"
    image = check(run(source, "w=100", settings), "jpeg", 100, 50)
    assert image.interpretation == "srgb" and image.bands == 3
    assert abs(image.avg() - photo(200, 100).avg()) < 25


def test_animated_gif_stays_animated(settings: ImageSettings) -> None:
    source = animated_gif(120, 80, frames=5)
    gif = check(run(source, "w=60", settings), "gif", 60, 40)
    assert gif.get("n-pages") == 5
    assert list(gif.get("delay")) == [80] * 5
    webp = check(run(source, "w=60&h=60&fit=crop&auto=format", settings, CHROME), "webp", 60, 60)
    assert webp.get("n-pages") == 5
    still = check(run(source, "w=60&frame=1&fm=png", settings), "png", 60, 40)
    assert not still.get_typeof("n-pages") or still.get("n-pages") == 1
    as_jpeg = check(run(source, "w=60&fm=jpg", settings), "jpeg", 60, 40)
    assert not as_jpeg.get_typeof("n-pages") or as_jpeg.get("n-pages") == 1


def test_json_describes_the_source(settings: ImageSettings, alpha_png: bytes) -> None:
    result = run(exif_rotated_jpeg(300, 200), "fm=json&w=10", settings)
    assert result.content_type == "application/json"
    info = json.loads(result.body)
    assert info["width"] == 300 and info["height"] == 200 and info["orientation"] == 6
    assert info["format"] == "jpeg" and info["has_alpha"] is False and info["frames"] == 1
    assert info["oriented"] == {"width": 200, "height": 300}
    assert json.loads(run(alpha_png, "fm=json", settings).body)["has_alpha"] is True
    gif = json.loads(run(animated_gif(40, 30, 3), "fm=json", settings).body)
    assert gif["frames"] == 3


def test_lqip_is_tiny(photo_jpeg: bytes, settings: ImageSettings) -> None:
    result = run(photo_jpeg, "lqip=1&auto=format", settings, "image/webp")
    check(result, "webp", settings.lqip.width, 24)
    assert len(result.body) < 1000


def test_metadata_is_stripped_by_default(settings: ImageSettings) -> None:
    source = photo(200, 100).copy()
    source.set_type(pyvips.GValue.gstr_type, "exif-ifd0-Copyright", "ACME")
    source.set_type(pyvips.GValue.gstr_type, "exif-ifd0-Artist", "Someone")
    data = bytes(source.icc_transform("p3", input_profile="srgb").jpegsave_buffer(Q=90))
    assert decode(data).get_typeof("icc-profile-data") and decode(data).get_typeof("exif-data")
    stripped = decode(run(data, "w=50", settings).body)
    assert not stripped.get_typeof("exif-data") and not stripped.get_typeof("icc-profile-data")
    kept_icc = decode(run(data, "w=50&cs=origin", settings).body)
    assert kept_icc.get_typeof("icc-profile-data") and not kept_icc.get_typeof("exif-data")
    parsed = parse_cloudflare_path("/cdn-cgi/image/w=50,metadata=copyright/a.jpg")
    assert parsed is not None
    copyright_only = decode(transform(data, parsed[0], None, settings).body)
    assert "ACME" in str(copyright_only.get("exif-ifd0-Copyright"))
    assert not copyright_only.get_typeof("exif-ifd0-Artist")


def test_progressive_and_lossless(photo_jpeg: bytes, settings: ImageSettings) -> None:
    assert decode(run(photo_jpeg, "w=100&fm=pjpg", settings).body).get("interlaced") == 1
    baseline = decode(run(photo_jpeg, "w=100&fm=jpg", settings).body)
    assert not baseline.get_typeof("interlaced") or baseline.get("interlaced") == 0
    small = jpeg(photo(64, 48))
    lossless = run(small, "fm=webp&lossless=1", settings)
    lossy = run(small, "fm=webp&q=50", settings)
    assert len(lossless.body) > len(lossy.body)


def test_encode_avif_later(photo_jpeg: bytes, settings: ImageSettings) -> None:
    options = ImageOptions(width=100, format="auto")
    check(encode_avif_later(photo_jpeg, options, settings), "avif", 100, 75)


@pytest.mark.parametrize(
    ("saver", "kept"),
    [
        ("jpegsave_buffer", "jpeg"),
        ("pngsave_buffer", "png"),
        ("webpsave_buffer", "webp"),
        ("heifsave_buffer", "avif"),
        ("gifsave_buffer", "gif"),
        ("tiffsave_buffer", "jpeg"),  # TIFF is an input format only
    ],
)
def test_every_allowed_input_format(settings: ImageSettings, saver: str, kept: str) -> None:
    image = photo(160, 120)
    kwargs = {"compression": "av1"} if saver == "heifsave_buffer" else {}
    source = bytes(getattr(image, saver)(**kwargs))
    check(run(source, "w=80", settings), kept, 80, 60)
    check(run(source, "w=40&fm=webp", settings), "webp", 40, 30)
