"""EDGESHIELD_* environment variables and CLI overrides layered over the file."""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.loader import ConfigError, load_settings
from config.schema import HttpOrigin, Settings

FILE = """
[server]
port = 8080

[origins.media]
kind = "http"
url = "http://127.0.0.1:9000"

[origins.Local]
kind = "fs"
root = "/srv"

[[routes]]
path_prefix = "/img"
origin = "media"

[[routes]]
origin = "Local"
"""


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "edgeshield.toml"
    path.write_text(FILE, encoding="utf-8")
    return path


def load(
    path: Path | None, env: dict[str, str], overrides: dict[str, Any] | None = None
) -> Settings:
    return load_settings(path, env, overrides=overrides)


def load_errors(path: Path | None, env: dict[str, str]) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as info:
        load_settings(path, env)
    return info.value.errors


def media(settings: Settings) -> HttpOrigin:
    origin = settings.origins["media"]
    assert isinstance(origin, HttpOrigin)
    return origin


# (variable, value, getter, expected)
OVERRIDES: list[tuple[str, str, Any, Any]] = [
    ("EDGESHIELD_SERVER__PORT", "9000", lambda s: s.server.port, 9000),
    ("edgeshield_server__port", "9001", lambda s: s.server.port, 9001),
    ("EDGESHIELD_Server__Port", "9002", lambda s: s.server.port, 9002),
    ("EDGESHIELD_SERVER__HOST", "0.0.0.0", lambda s: s.server.host, "0.0.0.0"),
    ("EDGESHIELD_SERVER__HOST", '"123"', lambda s: s.server.host, "123"),
    ("EDGESHIELD_SERVER__ACCESS_LOG", "off", lambda s: s.server.access_log, "off"),
    ("EDGESHIELD_CACHE__MEMORY_BYTES", "1048576", lambda s: s.cache.memory_bytes, 1048576),
    ("EDGESHIELD_CACHE__HEURISTIC_FRACTION", "0.25", lambda s: s.cache.heuristic_fraction, 0.25),
    (
        "EDGESHIELD_ORIGINS__MEDIA__URL",
        "http://127.0.0.1:9100/base",
        lambda s: str(media(s).url),
        "http://127.0.0.1:9100/base",
    ),
    ("EDGESHIELD_ORIGINS__MEDIA__VERIFY_TLS", "false", lambda s: media(s).verify_tls, False),
    ("EDGESHIELD_ORIGINS__MEDIA__TOTAL_TIMEOUT", "30", lambda s: media(s).total_timeout, 30.0),
    (
        "EDGESHIELD_ORIGINS__MEDIA__HEADERS",
        '{"X-A": "1"}',
        lambda s: media(s).headers,
        {"X-A": "1"},
    ),
    ("EDGESHIELD_ORIGINS__LOCAL__ROOT", "/data", lambda s: str(s.origins["Local"].root), "/data"),
    ("EDGESHIELD_ROUTES__0__READ_ONLY", "true", lambda s: s.routes[0].read_only, True),
    ("EDGESHIELD_ROUTES__1__CACHE__DEFAULT_TTL", "60", lambda s: s.routes[1].cache.default_ttl, 60),
    (
        "EDGESHIELD_ROUTES__0__CACHE__TARGETED_FIELDS",
        '["cdn-cache-control"]',
        lambda s: s.routes[0].cache.targeted_fields,
        ("cdn-cache-control",),
    ),
    (
        "EDGESHIELD_ROUTES__0__CACHE__DOWNSTREAM_CACHE_CONTROL",
        "public, max-age=60",
        lambda s: s.routes[0].cache.downstream_cache_control,
        "public, max-age=60",
    ),
]


@pytest.mark.parametrize(
    ("name", "value", "get", "expected"), OVERRIDES, ids=[o[0] + "=" + o[1] for o in OVERRIDES]
)
def test_env_override(config_file: Path, name: str, value: str, get: Any, expected: Any) -> None:
    assert get(load(config_file, {name: value})) == expected


def test_env_overrides_the_embedded_default() -> None:
    settings = load(
        None, {"EDGESHIELD_SERVER__PORT": "9000", "EDGESHIELD_ROUTES__0__CACHE__DEFAULT_TTL": "5"}
    )
    assert settings.server.port == 9000
    assert settings.routes[0].cache.default_ttl == 5


def test_env_adds_a_whole_origin_then_refines_it(config_file: Path) -> None:
    env = {
        "EDGESHIELD_ORIGINS__CDN": '{"kind": "http", "url": "https://cdn.example.com"}',
        "EDGESHIELD_ORIGINS__CDN__MAX_CONNECTIONS": "7",
        "EDGESHIELD_ROUTES__1__ORIGIN": "cdn",
    }
    settings = load(config_file, env)
    cdn = settings.origins["cdn"]
    assert isinstance(cdn, HttpOrigin)
    assert cdn.max_connections == 7
    assert settings.routes[1].origin == "cdn"


def test_other_variables_are_ignored(config_file: Path) -> None:
    env = {
        "HOME": "/root",
        "EDGESHIELD": "x",
        "XEDGESHIELD_SERVER__PORT": "1",
        "EDGESHIELD_CONFIG": "/nope.toml",
    }
    assert load(config_file, env).server.port == 8080


