"""Both URL syntaxes -> one canonical ImageOptions; errors name the option."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from config.images import ImageSettings
from config.loader import ConfigError, check_config, load_settings
from transforms.image import (
    Fit,
    Gravity,
    ImageOptionError,
    ImageOptions,
    parse_cloudflare_path,
    parse_query,
)
from transforms.image.imgix import preset_errors


def cf(path: str, **kwargs: object) -> ImageOptions:
    parsed = parse_cloudflare_path(path, **kwargs)  # type: ignore[arg-type]
    assert parsed is not None
    return parsed[0]


def q(query: str, **kwargs: object) -> ImageOptions:
    parsed = parse_query(query, **kwargs)  # type: ignore[arg-type]
    assert parsed is not None
    return parsed


def test_non_image_queries_are_untouched() -> None:
    assert parse_query("") is None
    assert parse_query("v=3&utm_source=x&sig=abc") is None
    assert parse_cloudflare_path("/images/a.jpg") is None
    assert parse_cloudflare_path("/cdn-cgi/other/x") is None


def test_imgix_fields() -> None:
    options = q(
        "w=400&h=300&fit=crop&crop=focalpoint&fp-x=.25&fp-y=0.75&fm=pjpg&q=70&dpr=2"
        "&blur=40&sharp=20&bg=80ff0000&rot=90&flip=h&rect=10,20,300,200&cs=srgb&v=9"
    )
    assert options.width == 400 and options.height == 300 and options.dpr == 2
    assert options.device_width == 800
    assert options.fit is Fit.COVER
    assert options.gravity == Gravity("point", 0.25, 0.75)
    assert options.format == "jpeg" and options.progressive is True and options.quality == 70
    assert options.blur == 4.0 and options.sharpen == 2.0
    assert options.background == (255, 0, 0, 128)  # imgix hex puts alpha first
    assert options.rotate == 90 and options.flip == "h" and options.rect == (10, 20, 300, 200)
    assert options.metadata == "icc"


@pytest.mark.parametrize(
    ("crop", "gravity"),
    [
        ("top,left", Gravity("point", 0, 0)),
        ("bottom,right", Gravity("point", 1, 1)),
        ("top", Gravity("point", 0.5, 0)),
        ("entropy", Gravity("entropy")),
        ("edges", Gravity("attention")),
        ("faces,top", Gravity("attention")),
    ],
)
def test_imgix_crop_modes(crop: str, gravity: Gravity) -> None:
    assert q(f"w=10&h=10&fit=crop&crop={crop}").gravity == gravity


def test_imgix_auto() -> None:
    assert q("auto=format,compress").format == "auto"
    assert q("auto=format,compress").compress is True
    assert q("auto=format&fm=png").format == "png"  # fm wins over auto=format
    assert q("auto=compress&q=60").compress is False  # an explicit q wins


def test_cloudflare_fields() -> None:
    options, source = parse_cloudflare_path(  # type: ignore[misc]
        "/cdn-cgi/image/w=400,h=300,fit=cover,g=0.5x0.2,f=auto,q=low,dpr=1.5,"
        "background=rgba(255,0,0,0.5),blur=20,sharpen=1.5,metadata=copyright,anim=false,"
        "rotate=270,flip=v/images/a b/photo.jpg"
    )
    assert source == "/images/a b/photo.jpg"
    assert (options.width, options.height, options.dpr) == (400, 300, 1.5)
    assert options.fit is Fit.COVER and options.gravity == Gravity("point", 0.5, 0.2)
    assert options.format == "auto" and options.quality == 50
    assert options.background == (255, 0, 0, 128)
    assert options.blur == 10.0 and options.sharpen == 1.5
    assert options.metadata == "copyright" and options.anim is False
    assert options.rotate == 270 and options.flip == "v"


def test_cloudflare_encoded_background_and_gravity_words() -> None:
    assert cf("/cdn-cgi/image/background=%23ff000080,w=10/x.png").background == (255, 0, 0, 128)
    assert cf("/cdn-cgi/image/w=9,h=9,fit=crop,gravity=auto/x.png").gravity.mode == "attention"
    assert cf("/cdn-cgi/image/w=9,h=9,fit=crop,gravity=left/x.png").gravity == Gravity(
        "point", 0, 0.5
    )


def test_equivalent_requests_share_one_key() -> None:
    a = q("w=400&fm=webp&q=80")
    assert q("q=80&fm=webp&width=400") == a
    assert q("q=80&fm=webp&w=400&fit=clip&dpr=1&v=2").cache_key() == a.cache_key()
    # fp-x without crop=focalpoint, or crop without fit=crop, cannot change the output.
    assert q("w=400&fm=webp&q=80&fp-x=0.1&crop=top").cache_key() == a.cache_key()
    b = cf("/cdn-cgi/image/width=400,format=webp,quality=80/p.jpg")
    assert cf("/cdn-cgi/image/q=80,f=webp,w=400,fit=scale-down,dpr=1/p.jpg") == b
    # Cloudflare's default fit (scale-down) never upscales, imgix's (clip) does: the keys
    # say so; imgix fit=max is the same thing.
    assert q("w=400&fm=webp&q=80&fit=max").cache_key() == b.cache_key()
    assert a.cache_key() != b.cache_key()


def test_keys_differ_when_output_differs() -> None:
    keys = {
        q(query).cache_key()
        for query in ("w=400", "w=401", "w=400&h=300", "w=400&dpr=2", "w=400&fm=png", "w=400&q=10")
    }
    assert len(keys) == 6


@pytest.mark.parametrize(
    ("query", "option"),
    [
        ("w=abc", "w"),
        ("width=0", "width"),
        ("w=99999", "w"),
        ("fit=banana", "fit"),
        ("crop=middle", "crop"),
        ("fp-x=2&crop=focalpoint", "fp-x"),
        ("fm=bmp", "fm"),
        ("auto=enhance", "auto"),
        ("q=101", "q"),
        ("dpr=0", "dpr"),
        ("dpr=6", "dpr"),
        ("blur=-1", "blur"),
        ("sharp=101", "sharp"),
        ("bg=zzz", "bg"),
        ("rot=360", "rot"),
        ("flip=x", "flip"),
        ("rect=1,2,3", "rect"),
        ("usm=10", "usm"),
        ("fp-z=2", "fp-z"),
        ("w=1&w=2", "w"),
        ("w=1&width=2", "width"),
        ("preset=nope", "preset"),
        ("lossless=maybe", "lossless"),
    ],
)
def test_imgix_errors_name_the_option(query: str, option: str) -> None:
    with pytest.raises(ImageOptionError) as info:
        parse_query(query)
    assert info.value.option == option
    assert info.value.status == 400
    assert option in str(info.value) and info.value.allowed


def test_error_lists_allowed_values() -> None:
    with pytest.raises(ImageOptionError) as info:
        parse_query("fit=banana")
    for value in ("clip", "crop", "fill", "max", "min", "scale"):
        assert value in info.value.allowed
    assert "'banana'" in str(info.value)


@pytest.mark.parametrize(
    ("path", "option"),
    [
        ("/cdn-cgi/image/width=abc/a.jpg", "width"),
        ("/cdn-cgi/image/w=0/a.jpg", "w"),
        ("/cdn-cgi/image/fit=clip/a.jpg", "fit"),
        ("/cdn-cgi/image/format=bmp/a.jpg", "format"),
        ("/cdn-cgi/image/quality=best/a.jpg", "quality"),
        ("/cdn-cgi/image/gravity=2x2/a.jpg", "gravity"),
        ("/cdn-cgi/image/background=notacolor/a.jpg", "background"),
        ("/cdn-cgi/image/rotate=45/a.jpg", "rotate"),
        ("/cdn-cgi/image/metadata=all/a.jpg", "metadata"),
        ("/cdn-cgi/image/anim=sometimes/a.jpg", "anim"),
        ("/cdn-cgi/image/brightness=2/a.jpg", "brightness"),
        ("/cdn-cgi/image/width/a.jpg", "width"),
        ("/cdn-cgi/image/w=1,width=2/a.jpg", "width"),
        ("/cdn-cgi/image/width=10", "path"),
        ("/cdn-cgi/image/width=10/https://evil.example/x.jpg", "source"),
        ("/cdn-cgi/image/,/a.jpg", "options"),
    ],
)
def test_cloudflare_errors_name_the_option(path: str, option: str) -> None:
    with pytest.raises(ImageOptionError) as info:
        parse_cloudflare_path(path)
    assert info.value.option == option


def test_presets_expand_and_yield_to_the_url(settings: ImageSettings) -> None:
    thumb = q("preset=thumb", settings=settings)
    assert (thumb.width, thumb.height, thumb.fit) == (100, 100, Fit.COVER)
    assert q("preset=thumb&w=120", settings=settings).width == 120
    assert thumb == q("w=100&h=100&fit=crop", settings=settings)
    via_cf = cf("/cdn-cgi/image/preset=thumb,format=webp/a.jpg", settings=settings)
    assert via_cf == thumb.with_changes(format="webp")
    with pytest.raises(ImageOptionError) as info:
        parse_query("preset=huge", settings=settings)
    assert "thumb" in info.value.allowed


def test_allowed_widths_bound_the_size_space() -> None:
    settings = ImageSettings(allowed_widths=(320, 640), allowed_dprs=(1.0, 2.0))
    assert q("w=320&dpr=2", settings=settings).device_width == 640
    for query, option in (("w=321", "w"), ("width=100", "width"), ("w=320&dpr=3", "dpr")):
        with pytest.raises(ImageOptionError) as info:
            parse_query(query, settings=settings)
        assert info.value.option == option
        assert "320" in info.value.allowed or "2" in info.value.allowed
    with pytest.raises(ImageOptionError) as cf_info:
        parse_cloudflare_path("/cdn-cgi/image/w=500/a.jpg", settings=settings)
    assert cf_info.value.option == "w"


def test_output_limit_is_a_400_on_the_option() -> None:
    settings = ImageSettings()
    with pytest.raises(ImageOptionError) as info:
        parse_query("w=3000&dpr=2", settings=settings)
    assert info.value.option == "w" and "4096" in info.value.allowed


def test_invalid_presets_fail_the_configuration(tmp_path: Path) -> None:
    # Config keeps presets as plain data; transforms parses them (a settings check).
    path = tmp_path / "edgeshield.toml"
    path.write_text(
        '[origins.media]\nkind = "http"\nurl = "http://127.0.0.1:9000"\n'
        '[[routes]]\norigin = "media"\n'
        '[images.presets.bad]\nw = 10\nfit = "sideways"\n'
        "[images.presets.typo]\nwdth = 10\n"
        "[images.presets.good]\nw = 10\n"
    )
    load_settings(path, {})  # plain data: valid without the check
    with pytest.raises(ConfigError) as info:
        load_settings(path, {}, checks=(preset_errors,))
    paths = [p for p, _ in info.value.errors]
    assert paths == ["images.presets.bad.fit", "images.presets.typo.wdth"]
    assert "invalid value 'sideways'" in info.value.errors[0][1]
    code, text = check_config(path, {}, checks=(preset_errors,))
    assert code == 1 and "images.presets.bad.fit: invalid value 'sideways'" in text
    with pytest.raises(ValidationError):  # names stay config's to check
        ImageSettings(presets={"has space": {"w": 10}})


def test_json_and_lqip_normalise() -> None:
    assert q("fm=json&w=100&q=3") == q("fm=json")
    assert q("lqip=1&w=800&q=90") == q("lqip=1")
    assert q("lqip=1").cache_key() != q("w=32").cache_key()
