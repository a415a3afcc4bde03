"""Every shipped example and the built-in default validate; settings are immutable."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from pydantic import ValidationError

from config.defaults import DEMO_ROOT, default_config
from config.loader import check_config, load_settings
from config.schema import FsOrigin, HttpOrigin, Settings

EXAMPLES = Path(__file__).resolve().parents[3] / "config" / "examples"
EXAMPLE_FILES = sorted(EXAMPLES.glob("*.toml"))
# Secrets an example says to pass by environment (never written in the file).
EXAMPLE_ENV = {"signed.toml": {"EDGESHIELD_AUTH__KEYS__K1__SECRET": "example-secret"}}


def _env(path: Path) -> dict[str, str]:
    return EXAMPLE_ENV.get(path.name, {})


def test_the_expected_examples_exist() -> None:
    names = {path.name for path in EXAMPLE_FILES}
    assert {"minimal.toml", "media-shield.toml", "demo.toml"} <= names


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda path: path.name)
def test_example_loads(path: Path) -> None:
    settings = load_settings(path, _env(path))
    assert isinstance(settings, Settings)
    assert settings.routes
    for route in settings.routes:
        assert route.origin in settings.origins


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda path: path.name)
def test_check_config_accepts_example(path: Path) -> None:
    code, text = check_config(path, _env(path))
    assert code == 0
    assert text.splitlines()[0].startswith(f"{path}: ok (")


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda path: path.name)
def test_example_uses_only_loopback_or_example_hosts(path: Path) -> None:
    settings = load_settings(path, _env(path))
    assert settings.server.host == "127.0.0.1"
    for origin in settings.origins.values():
        if isinstance(origin, HttpOrigin):
            host = origin.url.host or ""
            assert host == "127.0.0.1" or host == "example.com" or host.endswith(".example.com")
    for route in settings.routes:
        assert route.host == "*" or route.host.endswith("example.com")


def test_media_shield_shows_the_documented_features() -> None:
    settings = load_settings(EXAMPLES / "media-shield.toml", {})
    kinds = sorted(type(origin).__name__ for origin in settings.origins.values())
    assert kinds == ["FsOrigin", "HttpOrigin", "HttpOrigin"]
    assert any(route.read_only for route in settings.routes)
    assert any(route.cache.downstream_cache_control for route in settings.routes)
    assert any("cdn-cache-control" in route.cache.targeted_fields for route in settings.routes)
    ttls = [route.cache.default_ttl for route in settings.routes if route.cache.default_ttl]
    assert min(ttls) <= 5 and max(ttls) >= 86400
    assert any(route.cache.stale_while_revalidate > 0 for route in settings.routes)


def test_embedded_default_loads() -> None:
    settings = load_settings(None, {})
    assert (settings.server.host, settings.server.port) == ("127.0.0.1", 8080)
    assert list(settings.origins) == ["demo"]
    demo = settings.origins["demo"]
    assert isinstance(demo, FsOrigin)
    assert demo.root == Path(DEMO_ROOT) == Path("var/demo")
    stream, route = settings.routes
    assert (stream.path_prefix, stream.auth is not None) == ("/video/stream", True)
    assert (route.host, route.path_prefix, route.origin) == ("*", "/", "demo")
    assert route.cache.default_ttl == 300
    assert route.cache.stale_while_revalidate == 60


def test_demo_toml_is_the_embedded_default() -> None:
    with (EXAMPLES / "demo.toml").open("rb") as f:
        assert tomllib.load(f) == default_config()
    assert load_settings(EXAMPLES / "demo.toml", {}) == load_settings(None, {})


def test_default_config_is_a_fresh_copy_each_time() -> None:
    first = default_config()
    first["server"]["port"] = 1
    first["routes"].clear()
    assert default_config()["server"]["port"] == 8080
    assert load_settings(None, {}).server.port == 8080


def test_loading_does_not_mutate_the_default() -> None:
    load_settings(None, {"EDGESHIELD_SERVER__PORT": "9000"}, overrides={"server": {"host": "::1"}})
    assert default_config()["server"] == {"host": "127.0.0.1", "port": 8080}


@pytest.mark.parametrize(
    ("target", "field", "value"),
    [
        ("settings", "server", None),
        ("server", "port", 1),
        ("cache", "memory_bytes", 1),
        ("origin", "root", Path("/")),
        ("route", "origin", "other"),
        ("policy", "default_ttl", 1.0),
    ],
)
def test_settings_are_frozen(target: str, field: str, value: object) -> None:
    settings = load_settings(None, {})
    objects = {
        "settings": settings,
        "server": settings.server,
        "cache": settings.cache,
        "origin": settings.origins["demo"],
        "route": settings.routes[-1],
        "policy": settings.routes[-1].cache,
    }
    with pytest.raises(ValidationError, match="frozen"):
        setattr(objects[target], field, value)


def test_routes_are_an_immutable_sequence() -> None:
    settings = load_settings(None, {})
    assert isinstance(settings.routes, tuple)
    assert isinstance(settings.routes[0].cache.targeted_fields, tuple)
