"""imgix `ar`, `fill`/`fill-color`, `cs` and the `bri`/`con`/`sat` adjustments (and the
Cloudflare `contrast`/`saturation` factors): parsed, canonical, and every output decoded
again and its pixels checked."""

from __future__ import annotations

import contextlib
import math
from urllib.parse import quote

import pytest
import pyvips
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.images import ImageLimits, ImageSettings
from tests.unit.images.conftest import cmyk_jpeg, decode, jpeg, photo
from transforms.image import (
    ImageOptionError,
    ImageOptions,
    KeepOriginal,
    parse_cloudflare_path,
    parse_query,
    transform,
)
from transforms.image.cloudflare import contrast_from_factor
from transforms.image.imgix import aspect_ratio
from transforms.image.options import MAX_ASPECT, MIN_ASPECT
from transforms.image.parsing import signed
from transforms.image.steps.adjust import contrast_factor

CHROME = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"


def q(query: str) -> ImageOptions:
    options = parse_query(query)
    assert options is not None
    return options


def out(source: bytes, query: str, accept: str | None = None) -> pyvips.Image:
    return decode(transform(source, q(query), accept, ImageSettings()).body)


def mid_grey_photo(width: int = 320, height: int = 240) -> pyvips.Image:
    """Mid-tones with colour and texture, so every adjustment can move both ways."""
    xyz = pyvips.Image.xyz(width, height)
    red = 60 + xyz[0] * (140 / width)
    green = 60 + xyz[1] * (140 / height)
    blue = (red + green) / 2
    noise = pyvips.Image.gaussnoise(width, height, sigma=12, mean=0, seed=3)
    return (red.bandjoin([green, blue]) + noise).cast("uchar").copy(interpretation="srgb")


@pytest.fixture(scope="module")
def grey_source() -> bytes:
    return jpeg(mid_grey_photo())


# ar -----------------------------------------------------------------------------------


def test_ar_with_one_side_is_that_box() -> None:
    assert q("w=280&ar=2:1&fit=crop") == q("w=280&h=140&fit=crop")
    assert q("h=90&ar=16:9&fit=crop").width == 160


def test_ar_needs_a_cropping_or_padding_fit_and_no_second_side() -> None:
    assert q("ar=16:9").aspect is None  # fit=clip: imgix ignores it too
    assert q("w=100&h=100&ar=16:9&fit=crop") == q("w=100&h=100&fit=crop")
    assert q("ar=32:18&fit=crop") == q("ar=16:9&fit=crop")


def test_ar_crop_reframes_the_source_at_its_own_size() -> None:
    source = jpeg(photo(640, 480))
    image = out(source, "ar=16:9&fit=crop")
    assert (image.width, image.height) == (640, 360)
    tall = out(source, "ar=1:2&fit=crop&crop=left")
    assert (tall.width, tall.height) == (240, 480)
    sized = out(source, "w=320&ar=16:9&fit=crop")
    assert (sized.width, sized.height) == (320, 180)


def test_ar_fill_pads_the_source_with_the_fill_colour() -> None:
    source = jpeg(photo(640, 480))
    image = out(source, "ar=16:9&fit=fill&fill=solid&fill-color=ff0000&fm=png")
    assert (image.width, image.height) == (853, 480)
    assert image(2, 240)[:3] == [255, 0, 0]  # the left border
    assert image(850, 240)[:3] == [255, 0, 0]  # the right one
    assert image(426, 240)[:3] != [255, 0, 0]  # the picture


def test_ar_above_the_largest_output_is_scaled_down() -> None:
    settings = ImageSettings(limits=ImageLimits(max_output_width=400, max_output_height=400))
    options = q("ar=4:1&fit=fill&fm=png")
    result = transform(jpeg(photo(640, 480)), options, None, settings)
    assert (result.width, result.height) == (400, 100)


# fill / fill-color ---------------------------------------------------------------------


def test_fill_color_paints_the_padding_and_bg_the_transparency() -> None:
    source = jpeg(photo(300, 100))
    image = out(source, "w=200&h=200&fit=fill&fill=solid&fill-color=00ff00&bg=0000ff&fm=jpg")
    assert (image.width, image.height) == (200, 200)
    green = image(100, 5)
    assert green[1] > 240 and green[0] < 15 and green[2] < 15
    assert q("w=9&h=9&fit=fill&fill-color=f00&bg=f00").fill is None  # the same: one key
    assert q("w=9&fill-color=f00").fill is None  # no padding, no fill


def test_fill_color_takes_imgix_argb() -> None:
    assert q("w=9&h=9&fit=fill&fill-color=80ff0000").fill == (255, 0, 0, 128)
    padded = out(jpeg(photo(300, 100)), "w=200&h=200&fit=fill&fill-color=0fff&fm=png")
    assert padded.hasalpha() and padded(100, 2)[3] == 0  # imgix's default: clear


# cs -----------------------------------------------------------------------------------


