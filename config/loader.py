"""Build the one immutable ``Settings`` object, once, at start-up.

Layers, lowest precedence first:

1. the TOML file given on the command line, or the built-in default (``config.defaults``);
2. ``EDGESHIELD_*`` environment variables (``EDGESHIELD_SERVER__PORT=9000``);
3. ``overrides`` from command-line flags (``--port``, ``--origin`` ...).

The merged data is validated once with ``Settings.model_validate``. Every problem, from any
layer, is collected into a single ``ConfigError`` whose ``errors`` are ``(field path,
reason)`` pairs such as ``("routes[0].cache.default_ttl", "must be >= 0 (got -5)")``, so a
broken file is fixed in one round instead of one error at a time.

Grammars config does not own (image presets are parsed by transforms/, which config never
imports) are checked by the caller's ``checks`` once the schema holds, and reported the
same way.
"""

from __future__ import annotations

import copy
import difflib
import json
import re
import tomllib
import types
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, NoReturn, Union, get_args, get_origin
from urllib.parse import urlsplit

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from config.admin import AdminSettings
from config.auth import AuthSettings, RouteAccessSettings, RouteAuthSettings, TrustedProxies
from config.defaults import default_config
from config.disk import DiskSettings
from config.images import AvifSettings, ImageLimits, ImageSettings
from config.redis import RedisSettings
from config.schema import (
    CachePolicy,
    CacheSettings,
    FsOrigin,
    HttpOrigin,
    PurgeSettings,
    RouteSettings,
    ServerSettings,
    Settings,
    reference_problems,
)

ENV_PREFIX = "EDGESHIELD_"
ENV_NESTING = "__"
# Variables with the prefix that are not settings; the CLI reads them itself.
RESERVED_ENV = frozenset({"EDGESHIELD_CONFIG"})
DEFAULT_SOURCE = "built-in default configuration"
CLI_SOURCE = "command line"
# Name of the origin that `edgeshield serve --origin X` creates.
CLI_ORIGIN_NAME = "origin"
# Top-level keys that `overrides` replace as a whole instead of merging into: an origin
# given on the command line replaces the configured ones, like `varnishd -b`.
_REPLACED_BY_OVERRIDES = frozenset({"origins", "routes"})

Loc = tuple[str | int, ...]
# A check of valid settings by the part that owns a grammar inside them: (field path,
# reason) per problem (transforms/image/imgix.py `preset_errors`).
SettingsCheck = Callable[[Settings], Iterable[tuple[Loc, str]]]


class ConfigError(Exception):
    """Invalid configuration. ``errors`` holds every problem as (field path, reason)."""

    def __init__(self, errors: Iterable[tuple[str, str]], source: str = "configuration") -> None:
        self.errors: list[tuple[str, str]] = list(errors)
        self.source = source
        super().__init__(self.errors, source)

    def __str__(self) -> str:
        return self.format()

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.errors, self.source))

    def format(self) -> str:
        """A header naming the source, then one ``<path>: <reason>`` line per error."""
        count = len(self.errors)
        lines = [f"{self.source}: {_plural(count, 'configuration error')}"]
        lines += [_one_line(f"{path}: {reason}") for path, reason in self.errors]
        return "\n".join(lines)


def load_settings(
    path: Path | None,
    env: Mapping[str, str],
    *,
    overrides: Mapping[str, Any] | None = None,
    checks: Iterable[SettingsCheck] = (),
) -> Settings:
    """Read ``path`` (or the built-in default), apply ``EDGESHIELD_*`` variables from
    ``env``, then ``overrides``, validate the result, then run ``checks`` on it. Raises
    ``ConfigError``."""
    source = str(path) if path is not None else DEFAULT_SOURCE
    data = _read_toml(path) if path is not None else default_config()
    provenance: list[tuple[Loc, str]] = []
    errors = _apply_env(data, env, provenance)
    if overrides:
        _apply_overrides(data, overrides, provenance)
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        problems = [_convert(detail) for detail in exc.errors()]
        problems += _cross_references(data)
        for loc, reason in _dedupe(problems):
            errors.append((format_path(loc), reason + _set_by(loc, provenance)))
        raise ConfigError(errors, source) from None
    for check in checks:
        errors += [
            (format_path(loc), reason + _set_by(loc, provenance)) for loc, reason in check(settings)
        ]
    if errors:
        raise ConfigError(errors, source)
    return settings


