"""Validation errors: every problem at once, each as (field path, reason)."""

from __future__ import annotations

import pickle
import textwrap
from pathlib import Path
from typing import Any

import pytest

from config.loader import ConfigError, check_config, format_path, load_settings
from config.schema import HttpOrigin

VALID = """
[origins.media]
kind = "http"
url = "http://127.0.0.1:9000"

[[routes]]
origin = "media"
"""


def write(tmp_path: Path, text: str, name: str = "edgeshield.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def errors_of(
    tmp_path: Path, text: str, env: dict[str, str] | None = None
) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, text), env or {})
    return info.value.errors


def paths_of(tmp_path: Path, text: str) -> list[str]:
    return [path for path, _ in errors_of(tmp_path, text)]


def test_valid_file_loads(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, VALID), {})
    media = settings.origins["media"]
    assert isinstance(media, HttpOrigin)
    assert str(media.url).startswith("http://127.0.0.1:9000")


def test_four_distinct_mistakes_are_reported_together(tmp_path: Path) -> None:
    text = """
    [server]
    prot = 9000

    [origins.media]
    kind = "http"
    url = "not a url"
    connect_timeout = -1

    [[routes]]
    origin = "images"
    """
    errors = errors_of(tmp_path, text)
    assert [path for path, _ in errors] == [
        "server.prot",
        # Schema order: the timeouts come from the base model shared with s3 origins.
        "origins.media.connect_timeout",
        "origins.media.url",
        "routes[0].origin",
    ]
    reasons = dict(errors)
    assert "did you mean 'port'" in reasons["server.prot"]
    assert "URL" in reasons["origins.media.url"]
    assert reasons["origins.media.connect_timeout"] == "must be >= 0 (got -1)"
    assert reasons["routes[0].origin"] == "unknown origin 'images' (known: media)"


def test_format_prints_a_header_and_one_line_per_error(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace('origin = "media"', 'origin = "x"\nbogus = 1\nhost = 5'))
    with pytest.raises(ConfigError) as info:
        load_settings(path, {})
    lines = info.value.format().splitlines()
    assert lines[0] == f"{path}: 3 configuration errors"
    assert lines[1:] == [f"{p}: {r}" for p, r in info.value.errors]
    assert [line.split(":", 1)[0] for line in lines[1:]] == [
        "routes[0].host",
        "routes[0].bogus",
        "routes[0].origin",
    ]
    assert str(info.value) == info.value.format()


# (TOML snippet replacing the valid route/origin parts, expected path, text in the reason)
CASES: list[tuple[str, str, str, str]] = [
    (
        "negative route ttl",
        VALID + "[routes.cache]\ndefault_ttl = -5\n",
        "routes[0].cache.default_ttl",
        "must be >= 0 (got -5)",
    ),
    (
        "misspelt policy field",
        VALID + "[routes.cache]\ndefault_tll = 5\n",
        "routes[0].cache.default_tll",
        "did you mean 'default_ttl'",
    ),
    (
        "field in the wrong section",
        VALID + "[cache]\ndefault_ttl = 5\n",
        "cache.default_ttl",
        "belongs in [routes.cache]",
    ),
    (
        "unknown field lists the valid ones",
        VALID + "[server]\nzzz = 1\n",
        "server.zzz",
        "expected one of: host, port",
    ),
    (
        "port out of range",
        VALID + "[server]\nport = 70000\n",
        "server.port",
        "must be <= 65535",
    ),
    (
        "wrong type",
        VALID + '[server]\nworkers = "four"\n',
        "server.workers",
        "must be an integer (got 'four')",
    ),
    (
        "bad literal",
        VALID + '[server]\nlog_level = "loud"\n',
        "server.log_level",
        "'debug', 'info', 'warning' or 'error' (got 'loud')",
    ),
    (
        "path prefix not absolute",
        VALID.replace('origin = "media"', 'origin = "media"\npath_prefix = "img"'),
        "routes[0].path_prefix",
        "must start with '/' (got 'img')",
    ),
    (
        "bad url scheme, without the union tag in the path",
        VALID.replace("http://127.0.0.1:9000", "ftp://127.0.0.1"),
        "origins.media.url",
        "http or https",
    ),
    (
        "url without host",
        VALID.replace("http://127.0.0.1:9000", "http://"),
        "origins.media.url",
        "empty host",
    ),
    (
        "http field on an fs origin",
        VALID + '[origins.local]\nkind = "fs"\nroot = "/srv"\nurl = "http://127.0.0.1"\n',
        "origins.local.url",
        'kind = "http"',
    ),
    (
        "missing required field of the variant",
        VALID + '[origins.local]\nkind = "fs"\n',
        "origins.local.root",
        "required field is missing",
    ),
    (
        "unknown origin kind",
        VALID + '[origins.store]\nkind = "ftp"\n',
        "origins.store.kind",
        "must be one of 'fs', 'http', 's3' (got 'ftp')",
    ),
    (
        "missing origin kind",
        VALID + '[origins.store]\nroot = "/srv"\n',
        "origins.store.kind",
        "required field is missing (one of 'fs', 'http', 's3')",
    ),
    (
        "origin that is not a table",
        'origins = { media = "http://127.0.0.1" }\n[[routes]]\norigin = "media"\n',
        "origins.media",
        "must be a table",
    ),
    (
        "origin names with dots are quoted",
        VALID + '[origins."media.v2"]\nkind = "http"\nurl = 5\n',
        'origins."media.v2".url',
        "",
    ),
    (
        "header values must be strings",
        VALID + "[origins.media.headers]\nX-Count = 1\n",
        "origins.media.headers.X-Count",
        "must be a string (got 1)",
    ),
    (
        "targeted fields must be an array",
        VALID + '[routes.cache]\ntargeted_fields = "cdn-cache-control"\n',
        "routes[0].cache.targeted_fields",
        "must be an array",
    ),
    ("no routes", 'routes = []\n[origins.m]\nkind = "fs"\nroot = "/"\n', "routes", "at least one"),
    ("routes missing", '[origins.m]\nkind = "fs"\nroot = "/"\n', "routes", "required field"),
    ("origins missing", '[[routes]]\norigin = "m"\n', "origins", "required field"),
    (
        "second route",
        VALID + '[[routes]]\npath_prefix = "/x"\norigin = "nope"\n',
        "routes[1].origin",
        "unknown origin 'nope'",
    ),
    (
        "cluster without a secret",
        VALID + '[cluster]\nsocket_dir = "/tmp/es-sockets"\n',
        "cluster.secret",
        "required when peers, registry, dns or socket_dir is set",
    ),
    (
        "cluster dns without a port",
        VALID + '[cluster]\ndns = "es.default.svc"\nsecret = "k"\n',
        "cluster.dns_port",
        "required with dns",
    ),
]


