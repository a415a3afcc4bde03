"""Route matching (hosts exact and wildcard, prefixes, globs; first match wins) and the
upstream path rewrite."""

from __future__ import annotations

import pytest

from config.schema import CachePolicy
from proxy.http.freshness import FreshnessPolicy
from routing.rules import Route, RouteTable, host_matches, rewrite


class _Origin:
    def __init__(self, name: str) -> None:
        self.name = name


def _route(
    name: str,
    host: str = "*",
    prefix: str = "/",
    glob: str | None = None,
    strip: str | None = None,
    add: str | None = None,
) -> Route:
    return Route(
        name=name,
        host=host,
        path_prefix=prefix,
        origin=_Origin(name),  # type: ignore[arg-type]
        read_only=False,
        policy=CachePolicy(),
        freshness=FreshnessPolicy(),
        group=None,  # type: ignore[arg-type]  # matching never reads it
        path_glob=glob,
        strip_prefix=strip,
        add_prefix=add,
    )


TABLE = RouteTable(
    [
        _route("exact-img", "img.example.com", "/"),
        _route("wild-video", "*.video.example.com", "/"),
        _route("playlists", "*", glob="/live/*.m3u8"),
        _route("segments", "*", glob="/live/*/seg-[0-9]*.ts"),
        _route("api", "example.com", "/api"),
        _route("wild-any-path", "*.example.com", "/static/"),
        _route("videos", "*", "/videos"),
        _route("fallback", "*", "/"),
    ]
)


@pytest.mark.parametrize(
    ("host", "path", "expected"),
    [
        # exact host, before anything else
        ("img.example.com", "/live/a.m3u8", "exact-img"),
        # wildcard host: subdomains at any depth, never the bare domain
        ("a.video.example.com", "/x", "wild-video"),
        ("a.b.video.example.com", "/x", "wild-video"),
        ("video.example.com", "/x", "fallback"),
        ("xvideo.example.com", "/static/a.css", "wild-any-path"),  # *.example.com
        # globs: "*" crosses "/", the whole path must match
        ("other.com", "/live/a.m3u8", "playlists"),
        ("other.com", "/live/ch1/hi.m3u8", "playlists"),
        ("other.com", "/live/a.m3u8x", "fallback"),
        ("other.com", "/live/ch1/seg-12.ts", "segments"),
        ("other.com", "/live/ch1/seg-x.ts", "fallback"),
        ("other.com", "/LIVE/a.m3u8", "fallback"),  # case-sensitive
        # exact host + prefix on whole segments
        ("example.com", "/api", "api"),
        ("example.com", "/api/v1", "api"),
        ("example.com", "/apix", "fallback"),
        ("www.example.com", "/api/v1", "fallback"),
        ("www.example.com", "/static/a.css", "wild-any-path"),
        ("example.com", "/static/a.css", "fallback"),  # bare domain is not *.example.com
        ("other.com", "/videos/a.mp4", "videos"),
        ("other.com", "/videosx", "fallback"),
        ("", "/", "fallback"),
    ],
)
def test_first_matching_rule_wins(host: str, path: str, expected: str) -> None:
    route = TABLE.match(host, path)
    assert route is not None and route.name == expected


def test_nothing_matches() -> None:
    table = RouteTable([_route("a", "*.a.com", "/x"), _route("b", "*", glob="/y/*")])
    assert table.match("a.com", "/x") is None
    assert table.match("b.com", "/y") is None


@pytest.mark.parametrize(
    ("pattern", "host", "ok"),
    [
        ("*", "anything", True),
        ("a.com", "a.com", True),
        ("a.com", "b.a.com", False),
        ("*.a.com", "b.a.com", True),
        ("*.a.com", "c.b.a.com", True),
        ("*.a.com", "a.com", False),
        ("*.a.com", "ba.com", False),
        ("*.a.com", ".a.com", False),
    ],
)
def test_host_matches(pattern: str, host: str, ok: bool) -> None:
    assert host_matches(pattern, host) is ok


@pytest.mark.parametrize(
    ("strip", "add", "path", "expected"),
    [
        (None, None, "/a/b.jpg", "/a/b.jpg"),
        ("/img", None, "/img/a.jpg", "/a.jpg"),
        ("/img/", None, "/img/a.jpg", "/a.jpg"),
        ("/img", None, "/img", "/"),
        ("/img", None, "/imgx/a.jpg", "/imgx/a.jpg"),  # whole segments only
        ("/img", None, "/other/a.jpg", "/other/a.jpg"),  # no match: unchanged
        (None, "/bucket", "/a.jpg", "/bucket/a.jpg"),
        (None, "/bucket/", "/a.jpg", "/bucket/a.jpg"),
        ("/img", "/media/images", "/img/x/y.png", "/media/images/x/y.png"),
        ("/img", "/v2", "/img", "/v2/"),
        ("/", "/", "/a", "/a"),
    ],
)
def test_rewrite(strip: str | None, add: str | None, path: str, expected: str) -> None:
    assert rewrite(_route("r", strip=strip, add=add), path) == expected