def check_config(
    path: Path, env: Mapping[str, str], checks: Iterable[SettingsCheck] = ()
) -> tuple[int, str]:
    """``edgeshield check-config FILE``: (exit code, text to print)."""
    try:
        settings = load_settings(path, env, checks=checks)
    except ConfigError as exc:
        return 1, exc.format()
    origins = _plural(len(settings.origins), "origin")
    routes = _plural(len(settings.routes), "route")
    lines = [f"{path}: ok ({origins}, {routes})"]
    for name, origin in settings.origins.items():
        if isinstance(origin, FsOrigin) and not origin.root.is_dir():
            where = format_path(("origins", name, "root"))
            lines.append(f"warning: {where}: folder {str(origin.root)!r} does not exist (yet)")
    return 0, "\n".join(lines)


def origin_overrides(origin: str | None, default_ttl: float | None = None) -> dict[str, Any]:
    """Overrides for ``edgeshield serve --origin X`` (like ``varnishd -b``): an http(s) URL
    becomes one http origin, anything else must be an existing local folder (one fs
    origin). Either way one catch-all route with the default cache policy sends every
    request there; ``default_ttl`` (``--default-ttl``, like ``varnishd -t``) is its
    freshness for answers without any. Raises ``ConfigError`` for anything else."""
    value = (origin or "").strip()
    spec: dict[str, Any]
    if not value:
        needed = " (--default-ttl applies to it)" if default_ttl is not None else ""
        _origin_error(f"must not be empty: give an http(s):// URL or a local folder{needed}")
    if "://" in value:
        try:
            parts = urlsplit(value)
        except ValueError as exc:
            _origin_error(f"invalid URL {value!r}: {exc}")
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            _origin_error(
                f"unsupported URL scheme {scheme!r} in {value!r}: "
                "use an http:// or https:// URL, or a local folder"
            )
        if not parts.hostname:
            _origin_error(f"URL {value!r} has no host")
        spec = {"kind": "http", "url": value}
    else:
        folder = Path(value).expanduser()
        if not folder.exists():
            _origin_error(
                f"no such folder {value!r} (for an HTTP origin give a URL starting with "
                "http:// or https://)"
            )
        if not folder.is_dir():
            _origin_error(f"{value!r} is not a folder")
        spec = {"kind": "fs", "root": str(folder.resolve())}
    route: dict[str, Any] = {"host": "*", "path_prefix": "/", "origin": CLI_ORIGIN_NAME}
    if default_ttl is not None:
        route["cache"] = {"default_ttl": default_ttl}
    return {"origins": {CLI_ORIGIN_NAME: spec}, "routes": [route]}


