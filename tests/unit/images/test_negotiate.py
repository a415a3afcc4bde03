"""Format negotiation over real browsers' Accept headers (image requests)."""

from __future__ import annotations

import pytest

from config.images import AvifSettings, ImageSettings
from transforms.image import (
    ImageOptions,
    SourceInfo,
    accept_class,
    avif_deferred,
    negotiate,
    parse_query,
    variant_key,
)

CHROME = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"
EDGE = CHROME
FIREFOX = "image/avif,image/webp,image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5"
FIREFOX_OLD = "image/webp,*/*"
SAFARI_17 = (
    "image/webp,image/avif,image/jxl,image/heic,image/heic-sequence,video/*;q=0.8,"
    "image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5"
)
SAFARI_16 = "image/webp,image/avif,video/*;q=0.8,image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5"
SAFARI_14 = "image/webp,image/png,image/svg+xml,image/*;q=0.8,video/*;q=0.8,*/*;q=0.5"
SAFARI_OLD = "image/png,image/svg+xml,image/*;q=0.8,video/*;q=0.8,*/*;q=0.5"
CURL = "*/*"
IMAGE_ANY = "image/*"
AVIF_REFUSED = "image/avif;q=0,image/webp,*/*;q=0.8"
BOTH_REFUSED = "image/avif;q=0, image/webp; q=0 ,*/*"

PHOTO = SourceInfo("jpeg", 2000, 1500, has_alpha=False)
LOGO = SourceInfo("png", 512, 512, has_alpha=True)
GIF = SourceInfo("gif", 200, 200, has_alpha=True, frames=12)
HUGE = SourceInfo("jpeg", 6000, 4000, has_alpha=False)
AUTO = ImageOptions(width=400, format="auto")


@pytest.mark.parametrize(
    ("browser", "accept", "photo", "logo", "animation"),
    [
        ("chrome", CHROME, "avif", "avif", "webp"),
        ("edge", EDGE, "avif", "avif", "webp"),
        ("firefox", FIREFOX, "avif", "avif", "webp"),
        ("firefox 65-92", FIREFOX_OLD, "webp", "webp", "webp"),
        ("safari 17", SAFARI_17, "avif", "avif", "webp"),
        ("safari 16", SAFARI_16, "avif", "avif", "webp"),
        ("safari 14", SAFARI_14, "webp", "webp", "webp"),
        ("safari 13 (no webp)", SAFARI_OLD, "jpeg", "png", "gif"),
        ("curl", CURL, "jpeg", "png", "gif"),
        ("image/* only", IMAGE_ANY, "jpeg", "png", "gif"),
        ("no accept", None, "jpeg", "png", "gif"),
        ("avif q=0", AVIF_REFUSED, "webp", "webp", "webp"),
        ("both q=0", BOTH_REFUSED, "jpeg", "png", "gif"),
    ],
)
def test_auto_format_table(
    browser: str, accept: str | None, photo: str, logo: str, animation: str
) -> None:
    assert negotiate(AUTO, accept, PHOTO) == photo, browser
    assert negotiate(AUTO, accept, LOGO) == logo, browser
    assert negotiate(AUTO, accept, GIF) == animation, browser


def test_avif_skipped_above_the_pixel_limit() -> None:
    settings = ImageSettings(avif=AvifSettings(max_pixels=1_000_000))
    assert negotiate(ImageOptions(width=800, format="auto"), CHROME, HUGE, settings) == "avif"
    assert negotiate(ImageOptions(format="auto"), CHROME, HUGE, settings) == "webp"
    assert negotiate(ImageOptions(format="avif"), CHROME, HUGE, settings) == "webp"
    disabled = ImageSettings(avif=AvifSettings(enabled=False))
    assert negotiate(AUTO, CHROME, PHOTO, disabled) == "webp"


def test_background_avif_mode_answers_webp_first() -> None:
    settings = ImageSettings(avif=AvifSettings(mode="background"))
    assert negotiate(AUTO, CHROME, PHOTO, settings) == "webp"
    assert avif_deferred(AUTO, CHROME, PHOTO, settings)
    assert not avif_deferred(AUTO, SAFARI_14, PHOTO, settings)
    assert not avif_deferred(AUTO, CHROME, PHOTO)


def test_explicit_and_kept_formats_ignore_accept() -> None:
    assert negotiate(ImageOptions(format="png"), CURL, PHOTO) == "png"
    assert negotiate(ImageOptions(width=10), CHROME, PHOTO) == "jpeg"
    assert negotiate(ImageOptions(width=10), CHROME, LOGO) == "png"
    assert negotiate(ImageOptions(width=10), CHROME, SourceInfo("tiff", 9, 9, False)) == "jpeg"
    # An opaque background removes the alpha: JPEG is fine then.
    opaque = ImageOptions(width=10, format="auto", background=(0, 0, 0, 255))
    assert negotiate(opaque, CURL, LOGO) == "jpeg"
    assert negotiate(ImageOptions(format="auto", anim=False), CURL, GIF) == "png"


def test_variant_key_uses_the_accept_class_not_the_header() -> None:
    keys = {variant_key(AUTO, accept) for accept in (CHROME, EDGE, FIREFOX, SAFARI_16, SAFARI_17)}
    assert len(keys) == 1
    assert accept_class(CHROME) == "avif+webp" and accept_class(SAFARI_14) == "webp"
    assert accept_class(CURL) == accept_class(IMAGE_ANY) == accept_class(None) == ""
    all_keys = {
        variant_key(AUTO, a) for a in (CHROME, FIREFOX_OLD, SAFARI_OLD, CURL, IMAGE_ANY, None)
    }
    assert len(all_keys) == 3  # avif+webp, webp, nothing
    explicit = parse_query("w=400&fm=webp")
    assert explicit is not None
    assert variant_key(explicit, CHROME) == variant_key(explicit, CURL) == explicit.cache_key()
