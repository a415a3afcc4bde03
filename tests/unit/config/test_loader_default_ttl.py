"""`edgeshield serve --origin X --default-ttl N`: freshness for answers that carry none,
like `varnishd -b X -t N`."""

from __future__ import annotations

import pytest

from config.loader import ConfigError, load_settings, origin_overrides


def test_default_ttl_is_the_catch_all_routes() -> None:
    settings = load_settings(None, {}, overrides=origin_overrides("http://127.0.0.1:9", 30))
    (route,) = settings.routes
    assert route.cache.default_ttl == 30


def test_without_it_the_route_keeps_the_default_policy() -> None:
    settings = load_settings(None, {}, overrides=origin_overrides("http://127.0.0.1:9"))
    assert settings.routes[0].cache.default_ttl is None


def test_a_negative_ttl_is_a_config_error_with_its_path() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(None, {}, overrides=origin_overrides("http://127.0.0.1:9", -1))
    ((path, _reason),) = info.value.errors
    assert path == "routes[0].cache.default_ttl"


def test_default_ttl_without_origin_says_it_needs_one() -> None:
    with pytest.raises(ConfigError) as info:
        origin_overrides(None, 30)
    ((path, reason),) = info.value.errors
    assert path == "--origin"
    assert "--default-ttl" in reason
