"""Config for groups, health, outlier detection, route rules and steering: what loads,
and every mistake reported at its field path by config.loader (as check-config does)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from config.loader import ConfigError, check_config, load_settings
from config.schema import Settings
from proxy.serve.metrics import Stats
from routing.groups import build_router
from routing.origins import build_origin
from routing.rules import build_route_table

ORIGINS = """
[origins.a]
kind = "http"
url = "http://127.0.0.1:9001"

[origins.b]
kind = "http"
url = "http://127.0.0.1:9002/media/"

[origins.b.health]
path = "/healthz"
interval = 1
"""

VALID = (
    ORIGINS
    + """
[outlier_detection]
consecutive_failures = 3

[groups.media]
policy = "weighted"
members = [{origin = "a", weight = 3}, {origin = "b"}]
failover_on = ["connect", "timeout", "5xx", "404"]
max_attempts = 2
deadline = 5
hedge_after = "p95"

[groups.plain]
members = ["b", "a"]

[[routes]]
host = "*.example.com"
path_glob = "/live/*.m3u8"
origin = "media"
strip_prefix = "/live"
add_prefix = "/hls"

[[routes]]
origin = "a"
mode = "steer"
[routes.steer]
region_header = "CF-IPCountry"
cache_control = "public, max-age=60"
cdns = [{origin = "b", regions = ["us", "CA"]}, {base_url = "https://cdn.test", weight = 2}]
"""
)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "edgeshield.toml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def errors_of(tmp_path: Path, text: str) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, text), {})
    return dict(info.value.errors)


def test_full_example_loads_and_round_trips(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, VALID), {})
    media = settings.groups["media"]
    assert [(m.origin, m.weight) for m in media.members] == [("a", 3), ("b", 1)]
    assert media.hedge_after == "p95" and media.failover_on[-1] == "404"
    assert [m.origin for m in settings.groups["plain"].members] == ["b", "a"]
    assert settings.groups["plain"].max_attempts == 2 and settings.groups["plain"].deadline == 10
    assert settings.outlier_detection.consecutive_failures == 3
    health = settings.origins["b"].health
    assert health is not None and (health.window, health.threshold, health.initial) == (5, 3, None)
    steer = settings.routes[1].steer
    assert steer is not None and steer.region_header == "cf-ipcountry"
    assert steer.cdns[0].regions == ("US", "CA")
    assert Settings.model_validate_json(settings.model_dump_json()) == settings
    code, text = check_config(write(tmp_path, VALID), {})
    assert code == 0, text


def test_router_and_route_table_resolve_every_route(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, VALID), {})
    origins = {name: build_origin(name, spec) for name, spec in settings.origins.items()}
    stats = Stats()
    router = build_router(settings, origins, stats)
    assert set(router.groups) == {"media", "plain", "a", "b"}
    assert router.groups["a"].implicit and router.groups["a"].max_attempts == 1
    assert router.groups["media"].max_attempts == 2
    table = build_route_table(settings, origins, router.groups)
    route = table.match("x.example.com", "/live/ch1.m3u8")
    assert route is not None and route.group is router.groups["media"]
    assert route.name == "*.example.com/live/*.m3u8"
    steer_route = table.match("other.test", "/v.mp4")
    assert steer_route is not None and steer_route.steering is not None
    assert steer_route.steering.cdns[0].base_url == "http://127.0.0.1:9002/media"
    # b has probes and starts down (initial = threshold - 1); a has none.
    assert stats.sampled["edgeshield_origin_up"]() == {("a",): 1.0, ("b",): 0.0}
    snap = router.snapshot()
    assert snap["origins"]["b"]["state"] == "down"
    assert snap["groups"]["media"]["members"][1]["up"] is False


@pytest.mark.parametrize(
    ("snippet", "path", "reason"),
    [
        (
            '[groups.g]\nmembers = ["a", "nope"]',
            "groups.g.members[1]",
            "unknown origin 'nope' (known: a, b)",
        ),
        (
            '[groups.g]\nmembers = [{origin = "nope"}]',
            "groups.g.members[0]",
            "unknown origin 'nope' (known: a, b)",
        ),
        ("[groups.g]\nmembers = []", "groups.g.members", "at least one member is required"),
        (
            '[groups.g]\nmembers = [{origin = "a", weight = -1}]',
            "groups.g.members[0].weight",
            "must be >= 0 (got -1)",
        ),
        (
            '[groups.g]\nmembers = [{origin = "a", weight = 0}]',
            "groups.g.members",
            "at least one member needs a weight above 0",
        ),
        ('[groups.a]\nmembers = ["b"]', "groups.a", "name 'a' is also an origin"),
        (
            '[groups.g]\nmembers = ["a", "a"]',
            "groups.g.members[1]",
            "origin 'a' is listed twice",
        ),
        (
            '[groups.g]\nmembers = ["h"]\n[groups.h]\nmembers = ["a"]',
            "groups.g.members[0]",
            "'h' is a group; members must be origins",
        ),
        ('[groups.g]\nmembers = ["a"]\npolicy = "random"', "groups.g.policy", "must be"),
        (
            '[groups.g]\nmembers = ["a"]\nfailover_on = ["5xx", "500"]',
            "groups.g.failover_on[1]",
            "must be",
        ),
        ('[groups.g]\nmembers = ["a"]\nmax_attempts = 0', "groups.g.max_attempts", ">= 1"),
        ('[groups.g]\nmembers = ["a"]\ndeadline = 0', "groups.g.deadline", "> 0"),
        ('[groups.g]\nmembers = ["a"]\nhedge_after = "p99"', "groups.g.hedge_after", '"p95"'),
        ('[groups.g]\nmembers = ["a"]\nhedge_after = -1', "groups.g.hedge_after", "> 0"),
        (
            "[origins.a.health]\nthreshold = 6",
            "origins.a.health.threshold",
            "must be <= window (5)",
        ),
        ('[origins.a.health]\npath = "health"', "origins.a.health.path", "must start with '/'"),
        ("[origins.a.health]\ninterval = 0", "origins.a.health.interval", "> 0"),
        (
            "[outlier_detection]\nbase_ejection = 30\nmax_ejection = 10",
            "outlier_detection.max_ejection",
            "must be >= base_ejection (30.0)",
        ),
    ],
)
def test_group_and_health_errors(tmp_path: Path, snippet: str, path: str, reason: str) -> None:
    text = ORIGINS.replace("[origins.b.health]", snippet + "\n\n[origins.b.health]")
    if "[origins.a.health]" in snippet:  # keep the table after origins.a's keys
        text = ORIGINS + "\n" + snippet
    errors = errors_of(tmp_path, text + '\n[[routes]]\norigin = "a"\n')
    assert path in errors, errors
    assert reason in errors[path]


@pytest.mark.parametrize(
    ("route", "path", "reason"),
    [
        ('origin = "nope"', "routes[0].origin", "unknown origin 'nope' (known: a, b, g)"),
        ('origin = "g"\nhost = "a*.com"', "routes[0].host", 'must be "*", a host name'),
        ('origin = "g"\nhost = "*."', "routes[0].host", 'must be "*", a host name'),
        ('origin = "g"\npath_glob = "x*"', "routes[0].path_glob", "must start with '/'"),
        (
            'origin = "g"\npath_glob = "/x*"\npath_prefix = "/x"',
            "routes[0].path_glob",
            "give path_prefix or path_glob, not both",
        ),
        ('origin = "g"\nstrip_prefix = "img"', "routes[0].strip_prefix", "must start with '/'"),
        ('origin = "g"\nmode = "steer"', "routes[0].steer", 'required when mode = "steer"'),
        (
            'origin = "g"\nmode = "steer"\n[routes.steer]\ncdns = [{origin = "zzz"}]',
            "routes[0].steer.cdns[0].origin",
            "unknown origin 'zzz'",
        ),
        (
            'origin = "g"\nmode = "steer"\n[routes.steer]\n'
            'cdns = [{origin = "a", base_url = "https://x.test"}]',
            "routes[0].steer.cdns[0].base_url",
            "give base_url or origin",
        ),
        (
            'origin = "g"\nmode = "steer"\n[routes.steer]\ncdns = []',
            "routes[0].steer.cdns",
            "at least one CDN is required",
        ),
        (
            'origin = "g"\n[routes.steer]\ncdns = [{base_url = "https://x.test"}]',
            "routes[0].mode",
            'must be "steer"',
        ),
    ],
)
def test_route_errors(tmp_path: Path, route: str, path: str, reason: str) -> None:
    text = ORIGINS + '\n[groups.g]\nmembers = ["a", "b"]\n\n[[routes]]\n' + route + "\n"
    errors = errors_of(tmp_path, text)
    assert path in errors, errors
    assert reason in errors[path]


def test_a_route_naming_a_group_is_fine_next_to_other_errors(tmp_path: Path) -> None:
    # Field errors make pydantic skip the model validator; the loader's own
    # cross-reference pass must still know group names.
    text = (
        ORIGINS + '\n[groups.g]\nmembers = ["a"]\nmax_attempts = -3\n\n[[routes]]\norigin = "g"\n'
    )
    errors = errors_of(tmp_path, text)
    assert list(errors) == ["groups.g.max_attempts"]


def test_all_reference_errors_are_reported_together(tmp_path: Path) -> None:
    text = (
        ORIGINS
        + '\n[groups.g]\nmembers = ["x", "y"]\n\n[[routes]]\norigin = "g"\n'
        + '[[routes]]\norigin = "z"\n'
    )
    errors = errors_of(tmp_path, text)
    assert list(errors) == ["groups.g.members[0]", "groups.g.members[1]", "routes[1].origin"]


def test_steering_cdn_must_be_an_http_origin(tmp_path: Path) -> None:
    text = (
        '[origins.disk]\nkind = "fs"\nroot = "."\n\n[[routes]]\norigin = "disk"\nmode = "steer"\n'
        '[routes.steer]\ncdns = [{origin = "disk"}]\n'
    )
    errors = errors_of(tmp_path, text)
    assert "is not an http origin" in errors["routes[0].steer.cdns[0].origin"]