def format_path(loc: Iterable[str | int]) -> str:
    """``("routes", 0, "cache", "default_ttl")`` -> ``routes[0].cache.default_ttl``. Keys
    that are not bare TOML keys are quoted: ``origins."my.origin".url``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        key = part if _BARE_KEY.fullmatch(part) else json.dumps(part)
        out += f".{key}" if out else key
    return out


# -- reading ---------------------------------------------------------------------------

_TOML_WHERE = re.compile(r"\s*\(at (?:line (\d+), column (\d+)|end of document)\)$")


def _read_toml(path: Path) -> dict[str, Any]:
    source = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError([("file", f"cannot read: {exc.strerror or exc}")], source) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        reason = f"not UTF-8 text (invalid byte at offset {exc.start})"
        raise ConfigError([("file", reason)], source) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        lines = text.splitlines()
        match = _TOML_WHERE.search(message)
        what = message[: match.start()] if match else message
        if match and match[1]:
            line_no = int(match[1])
            where = f"line {line_no}, column {match[2]}"
        else:
            line_no = len(lines)
            where = f"line {line_no}, end of file"
        reason = f"TOML syntax error: {what}"
        if 0 < line_no <= len(lines) and lines[line_no - 1].strip():
            reason += f"; the line reads {_show(lines[line_no - 1].strip())}"
        raise ConfigError([(where, reason)], source) from None


# -- layering --------------------------------------------------------------------------


class _Conflict(Exception):
    def __init__(self, loc: Loc, reason: str) -> None:
        super().__init__(reason)
        self.loc = loc
        self.reason = reason


def _apply_env(
    data: dict[str, Any], env: Mapping[str, str], provenance: list[tuple[Loc, str]]
) -> list[tuple[str, str]]:
    """Apply ``EDGESHIELD_A__B__C=value`` as ``data["a"]["b"]["c"] = value``. Shallower
    variables go first, so ``EDGESHIELD_SERVER`` (a JSON table) can be refined by
    ``EDGESHIELD_SERVER__PORT``. Returns problems with variable names themselves."""
    errors: list[tuple[str, str]] = []
    names = [
        name
        for name in env
        if name[: len(ENV_PREFIX)].upper() == ENV_PREFIX and name.upper() not in RESERVED_ENV
    ]
    names.sort(key=lambda name: (name.count(ENV_NESTING), name))
    for name in names:
        parts = name[len(ENV_PREFIX) :].split(ENV_NESTING)
        if not all(parts):
            errors.append(
                (name, "invalid variable name: use EDGESHIELD_SECTION__FIELD, '__' between levels")
            )
            continue
        try:
            loc = _set_path(data, parts, _parse_env_value(env[name]))
        except _Conflict as exc:
            errors.append((format_path(exc.loc), f"{exc.reason}; set by {name}"))
            continue
        provenance.append((loc, name))
    return errors


def _parse_env_value(raw: str) -> Any:
    """JSON when it parses as JSON (numbers, true/false, null, arrays, objects), else the
    string itself. NaN/Infinity are not JSON and stay strings."""
    try:
        return json.loads(raw, parse_constant=_not_json)
    except (ValueError, RecursionError):
        return raw


def _not_json(constant: str) -> Any:
    raise ValueError(constant)


def _set_path(data: dict[str, Any], parts: list[str], value: Any) -> Loc:
    node: Any = data
    loc: list[str | int] = []
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        key: str | int
        if isinstance(node, dict):
            key = _match_key(node, part)
            if not last and key not in node:
                node[key] = {}
        else:  # a list: the segment must be the index of an existing item
            if not _INDEX.fullmatch(part):
                raise _Conflict(tuple(loc), f"is an array, and {part!r} is not an index")
            if int(part) >= len(node):
                raise _Conflict(tuple(loc), f"has no item [{int(part)}] (it has {len(node)})")
            key = int(part)
        loc.append(key)
        if last:
            node[key] = value
        else:
            node = node[key]
            if not isinstance(node, dict | list):
                raise _Conflict(tuple(loc), f"is {_kind(node)}, not a table")
    return tuple(loc)


def _match_key(node: dict[str, Any], part: str) -> str:
    """Names are case-insensitive: reuse an existing key that matches, else lower-case."""
    lower = part.lower()
    if lower in node:
        return lower
    for existing in node:
        if isinstance(existing, str) and existing.lower() == lower:
            return existing
    return lower


def _apply_overrides(
    data: dict[str, Any], overrides: Mapping[str, Any], provenance: list[tuple[Loc, str]]
) -> None:
    for key, value in overrides.items():
        if key in _REPLACED_BY_OVERRIDES:
            data[key] = _plain(value)
            provenance.append(((key,), "the command line"))
        else:
            _merge(data, key, value, (key,), provenance)


def _merge(
    target: dict[str, Any], key: str, value: Any, loc: Loc, provenance: list[tuple[Loc, str]]
) -> None:
    if isinstance(value, Mapping) and isinstance(target.get(key), dict):
        for sub_key, sub_value in value.items():
            _merge(target[key], sub_key, sub_value, (*loc, sub_key), provenance)
    else:
        target[key] = _plain(value)
        provenance.append((loc, "the command line"))


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return copy.deepcopy(value)


def _set_by(loc: Loc, provenance: list[tuple[Loc, str]]) -> str:
    """Which later layer set this path (the last one wins), as a suffix for the reason."""
    for prefix, label in reversed(provenance):
        if loc[: len(prefix)] == prefix:
            return f"; set by {label}"
    return ""


# -- turning pydantic errors into (path, reason) ---------------------------------------

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_INDEX = re.compile(r"[0-9]{1,9}")
# Model validators report "<field path>: <reason>" (see config/schema.py).
_PATH_PREFIXED = re.compile(
    r"([A-Za-z_][A-Za-z0-9_-]*(?:\[\d+\]|\.[A-Za-z_][A-Za-z0-9_-]*)*): (.+)"
)
_PATH_TOKEN = re.compile(r"([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]")

_REASONS = {
    "missing": "required field is missing",
    "dict_type": "must be a table",
    "model_type": "must be a table",
    "model_attributes_type": "must be a table",
    "tuple_type": "must be an array",
    "list_type": "must be an array",
    "string_type": "must be a string",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "path_type": "must be a path string",
    "url_scheme": "URL scheme must be http or https",
}
_COMPARISONS = {
    "greater_than_equal": ("ge", ">="),
    "greater_than": ("gt", ">"),
    "less_than_equal": ("le", "<="),
    "less_than": ("lt", "<"),
}
# Where each section's fields live, for "unknown field" hints.
_SECTIONS: tuple[tuple[type[BaseModel], str], ...] = (
    (Settings, "the top level"),
    (ServerSettings, "[server]"),
    (CacheSettings, "[cache]"),
    (FsOrigin, '[origins.<name>] with kind = "fs"'),
    (HttpOrigin, '[origins.<name>] with kind = "http"'),
    (RouteSettings, "[[routes]]"),
    (CachePolicy, "[routes.cache]"),
    (ImageSettings, "[images]"),
    (ImageLimits, "[images.limits]"),
    (AvifSettings, "[images.avif]"),
    (AuthSettings, "[auth]"),
    (RouteAuthSettings, "[routes.auth]"),
    (RouteAccessSettings, "[routes.access]"),
    (TrustedProxies, "[server.trusted_proxies]"),
    (AdminSettings, "[admin]"),
    (RedisSettings, "[redis]"),
    (DiskSettings, "[cache.disk]"),
    (PurgeSettings, "[purge]"),
)
_NO_INPUT_SHOWN = frozenset({"missing", "extra_forbidden", "union_tag_not_found"})


def _convert(detail: ErrorDetails) -> tuple[Loc, str]:
    kind = detail["type"]
    ctx = detail.get("ctx") or {}
    loc, end_type, discriminator = _walk(detail["loc"])
    if kind == "extra_forbidden":
        parent = _walk(detail["loc"][:-1])[1]
        return loc, _unknown_field(str(loc[-1]), parent)
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        field = discriminator or str(ctx.get("discriminator", "kind")).strip("'")
        tags = ", ".join(repr(tag) for tag in _variants(end_type, field))
        if kind == "union_tag_not_found":
            return (*loc, field), f"required field is missing (one of {tags})"
        return (*loc, field), f"must be one of {tags} (got {_show(ctx.get('tag'))})"
    if kind == "value_error":
        reason = detail["msg"].removeprefix("Value error, ")
        match = _PATH_PREFIXED.fullmatch(reason)
        if match:
            extra = tuple(
                int(index) if index else name for name, index in _PATH_TOKEN.findall(match[1])
            )
            loc, reason = (*loc, *extra), match[2]
    elif kind in _COMPARISONS:
        bound_name, symbol = _COMPARISONS[kind]
        reason = f"must be {symbol} {_number(ctx.get(bound_name))}"
    elif kind == "url_parsing":
        reason = f"must be an absolute http:// or https:// URL: {ctx.get('error', 'invalid')}"
    elif kind in _REASONS:
        reason = _REASONS[kind]
    else:
        message = detail["msg"]
        reason = message.replace("Input should be", "must be", 1)
    value = detail.get("input")
    if kind not in _NO_INPUT_SHOWN and _is_scalar(value) and "(got " not in reason:
        reason += f" (got {_show(value)})"
    return loc, reason


def _unknown_field(key: str, parent: Any) -> str:
    if not (isinstance(parent, type) and issubclass(parent, BaseModel)):
        return "unknown field"
    names = list(parent.model_fields)
    close = [name for name in names if name.lower() == key.lower()]
    close = close or difflib.get_close_matches(key, names, n=1, cutoff=0.75)
    if close:
        return f"unknown field (did you mean {close[0]!r}?)"
    homes = [
        where for model, where in _SECTIONS if model is not parent and key in model.model_fields
    ]
    if homes:
        return f"unknown field here ({key!r} belongs in {' or '.join(homes)})"
    return f"unknown field (expected one of: {', '.join(names)})"


def _walk(loc: Iterable[str | int]) -> tuple[Loc, Any, str | None]:
    """Follow a pydantic ``loc`` through the schema: drop discriminated-union tags (the
    ``http`` in ``origins.media.http.url``); also return the type found at the end and
    its discriminator field, if it is a discriminated union."""
    tp: Any = Settings
    discriminator: str | None = None
    cleaned: list[str | int] = []
    for part in loc:
        tp, discriminator = _unwrap(tp, discriminator)
        if discriminator and isinstance(part, str):
            variants = _variants(tp, discriminator)
            if part in variants:
                tp, discriminator = variants[part], None
                continue
        cleaned.append(part)
        discriminator = None
        origin = get_origin(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(part) if isinstance(part, str) else None
            tp = field.annotation if field else None
            discriminator = (
                field.discriminator if field and isinstance(field.discriminator, str) else None
            )
        elif origin is dict:
            tp = get_args(tp)[1]
        elif origin in (tuple, list):
            tp = get_args(tp)[0]
        else:
            tp = None
    tp, discriminator = _unwrap(tp, discriminator)
    return tuple(cleaned), tp, discriminator


def _unwrap(tp: Any, discriminator: str | None) -> tuple[Any, str | None]:
    """Strip ``Annotated`` (noting a discriminator) and ``X | None``."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            args = get_args(tp)
            for meta in args[1:]:
                found = getattr(meta, "discriminator", None)
                if isinstance(found, str):
                    discriminator = found
            tp = args[0]
        elif origin in (Union, types.UnionType):
            members = [arg for arg in get_args(tp) if arg is not type(None)]
            if len(members) != 1:
                return tp, discriminator
            tp = members[0]
        else:
            return tp, discriminator


