"""`edgeshield serve --origin X`: a URL or a folder becomes the only origin and route."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.loader import CLI_ORIGIN_NAME, ConfigError, load_settings, origin_overrides
from config.schema import CachePolicy, FsOrigin, HttpOrigin


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9000",
        "https://media.example.com",
        "HTTPS://media.example.com/base/",
        " http://[::1]:81 ",
    ],
)
def test_http_url_becomes_one_http_origin(url: str) -> None:
    overrides = origin_overrides(url)
    assert overrides == {
        "origins": {CLI_ORIGIN_NAME: {"kind": "http", "url": url.strip()}},
        "routes": [{"host": "*", "path_prefix": "/", "origin": CLI_ORIGIN_NAME}],
    }
    settings = load_settings(None, {}, overrides=overrides)
    assert list(settings.origins) == ["origin"]
    assert isinstance(settings.origins["origin"], HttpOrigin)
    (route,) = settings.routes
    assert (route.host, route.path_prefix, route.origin) == ("*", "/", "origin")
    assert route.cache == CachePolicy()


def test_folder_becomes_one_fs_origin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "media").mkdir()
    monkeypatch.chdir(tmp_path)
    overrides = origin_overrides("media")
    settings = load_settings(None, {}, overrides=overrides)
    origin = settings.origins["origin"]
    assert isinstance(origin, FsOrigin)
    assert origin.root == tmp_path.resolve() / "media"
    assert origin.root.is_absolute()
    assert [route.origin for route in settings.routes] == ["origin"]


def test_origin_replaces_the_configured_origins(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        '[origins.a]\nkind = "fs"\nroot = "/a"\n[[routes]]\norigin = "a"\n', encoding="utf-8"
    )
    overrides = {**origin_overrides(str(tmp_path)), "server": {"port": 9000}}
    settings = load_settings(config, {"EDGESHIELD_SERVER__WORKERS": "2"}, overrides=overrides)
    assert list(settings.origins) == ["origin"]
    assert (settings.server.port, settings.server.workers) == (9000, 2)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("ftp://example.com/media", "unsupported URL scheme 'ftp'"),
        ("file:///srv/media", "unsupported URL scheme 'file'"),
        ("http://", "has no host"),
        ("https:///path", "has no host"),
        ("http://[::1", "invalid URL"),
        ("/no/such/folder/anywhere", "no such folder '/no/such/folder/anywhere'"),
        ("127.0.0.1:9000", "give a URL starting with http:// or https://"),
        ("", "must not be empty"),
        ("   ", "must not be empty"),
    ],
)
def test_bad_origin(value: str, reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        origin_overrides(value)
    ((path, message),) = info.value.errors
    assert path == "--origin"
    assert reason in message
    assert info.value.format().splitlines()[0] == "command line: 1 configuration error"


def test_file_is_not_a_folder(tmp_path: Path) -> None:
    file = tmp_path / "a.txt"
    file.write_text("x")
    with pytest.raises(ConfigError, match="is not a folder"):
        origin_overrides(str(file))
