import pytest

from proxy.http.vary import normalize_accept_encoding, parse_vary, variant_key


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ()),
        ("", ()),
        (" , ", ()),
        ("Accept-Encoding", ("accept-encoding",)),
        ("accept-encoding, Accept-Encoding", ("accept-encoding",)),
        ("Origin, Accept-Encoding", ("accept-encoding", "origin")),
        ("accept-language,accept,  origin ", ("accept", "accept-language", "origin")),
        ("*", None),
        ("Accept-Encoding, *", None),
        (" * ", None),
        ("x-a*b", ("x-a*b",)),  # "*" inside a token is just a character
    ],
)
def test_parse_vary(value: str | None, expected: tuple[str, ...] | None) -> None:
    assert parse_vary(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ""),
        ("", ""),
        ("identity", ""),
        ("deflate", ""),
        ("gzip", "gzip"),
        ("GZIP", "gzip"),
        ("x-gzip", "gzip"),  # RFC 9110 8.4.1.3
        ("gzip, deflate, br", "br,gzip"),
        ("gzip, deflate, br, zstd", "br,gzip,zstd"),
        ("zstd,br,gzip", "br,gzip,zstd"),  # fixed order
        ("br;q=1.0, gzip;q=0.8, *;q=0.1", "br,gzip,zstd"),
        ("*", "br,gzip,zstd"),
        ("*;q=0", ""),
        ("*, gzip;q=0", "br,zstd"),
        ("gzip;q=0", ""),
        ("gzip;q=0.000", ""),
        ("gzip;q=0.001", "gzip"),
        ("gzip;Q=0", ""),
        ("gzip ; q=0.5", "gzip"),
        ("gzip;level=1", "gzip"),
        ("gzip;level=1;q=0", ""),
        ("gzip;q=abc", ""),  # malformed qvalue: not acceptable
        ("gzip;q=", ""),
        ("zstd, gzip;q=0", "zstd"),
        ("br, br;q=0", "br"),  # first mention wins
        ("identity;q=0, gzip", "gzip"),
        (" , gzip ,, ", "gzip"),
    ],
)
def test_normalize_accept_encoding(value: str | None, expected: str) -> None:
    assert normalize_accept_encoding(value) == expected


@pytest.mark.parametrize(
    ("names", "headers", "expected"),
    [
        ((), {"accept-encoding": "gzip"}, ""),
        (("accept-encoding",), {"accept-encoding": "gzip, br"}, "accept-encoding=br,gzip"),
        (("accept-encoding",), {"accept-encoding": "br,gzip;q=0.5"}, "accept-encoding=br,gzip"),
        (("accept-encoding",), {}, "accept-encoding="),
        (("accept-encoding",), {"accept-encoding": ""}, "accept-encoding="),
        (("accept-encoding",), {"accept-encoding": "identity"}, "accept-encoding="),
        (("accept-language",), {}, "accept-language"),
        (("accept-language",), {"accept-language": ""}, "accept-language="),
        (("accept-language",), {"accept-language": "EN-US , fr"}, "accept-language=en-us,fr"),
        (("accept",), {"accept": "Image/WebP,\t*/*"}, "accept=image/webp,*/*"),
        (("origin",), {"origin": "https://A.example"}, "origin=https://A.example"),
        (("x-device",), {"x-device": "  Mobile "}, "x-device=Mobile"),
        (
            ("accept", "origin"),
            {"accept": "image/avif", "origin": "https://a.example"},
            "accept=image/avif\norigin=https://a.example",
        ),
        (("x-a", "x-b"), {"x-b": "1"}, "x-a\nx-b=1"),
        # Keys stay injective even for values no conforming parser would deliver.
        (("x-a",), {"x-a": "1\nx-b=2"}, "x-a=1\\nx-b=2"),
        (("x-a",), {"x-a": "1\\nx"}, "x-a=1\\\\nx"),
    ],
)
def test_variant_key(names: tuple[str, ...], headers: dict[str, str], expected: str) -> None:
    assert variant_key(names, headers) == expected


@pytest.mark.parametrize(
    ("names", "a", "b", "same"),
    [
        (
            ("accept-encoding",),
            {"accept-encoding": "gzip, br"},
            {"accept-encoding": "br,gzip"},
            True,
        ),
        (("accept-encoding",), {"accept-encoding": "gzip"}, {"accept-encoding": "br"}, False),
        (("accept-language",), {}, {"accept-language": ""}, False),
        (("x-a", "x-b"), {"x-a": "1"}, {"x-b": "1"}, False),
        (("x-a", "x-b"), {"x-a": "1\nx-b=2"}, {"x-a": "1", "x-b": "2"}, False),
        (("user-agent",), {"user-agent": "A"}, {"user-agent": "a"}, False),  # case-sensitive
    ],
)
def test_variant_key_equivalence(
    names: tuple[str, ...], a: dict[str, str], b: dict[str, str], same: bool
) -> None:
    assert (variant_key(names, a) == variant_key(names, b)) is same