# (variables, expected path, text in the reason)
ENV_ERRORS: list[tuple[dict[str, str], str, str]] = [
    (
        {"EDGESHIELD_SERVER__PROT": "1"},
        "server.prot",
        "did you mean 'port'?); set by EDGESHIELD_SERVER__PROT",
    ),
    ({"EDGESHIELD_SERVERS__PORT": "1"}, "servers", "did you mean 'server'"),
    ({"EDGESHIELD_BOGUS": "1"}, "bogus", "unknown field"),
    ({"EDGESHIELD_SERVER__PORT": "abc"}, "server.port", "must be an integer (got 'abc'); set by"),
    ({"EDGESHIELD_SERVER__PORT": "-1"}, "server.port", "must be >= 0 (got -1)"),
    ({"EDGESHIELD_SERVER__PORT": "NaN"}, "server.port", "must be an integer"),
    ({"EDGESHIELD_ORIGINS__MEDIA__URL": "ftp://127.0.0.1"}, "origins.media.url", "http or https"),
    (
        {"EDGESHIELD_ORIGINS__MEDIA__ROOT": "/x"},
        "origins.media.root",
        'belongs in [origins.<name>] with kind = "fs"',
    ),
    ({"EDGESHIELD_ROUTES__0__ORIGIN": "nope"}, "routes[0].origin", "unknown origin 'nope'"),
    (
        {"EDGESHIELD_ROUTES": "[]"},
        "routes",
        "at least one route is required; set by EDGESHIELD_ROUTES",
    ),
    ({"EDGESHIELD_SERVER__PORT__X": "1"}, "server.port", "is an integer, not a table; set by"),
    ({"EDGESHIELD_ROUTES__5__ORIGIN": "media"}, "routes", "has no item [5] (it has 2)"),
    ({"EDGESHIELD_ROUTES__X__ORIGIN": "media"}, "routes", "'X' is not an index"),
    ({"EDGESHIELD_SERVER____PORT": "1"}, "EDGESHIELD_SERVER____PORT", "invalid variable name"),
    ({"EDGESHIELD_": "1"}, "EDGESHIELD_", "invalid variable name"),
    ({"EDGESHIELD_SERVER__": "1"}, "EDGESHIELD_SERVER__", "invalid variable name"),
]


@pytest.mark.parametrize(
    ("env", "path", "reason"), ENV_ERRORS, ids=[next(iter(e[0])) for e in ENV_ERRORS]
)
def test_env_error(config_file: Path, env: dict[str, str], path: str, reason: str) -> None:
    errors = load_errors(config_file, env)
    assert len(errors) == 1, errors
    assert errors[0][0] == path
    assert reason in errors[0][1]


def test_env_and_file_errors_are_reported_together(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(FILE.replace("port = 8080", "port = -1"), encoding="utf-8")
    errors = load_errors(path, {"EDGESHIELD_CACHE__MEMORY_BYTS": "1", "EDGESHIELD_SERVER__": "1"})
    assert [p for p, _ in errors] == ["EDGESHIELD_SERVER__", "server.port", "cache.memory_byts"]
    assert "set by" not in dict(errors)["server.port"]


def test_overrides_apply_last(config_file: Path) -> None:
    settings = load(
        config_file,
        {"EDGESHIELD_SERVER__PORT": "9000", "EDGESHIELD_SERVER__WORKERS": "2"},
        {"server": {"port": 9100, "host": "::1"}},
    )
    assert (settings.server.port, settings.server.workers, settings.server.host) == (9100, 2, "::1")


def test_override_errors_name_the_command_line(config_file: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(
            config_file, {"EDGESHIELD_SERVER__PORT": "1"}, overrides={"server": {"port": 70000}}
        )
    assert info.value.errors == [
        ("server.port", "must be <= 65535 (got 70000); set by the command line")
    ]


def test_overrides_replace_origins_and_routes(config_file: Path) -> None:
    overrides = {
        "origins": {"only": {"kind": "fs", "root": "/tmp"}},
        "routes": [{"origin": "only"}],
    }
    settings = load(config_file, {"EDGESHIELD_ORIGINS__MEDIA__MAX_CONNECTIONS": "3"}, overrides)
    assert list(settings.origins) == ["only"]
    assert [route.origin for route in settings.routes] == ["only"]


# -- property: whatever the environment holds, the loader only ever raises ConfigError --

# Real field names (in both cases), list indices, an empty segment and an unknown one.
_SEGMENTS = st.sampled_from(
    [
        "server",
        "SERVER",
        "port",
        "host",
        "cache",
        "memory_bytes",
        "origins",
        "demo",
        "DEMO",
        "root",
        "url",
        "kind",
        "routes",
        "0",
        "1",
        "default_ttl",
        "headers",
        "targeted_fields",
        "x",
        "",
    ]
)
_KEYS = st.one_of(
    st.lists(_SEGMENTS, min_size=1, max_size=5).map(lambda parts: "EDGESHIELD_" + "__".join(parts)),
    st.text(min_size=0, max_size=30).map(lambda tail: "EDGESHIELD_" + tail),
    st.text(alphabet=string.ascii_letters + "_", max_size=30).map(
        lambda tail: "edgeshield_" + tail
    ),
)
_JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
_VALUES = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        ["1", "-1", "0", "1e400", "NaN", "true", "null", "[]", "{}", '"x"', "[" * 5000]
    ),
    _JSONISH.map(lambda value: __import__("json").dumps(value)),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(env=st.dictionaries(_KEYS, _VALUES, max_size=6))
def test_arbitrary_environment_only_raises_config_error(env: dict[str, str]) -> None:
    try:
        settings = load_settings(None, env)
    except ConfigError as exc:
        assert exc.errors
        text = exc.format()
        assert len(text.splitlines()) == len(exc.errors) + 1
    else:
        assert isinstance(settings, Settings)
