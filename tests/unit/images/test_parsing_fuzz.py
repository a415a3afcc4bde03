"""Hypothesis: the parsers never raise anything but ImageOptionError, and the canonical
key does not depend on parameter order."""

from __future__ import annotations

import contextlib
import random
from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from transforms.image import ImageOptionError, parse_cloudflare_path, parse_query

IMGIX_NAMES = [
    "w", "h", "width", "height", "fit", "crop", "fp-x", "fp-y", "fm", "auto", "q", "dpr",
    "blur", "sharp", "bg", "rot", "flip", "rect", "lossless", "cs", "frame", "lqip",
    "preset", "bri", "con", "sat", "ar", "fill", "fill-color", "usm", "v", "f",
]  # fmt: skip
CF_NAMES = [
    "width", "height", "w", "h", "fit", "gravity", "g", "format", "f", "quality", "q",
    "dpr", "background", "blur", "sharpen", "metadata", "anim", "rotate", "flip", "lqip",
    "contrast", "saturation", "brightness", "trim",
]  # fmt: skip
VALUES = st.one_of(
    st.sampled_from(
        [
            "0",
            "1",
            "100",
            "400",
            "9999",
            "0.5",
            "-1",
            "crop",
            "clip",
            "cover",
            "auto",
            "format,compress",
            "webp",
            "json",
            "top,left",
            "focalpoint",
            "fff",
            "#fff",
            "rgb(1,2,3)",
            "0.3x0.7",
            "h",
            "hv",
            "10,10,50,50",
            "true",
            "",
            "nan",
            "inf",
            "1e3",
            "١٢",
            "%23ff0000",
        ]
    ),
    st.text(max_size=12),
)
FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(IMGIX_NAMES), VALUES), max_size=8))
def test_imgix_parser_only_raises_option_errors(pairs: list[tuple[str, str]]) -> None:
    query = "&".join(f"{quote(k)}={quote(v)}" for k, v in pairs)
    with contextlib.suppress(ImageOptionError):
        parse_query(query, {"p": {"w": 10}})


@FUZZ
@given(st.text(max_size=80))
def test_imgix_parser_on_arbitrary_text(query: str) -> None:
    with contextlib.suppress(ImageOptionError):
        parse_query(query)


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(CF_NAMES), VALUES), max_size=8), st.text(max_size=20))
def test_cloudflare_parser_only_raises_option_errors(
    pairs: list[tuple[str, str]], tail: str
) -> None:
    spec = ",".join(f"{k}={v}" for k, v in pairs)
    with contextlib.suppress(ImageOptionError):
        parse_cloudflare_path(f"/cdn-cgi/image/{spec}/{tail}")


@FUZZ
@given(st.text(max_size=80))
def test_cloudflare_parser_on_arbitrary_paths(path: str) -> None:
    with contextlib.suppress(ImageOptionError):
        parse_cloudflare_path("/cdn-cgi/image/" + path)


GOOD_IMGIX = {
    "w": st.integers(1, 4000).map(str),
    "h": st.integers(1, 4000).map(str),
    "fit": st.sampled_from(["clip", "crop", "fill", "max", "min", "scale"]),
    "crop": st.sampled_from(["top,left", "entropy", "focalpoint", "bottom"]),
    "fp-x": st.floats(0, 1).map(lambda x: f"{x:.3f}"),
    "fm": st.sampled_from(["jpg", "pjpg", "png", "webp", "avif", "gif"]),
    "auto": st.sampled_from(["format", "compress", "format,compress", "compress,format"]),
    "q": st.integers(0, 100).map(str),
    "dpr": st.sampled_from(["1", "1.5", "2", "3"]),
    "blur": st.integers(0, 2000).map(str),
    "bg": st.sampled_from(["fff", "80ff0000", "red", "00ff00"]),
    "rot": st.integers(0, 359).map(str),
    "flip": st.sampled_from(["h", "v", "hv"]),
}


@FUZZ
@given(st.fixed_dictionaries({}, optional=GOOD_IMGIX), st.randoms(use_true_random=False))
def test_imgix_key_is_stable_under_reordering(params: dict[str, str], rnd: random.Random) -> None:
    items = [*params.items(), ("utm", "x")]
    first = parse_query("&".join(f"{k}={v}" for k, v in items))
    rnd.shuffle(items)
    second = parse_query("&".join(f"{k}={v}" for k, v in items))
    if first is None:
        assert second is None
        return
    assert second is not None
    assert first == second and first.cache_key() == second.cache_key()
    assert hash(first) == hash(second)


GOOD_CF = {
    "width": st.integers(1, 4000).map(str),
    "height": st.integers(1, 4000).map(str),
    "fit": st.sampled_from(["scale-down", "contain", "cover", "crop", "pad"]),
    "gravity": st.sampled_from(["auto", "left", "0.2x0.8", "center"]),
    "format": st.sampled_from(["auto", "avif", "webp", "jpeg", "json"]),
    "quality": st.integers(1, 100).map(str),
    "dpr": st.sampled_from(["1", "2"]),
    "background": st.sampled_from(["%23fff", "red", "rgb(1,2,3)"]),
    "sharpen": st.sampled_from(["0", "1", "2.5"]),
}


@FUZZ
@given(st.fixed_dictionaries({}, optional=GOOD_CF), st.randoms(use_true_random=False))
def test_cloudflare_key_is_stable_under_reordering(
    params: dict[str, str], rnd: random.Random
) -> None:
    items = list(params.items()) or [("width", "10")]
    first = parse_cloudflare_path("/cdn-cgi/image/" + ",".join(f"{k}={v}" for k, v in items) + "/a")
    rnd.shuffle(items)
    second = parse_cloudflare_path(
        "/cdn-cgi/image/" + ",".join(f"{k}={v}" for k, v in items) + "/a"
    )
    assert first is not None and second is not None
    assert first == second and first[0].cache_key() == second[0].cache_key()