def p3_jpeg() -> tuple[pyvips.Image, bytes]:
    """Saturated reds and greens, where P3 numbers differ most from sRGB ones."""
    xyz = pyvips.Image.xyz(200, 100)
    red = 200 + xyz[0] * (50 / 200)
    green = 20 + xyz[1] * (200 / 100)
    srgb = red.bandjoin([green, red * 0 + 30]).cast("uchar").copy(interpretation="srgb")
    p3 = srgb.icc_transform("p3", input_profile="srgb")
    return srgb, bytes(p3.jpegsave_buffer(Q=95, keep=pyvips.enums.ForeignKeep.ICC))


def test_cs_srgb_converts_a_p3_source_and_tags_it() -> None:
    srgb, source = p3_jpeg()
    image = out(source, "cs=srgb&fm=png")
    profile = image.get("icc-profile-data")
    assert 0 < len(profile) < 1000  # libvips' compact sRGB profile
    # The pixels are sRGB again: near the image the P3 file was made from, and far
    # from the P3 numbers as stored.
    stored = decode(source).cast("float")
    assert (image.cast("float") - srgb.cast("float")).abs().avg() < 2
    assert (image.cast("float") - stored).abs().avg() > 3
    assert q("cs=tinysrgb") == q("cs=srgb")


def test_cs_origin_keeps_the_p3_pixels_and_profile() -> None:
    _, source = p3_jpeg()
    kept = out(source, "cs=origin&fm=png")
    stored = decode(source)
    assert bytes(kept.get("icc-profile-data")) == bytes(stored.get("icc-profile-data"))
    assert (kept.cast("float") - stored.cast("float")).abs().avg() < 1


def test_cs_strip_and_the_default_convert_and_drop_the_profile() -> None:
    srgb, source = p3_jpeg()
    for query in ("cs=strip&fm=png", "fm=png"):
        image = out(source, query)
        assert not image.get_typeof("icc-profile-data")
        assert (image.cast("float") - srgb.cast("float")).abs().avg() < 2


def test_cs_srgb_of_a_cmyk_source() -> None:
    image = out(cmyk_jpeg(120, 80), "cs=srgb")
    assert image.interpretation == "srgb" and image.bands == 3
    assert image.get_typeof("icc-profile-data")


# bri / con / sat ------------------------------------------------------------------------


def stats(image: pyvips.Image) -> tuple[float, float]:
    return image.avg(), image.deviate()


def chroma(image: pyvips.Image) -> float:
    return float(image.colourspace("lch")[1].avg())


@pytest.mark.parametrize("value", [25, 60])
def test_brightness_moves_the_mean(grey_source: bytes, value: int) -> None:
    mean, _ = stats(out(grey_source, "fm=png"))
    assert stats(out(grey_source, f"bri={value}&fm=png"))[0] > mean + value
    assert stats(out(grey_source, f"bri=-{value}&fm=png"))[0] < mean - value
    assert stats(out(grey_source, "bri=100&fm=png"))[0] == 255


def test_contrast_moves_the_spread_not_the_mean(grey_source: bytes) -> None:
    mean, spread = stats(out(grey_source, "fm=png"))
    more_mean, more = stats(out(grey_source, "con=40&fm=png"))
    less_mean, less = stats(out(grey_source, "con=-40&fm=png"))
    assert more > spread * 1.3 and less < spread * 0.8
    assert abs(more_mean - mean) < 8 and abs(less_mean - mean) < 8
    assert stats(out(grey_source, "con=-100&fm=png"))[1] < 1  # flat grey


def test_saturation_moves_the_chroma(grey_source: bytes) -> None:
    base = chroma(out(grey_source, "fm=png"))
    assert chroma(out(grey_source, "sat=60&fm=png")) > base * 1.3
    assert chroma(out(grey_source, "sat=-60&fm=png")) < base * 0.6
    grey = out(grey_source, "sat=-100&fm=png")
    assert (grey[0] - grey[1]).abs().max() <= 2 and (grey[1] - grey[2]).abs().max() <= 2


def test_adjustments_keep_alpha() -> None:
    source = bytes(mid_grey_photo(64, 64).bandjoin_const([128]).pngsave_buffer())
    image = out(source, "bri=30&con=20&sat=20")
    assert image.hasalpha() and image[3].avg() == 128


def test_cloudflare_contrast_and_saturation_are_factors() -> None:
    parsed = parse_cloudflare_path("/cdn-cgi/image/contrast=2,saturation=0/a.jpg")
    assert parsed is not None
    options = parsed[0]
    assert options.saturation == -100
    assert abs(contrast_factor(options.contrast) - 2) < 0.01
    assert contrast_from_factor(1.0) == 0


