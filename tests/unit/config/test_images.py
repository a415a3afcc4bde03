"""`[images]` and the per-route `images` switch in the one Settings object."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from config.images import ImageSettings
from config.loader import ConfigError, load_settings
from config.schema import Settings

BASE = """
[origins.media]
kind = "http"
url = "http://127.0.0.1:9000"
"""


def load(tmp_path: Path, text: str) -> Settings:
    path = tmp_path / "edgeshield.toml"
    path.write_text(textwrap.dedent(BASE + text), encoding="utf-8")
    return load_settings(path, {})


def test_images_are_off_per_route_by_default_and_the_engine_has_defaults(tmp_path: Path) -> None:
    settings = load(tmp_path, '[[routes]]\norigin = "media"\n')
    assert settings.routes[0].images is False
    assert settings.images == ImageSettings()


def test_a_route_opts_in_and_images_settings_load(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        """
        [images]
        threads = 3
        allowed_widths = [320, 640]

        [images.limits]
        max_input_pixels = 1000000

        [[routes]]
        origin = "media"
        images = true
        """,
    )
    assert settings.routes[0].images is True
    assert settings.images.threads == 3 and settings.images.allowed_widths == (320, 640)
    assert settings.images.limits.max_input_pixels == 1000000


def test_images_need_the_cache(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(
            tmp_path,
            """
            [[routes]]
            origin = "media"
            images = true
            [routes.cache]
            enabled = false
            """,
        )
    [(path, reason)] = info.value.errors
    assert path == "routes[0].images" and "cache.enabled" in reason


def test_an_images_field_in_the_wrong_place_names_its_home(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, '[server]\nqueue_depth = 3\n[[routes]]\norigin = "media"\n')
    [(path, reason)] = info.value.errors
    assert path == "server.queue_depth" and "[images]" in reason