def _variants(tp: Any, discriminator: str) -> dict[str, type[BaseModel]]:
    """Tag -> model for a discriminated union type."""
    variants: dict[str, type[BaseModel]] = {}
    if get_origin(tp) not in (Union, types.UnionType):
        return variants
    for member in get_args(tp):
        if isinstance(member, type) and issubclass(member, BaseModel):
            field = member.model_fields.get(discriminator)
            for tag in get_args(field.annotation) if field else ():
                variants[str(tag)] = member
    return variants


def _cross_references(data: dict[str, Any]) -> list[tuple[Loc, str]]:
    """The checks ``Settings``' model validator makes, done on the raw data so that they
    are reported together with field errors (pydantic skips model validators then)."""
    problems: list[tuple[Loc, str]] = []
    routes = data.get("routes")
    if isinstance(routes, list | tuple) and not routes:
        problems.append((("routes",), "at least one route is required"))
    # Route targets, group members, steering CDNs: the same function the model uses.
    problems += reference_problems(data)
    return problems


def _dedupe(problems: list[tuple[Loc, str]]) -> list[tuple[Loc, str]]:
    seen: set[tuple[str, str]] = set()
    unique: list[tuple[Loc, str]] = []
    for loc, reason in problems:
        key = (format_path(loc), reason)
        if key not in seen:
            seen.add(key)
            unique.append((loc, reason))
    return unique


# -- small helpers ---------------------------------------------------------------------


def _origin_error(reason: str) -> NoReturn:
    raise ConfigError([("--origin", reason)], CLI_SOURCE)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _show(value: Any, limit: int = 60) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    return f"a {type(value).__name__}"


def _one_line(text: str) -> str:
    return " ".join(text.splitlines())