# hostile values --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "option"),
    [
        ("ar=16&fit=crop", "ar"),
        ("ar=0:1&fit=crop", "ar"),
        ("ar=1:0&fit=crop", "ar"),
        ("ar=nan:1&fit=crop", "ar"),
        ("ar=inf:1&fit=crop", "ar"),
        ("ar=1e9:1&fit=crop", "ar"),
        ("ar=1000:1&fit=crop", "ar"),
        ("ar=-16:9&fit=crop", "ar"),
        ("ar=16:9:1&fit=crop", "ar"),
        ("fill=blur", "fill"),
        ("fill=solid&fill-color=notacolour", "fill-color"),
        ("bri=101", "bri"),
        ("bri=-101", "bri"),
        ("bri=nan", "bri"),
        ("con=1e999", "con"),
        ("sat=--5", "sat"),
        ("sat=", "sat"),
        ("bri=٣", "bri"),
        ("cs=adobergb1998", "cs"),
        ("sharp=101", "sharp"),
    ],
)
def test_hostile_values_name_the_option(query: str, option: str) -> None:
    with pytest.raises(ImageOptionError) as info:
        parse_query(query)
    assert info.value.option == option


def test_cloudflare_hostile_factors() -> None:
    for spec in ("saturation=3", "saturation=-1", "contrast=nan", "contrast=11"):
        with pytest.raises(ImageOptionError):
            parse_cloudflare_path(f"/cdn-cgi/image/{spec}/a.jpg")


# a plain URL's conversion -------------------------------------------------------------------

PLAIN = ImageOptions(format="auto", original=True)


def test_plain_jpeg_becomes_avif_at_its_own_size() -> None:
    result = transform(jpeg(photo(320, 200)), PLAIN, CHROME, ImageSettings())
    assert (result.format, result.width, result.height) == ("avif", 320, 200)


@pytest.mark.parametrize(
    "source",
    [
        pytest.param(lambda: bytes(photo(40, 30).webpsave_buffer()), id="webp"),
        pytest.param(lambda: bytes(photo(40, 30).gifsave_buffer()), id="gif"),
        pytest.param(lambda: jpeg(photo(600, 100)), id="larger-than-the-largest-output"),
    ],
)
def test_plain_conversion_keeps_other_sources(source: object) -> None:
    settings = ImageSettings(limits=ImageLimits(max_output_width=500))
    with pytest.raises(KeepOriginal):
        transform(source(), PLAIN, CHROME, settings)  # type: ignore[operator]


def test_plain_conversion_keeps_an_animated_png() -> None:
    still = bytes(photo(40, 30).pngsave_buffer())
    # An acTL chunk (animation control) before the first IDAT makes it an APNG.
    chunk = b"\x00\x00\x00\x08acTL" + b"\x00\x00\x00\x02\x00\x00\x00\x00" + b"\x00" * 4
    ihdr_end = 8 + 8 + 13 + 4
    apng = still[:ihdr_end] + chunk + still[ihdr_end:]
    with pytest.raises(KeepOriginal):
        transform(apng, PLAIN, CHROME, ImageSettings())
    assert transform(still, PLAIN, CHROME, ImageSettings()).format == "avif"


# fuzzing the new parsers -------------------------------------------------------------------

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NUMBERISH = st.one_of(
    st.text(alphabet="0123456789.:-+eE naif٣", max_size=14),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.text(max_size=10),
)


@FUZZ
@given(NUMBERISH)
def test_ar_parser_gives_a_bounded_ratio_or_a_400(text: str) -> None:
    try:
        ratio = aspect_ratio("ar", text)
    except ImageOptionError:
        return
    assert math.isfinite(ratio) and MIN_ASPECT <= ratio <= MAX_ASPECT


@FUZZ
@given(NUMBERISH)
def test_adjustment_parser_gives_a_bounded_value_or_a_400(text: str) -> None:
    try:
        value = signed("bri", text, 100)
    except ImageOptionError:
        return
    assert math.isfinite(value) and -100 <= value <= 100


@FUZZ
@given(
    st.sampled_from(["ar", "bri", "con", "sat", "fill", "fill-color", "cs", "fit"]),
    NUMBERISH,
    st.sampled_from(["crop", "fill", "clip"]),
)
def test_new_imgix_options_only_raise_option_errors(name: str, value: str, fit: str) -> None:
    query = f"fit={fit}&{quote(name)}={quote(value)}" if name != "fit" else f"fit={quote(value)}"
    with contextlib.suppress(ImageOptionError):
        options = parse_query(query + "&ar=3:2")
        assert options is not None and options.cache_key().startswith("img1:")


@FUZZ
@given(st.sampled_from(["contrast", "saturation"]), NUMBERISH)
def test_cloudflare_factors_only_raise_option_errors(name: str, value: str) -> None:
    with contextlib.suppress(ImageOptionError):
        parsed = parse_cloudflare_path(f"/cdn-cgi/image/{name}={quote(value)}/a.jpg")
        assert parsed is not None
        options = parsed[0]
        assert -100 <= options.contrast <= 100 and -100 <= options.saturation <= 100
