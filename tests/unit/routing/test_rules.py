from __future__ import annotations

import pytest

from config.schema import CachePolicy
from proxy.http.freshness import FreshnessPolicy
from routing.rules import Route, RouteTable, prefix_matches


class _Origin:
    def __init__(self, name: str) -> None:
        self.name = name


def _route(name: str, host: str, prefix: str) -> Route:
    return Route(
        name=name,
        host=host,
        path_prefix=prefix,
        origin=_Origin(name),
        read_only=False,
        policy=CachePolicy(),
        freshness=FreshnessPolicy(),
        group=None,  # matching never reads it
    )  # type: ignore[arg-type]


TABLE = RouteTable(
    [
        _route("img-host", "img.example.com", "/"),
        _route("videos", "*", "/videos"),
        _route("hls", "*", "/live/"),
        _route("api-exact", "example.com", "/api"),
        _route("fallback", "*", "/"),
    ]
)


@pytest.mark.parametrize(
    ("host", "path", "expected"),
    [
        ("img.example.com", "/anything", "img-host"),
        ("img.example.com", "/videos/a.mp4", "img-host"),  # first match wins
        ("other.com", "/videos", "videos"),
        ("other.com", "/videos/a.mp4", "videos"),
        ("other.com", "/videosx/a.mp4", "fallback"),  # whole segments only
        ("other.com", "/live/", "hls"),
        ("other.com", "/live/x.m3u8", "hls"),
        ("other.com", "/live", "fallback"),  # a trailing-slash prefix needs the slash
        ("example.com", "/api/v1", "api-exact"),
        ("www.example.com", "/api/v1", "fallback"),
        ("example.com", "/", "fallback"),
    ],
)
def test_first_matching_rule_wins(host: str, path: str, expected: str) -> None:
    route = TABLE.match(host, path)
    assert route is not None and route.name == expected


def test_no_rule_matches() -> None:
    assert RouteTable([_route("a", "a.com", "/x")]).match("b.com", "/x") is None


@pytest.mark.parametrize(
    ("prefix", "path", "ok"),
    [
        ("/", "/a", True),
        ("/a", "/a", True),
        ("/a", "/a/b", True),
        ("/a", "/ab", False),
        ("/a/", "/a", False),
    ],
)
def test_prefix_matches(prefix: str, path: str, ok: bool) -> None:
    assert prefix_matches(prefix, path) is ok