@pytest.mark.parametrize(("name", "text", "path", "reason"), CASES, ids=[c[0] for c in CASES])
def test_error_path_and_reason(
    tmp_path: Path, name: str, text: str, path: str, reason: str
) -> None:
    errors = errors_of(tmp_path, text)
    matching = [r for p, r in errors if p == path]
    assert matching, f"{path} not in {errors}"
    assert reason in matching[0]
    assert len(errors) == 1, errors


def test_unknown_origin_is_reported_once_when_nothing_else_is_wrong(tmp_path: Path) -> None:
    errors = errors_of(tmp_path, VALID.replace('origin = "media"', 'origin = "nope"'))
    assert errors == [("routes[0].origin", "unknown origin 'nope' (known: media)")]


@pytest.mark.parametrize(
    ("text", "where", "what"),
    [
        ('[server]\nport = 8080\nhost = "127.0.0.1\n', "line 3, column 18", "Illegal character"),
        ("[server\nport = 1\n", "line 1, column 8", "Expected ']'"),
        ("[server]\nport = 1\nport = 2\n", "line 3", "overwrite"),
        ("[server]\nport = \n", "line 2", "Invalid value"),
    ],
)
def test_toml_syntax_error_has_its_position(
    tmp_path: Path, text: str, where: str, what: str
) -> None:
    errors = errors_of(tmp_path, text)
    assert len(errors) == 1
    path, reason = errors[0]
    assert path.startswith(where)
    assert reason.startswith("TOML syntax error: ")
    assert what in reason


def test_syntax_error_quotes_the_line(tmp_path: Path) -> None:
    (error,) = errors_of(tmp_path, 'port = 80\nhost = "x\n')
    assert error[1].endswith("the line reads 'host = \"x'")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path / "nope.toml", {})
    assert info.value.errors == [("file", "cannot read: No such file or directory")]
    assert info.value.source == str(tmp_path / "nope.toml")


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'[server]\nhost = "caf\xe9"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(path, {})
    assert info.value.errors[0][0] == "file"
    assert "UTF-8" in info.value.errors[0][1]


def test_check_config_reports_errors_with_exit_1(tmp_path: Path) -> None:
    path = write(tmp_path, VALID + "[server]\nport = -1\nwokers = 2\n")
    code, text = check_config(path, {})
    assert code == 1
    assert text.splitlines() == [
        f"{path}: 2 configuration errors",
        "server.port: must be >= 0 (got -1)",
        "server.wokers: unknown field (did you mean 'workers'?)",
    ]


def test_check_config_summarises_success(tmp_path: Path) -> None:
    text = (
        VALID
        + '[origins.local]\nkind = "fs"\nroot = "."\n'
        + '[[routes]]\npath_prefix = "/a"\norigin = "local"\n'
    )
    path = write(tmp_path, text)
    code, out = check_config(path, {})
    assert (code, out) == (0, f"{path}: ok (2 origins, 2 routes)")


def test_check_config_warns_about_missing_folders(tmp_path: Path) -> None:
    path = write(
        tmp_path, '[origins.m]\nkind = "fs"\nroot = "/no/such/dir"\n[[routes]]\norigin = "m"\n'
    )
    code, out = check_config(path, {})
    assert code == 0
    assert out.splitlines() == [
        f"{path}: ok (1 origin, 1 route)",
        "warning: origins.m.root: folder '/no/such/dir' does not exist (yet)",
    ]


def test_check_config_applies_the_environment(tmp_path: Path) -> None:
    code, out = check_config(write(tmp_path, VALID), {"EDGESHIELD_SERVER__PORT": "-1"})
    assert code == 1
    assert "server.port: must be >= 0 (got -1); set by EDGESHIELD_SERVER__PORT" in out.splitlines()


@pytest.mark.parametrize(
    ("loc", "text"),
    [
        ((), ""),
        (("server", "port"), "server.port"),
        (("routes", 0, "cache", "default_ttl"), "routes[0].cache.default_ttl"),
        (("origins", "media.v2", "url"), 'origins."media.v2".url'),
        (("origins", "a b\nc"), 'origins."a b\\nc"'),
        (("origins", "X-Y_z9"), "origins.X-Y_z9"),
    ],
)
def test_format_path(loc: tuple[Any, ...], text: str) -> None:
    assert format_path(loc) == text


def test_config_error_pickles() -> None:
    error = ConfigError([("server.port", "must be >= 0 (got -1)")], "x.toml")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.errors, copy.source, str(copy)) == (error.errors, error.source, str(error))


def test_error_lines_never_contain_newlines() -> None:
    error = ConfigError([("a", "two\nlines"), ("b\u2028c", "x")], "src")
    assert len(error.format().splitlines()) == 3
