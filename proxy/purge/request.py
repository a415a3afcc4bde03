"""Purge requests, parsed and validated: plain inputs in, a `PurgeRequest` or a
`PurgeError` (status + message) out. Nothing here touches the cache.

Two ways in:

  * ``POST /_purge`` with a JSON body (`parse_purge_body`)::

        {"urls": [], "prefixes": [], "tags": [], "host": null, "all": false, "soft": false}

    - urls: absolute http(s) URLs, or paths when "host" is given; each becomes the exact
      cache key (host + normalised path [+ "?" query], as proxy.pipeline builds it), so
      its Vary and image variants go with it (`Cache.invalidate`).
    - prefixes: paths ("/videos/") or absolute URLs ("https://host/videos/"). A path
      applies to "host" when given, else to every host. Each becomes a ban
      (proxy/cache/bans.py: whole-segment matching; a trailing "/" means "under").
      Purging "/" (everything, or a whole host) needs "all": true.
    - tags: surrogate keys (proxy/http/surrogate.py).
    - all: alone, purge everything; with prefixes, the confirmation that a root prefix
      is meant. With nothing that needs it, it is refused: a flag that silently did
      nothing, or silently purged everything, would both surprise.
    - soft: mark stale (revalidate on next use) instead of removing.

  * ``PURGE <url>`` (Varnish, Fastly): `parse_purge_method`. The request's own URL is
    purged; ``X-Purge-Soft: 1`` or ``Fastly-Soft-Purge: 1`` make it soft, and an
    ``xkey-purge`` or ``xkey`` request header purges those surrogate keys instead of the
    URL (as vmod_xkey's example VCL does).

Both need `check_admin` first: ``Authorization: Bearer <token>`` against the configured
admin token(s) in constant time (401 + WWW-Authenticate when no bearer credential, 403
when it is wrong); with no token configured, loopback clients only (config/admin.py)."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from proxy.cache.keys import absolute_url, url_key
from proxy.http.authority import BadAuthority, parse_authority
from proxy.http.paths import BadPath, normalize_path
from proxy.http.surrogate import MAX_KEY_LENGTH, surrogate_keys, valid_key

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_PREFIXES",
    "MAX_TAGS",
    "MAX_URLS",
    "MAX_URL_LENGTH",
    "InvalidItem",
    "PrefixPurge",
    "PurgeError",
    "PurgeRequest",
    "check_admin",
    "is_loopback",
    "key_of_url",
    "parse_purge_body",
    "parse_purge_method",
    "read_body",
]

MAX_BODY_BYTES = 4 * 1024 * 1024
MAX_URL_LENGTH = 8192
MAX_URLS = 100_000
MAX_TAGS = 10_000
# Each prefix is a ban, and the ban list holds 10,000 before it collapses into a
# conservative floor (proxy/cache/bans.py): one request must not get near that.
MAX_PREFIXES = 1_000

Receive = Callable[[], Awaitable[dict[str, Any]]]

SOFT_HEADERS = ("x-purge-soft", "fastly-soft-purge")
TAG_HEADERS = ("xkey-purge", "xkey")
_TRUE = frozenset({"1", "true", "yes", "on"})
_WWW_AUTHENTICATE = ((b"www-authenticate", b'Bearer realm="edgeshield"'),)
_AUTHORITY_END = re.compile(r"[/?#]")


@dataclass(frozen=True, slots=True)
class PurgeError:
    status: int
    message: str
    headers: tuple[tuple[bytes, bytes], ...] = ()


@dataclass(frozen=True, slots=True)
class PrefixPurge:
    host: str | None  # None: every host
    prefix: str  # a normalised path, "/..."

    @property
    def url(self) -> str:
        """As a CDN takes it: https://host/prefix, or the bare path for every host."""
        return f"https://{self.host}{self.prefix}" if self.host is not None else self.prefix


@dataclass(frozen=True, slots=True)
class PurgeRequest:
    keys: tuple[str, ...] = ()  # exact cache keys (host + path [+ "?" query])
    prefixes: tuple[PrefixPurge, ...] = ()  # bans to add
    tags: tuple[str, ...] = ()  # surrogate keys
    soft: bool = False
    # A ban of "/" on every host is among `prefixes`.
    everything: bool = False
    # `keys` as absolute URLs (the scheme as given, https for paths), for CDN fan-out.
    urls: tuple[str, ...] = ()

    def cdn_targets(self) -> dict[str, Any]:
        """The arguments of `proxy.cdn_purge.base.Targets.of` for this purge: URLs,
        tags, prefixes other than a root, host roots as `hosts`, soft, everything."""
        return {
            "urls": self.urls,
            "tags": self.tags,
            "prefixes": tuple(p.url for p in self.prefixes if p.prefix != "/"),
            "hosts": tuple(p.host for p in self.prefixes if p.prefix == "/" and p.host),
            "soft": self.soft,
            "everything": self.everything,
        }


# -- the JSON body -----------------------------------------------------------------------

_Url = Annotated[str, StringConstraints(max_length=MAX_URL_LENGTH)]
_Tag = Annotated[str, StringConstraints(max_length=MAX_KEY_LENGTH * 4)]  # bytes checked later


class _Body(BaseModel):
    # strict: "all": 1 or "urls": "x" are errors, not coerced; unknown fields are errors
    # (a typo such as "prefix" must not turn into an empty purge that reports success).
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, hide_input_in_errors=True)

    urls: Annotated[tuple[_Url, ...], Field(max_length=MAX_URLS)] = ()
    prefixes: Annotated[tuple[_Url, ...], Field(max_length=MAX_PREFIXES)] = ()
    tags: Annotated[tuple[_Tag, ...], Field(max_length=MAX_TAGS)] = ()
    host: Annotated[str, StringConstraints(max_length=1024)] | None = None
    all: bool = False
    soft: bool = False


class InvalidItem(ValueError):
    """One invalid item; becomes a 400 naming the field."""


def parse_purge_body(body: bytes, content_type: str | None = None) -> PurgeRequest | PurgeError:
    """Validate a ``POST /_purge`` body. `content_type`: the request's Content-Type,
    which must be JSON when present."""
    if len(body) > MAX_BODY_BYTES:
        return PurgeError(413, f"body larger than {MAX_BODY_BYTES} bytes")
    if content_type is not None and not _is_json(content_type):
        return PurgeError(415, "Content-Type must be application/json")
    try:
        data = _Body.model_validate_json(body)
    except ValidationError as exc:
        return PurgeError(400, _describe(exc))
    try:
        host = _clean_host(data.host) if data.host is not None else None
        if data.host is not None and host is None:
            raise InvalidItem(f"host: not a host name: {_show(data.host)}")
        targets = [_item("urls", i, lambda u: _target(u, host), u) for i, u in enumerate(data.urls)]
        prefixes = [
            _item("prefixes", i, lambda p: _prefix(p, host), p) for i, p in enumerate(data.prefixes)
        ]
        tags = [_item("tags", i, _tag, t) for i, t in enumerate(data.tags)]
    except InvalidItem as exc:
        return PurgeError(400, str(exc))
    roots = [i for i, p in enumerate(prefixes) if p.prefix == "/"]
    if roots and not data.all:
        where = ", ".join(f"prefixes[{i}]" for i in roots[:3])
        what = "every host" if any(prefixes[i].host is None for i in roots) else "a whole host"
        return PurgeError(400, f'{where}: purging {what} needs "all": true')
    # key -> absolute URL, the first spelling of each key kept
    urls = {key: f"{scheme}://{key}" for scheme, key in reversed(targets)}
    nothing_else = not (urls or prefixes or tags)
    if data.all and nothing_else:
        prefixes = [PrefixPurge(None, "/")]
    elif data.all and not roots:
        return PurgeError(
            400,
            'all: true purges everything when alone, or confirms a prefix "/"; '
            "this request has neither (drop it, or send it without other fields)",
        )
    elif nothing_else:
        return PurgeError(400, 'nothing to purge: give urls, prefixes, tags, or "all": true')
    return PurgeRequest(
        keys=tuple(dict.fromkeys(key for _, key in targets)),
        prefixes=tuple(dict.fromkeys(prefixes)),
        tags=tuple(dict.fromkeys(tags)),
        soft=data.soft,
        everything=any(p.host is None and p.prefix == "/" for p in prefixes),
        urls=tuple(urls[key] for key in dict.fromkeys(key for _, key in targets)),
    )


def _item(field: str, index: int, parse: Callable[[str], Any], value: str) -> Any:
    try:
        return parse(value)
    except InvalidItem as exc:
        raise InvalidItem(f"{field}[{index}]: {exc} ({_show(value)})") from None


def _show(value: str) -> str:
    """A bad value, quoted and cut: enough to find it, not a megabyte echoed back."""
    text = value if len(value) <= 80 else value[:77] + "..."
    return repr(text)


def _describe(exc: ValidationError) -> str:
    parts: list[str] = []
    errors = exc.errors(include_url=False, include_input=False)
    for error in errors[:3]:
        loc = _loc(error["loc"])
        kind = error["type"]
        if kind == "extra_forbidden":
            parts.append(f"unknown field {loc!r} (expected urls, prefixes, tags, host, all, soft)")
        elif kind == "json_invalid":
            parts.append(f"body is not valid JSON: {error['msg'].removeprefix('Invalid JSON: ')}")
        elif kind == "model_type":
            parts.append("body must be a JSON object")
        elif kind == "too_long":
            limit = (error.get("ctx") or {}).get("max_length")
            parts.append(f"{loc}: at most {limit} items")
        else:
            parts.append(f"{loc}: {error['msg']}")
    if len(errors) > 3:
        parts.append(f"and {len(errors) - 3} more")
    return "; ".join(parts)


def _loc(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _is_json(content_type: str) -> bool:
    media = content_type.partition(";")[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def _tag(value: str) -> str:
    tag = value.strip(" \t")
    if not valid_key(tag):
        raise InvalidItem(f"a tag is 1 to {MAX_KEY_LENGTH} bytes without control characters")
    return tag


def _prefix(value: str, host: str | None) -> PrefixPurge:
    if not value:
        raise InvalidItem('empty; "/" purges everything (with "all": true)')
    if value.startswith("/"):
        target_host = host
        path = value
    else:
        _, target_host, path = _split_absolute(value)
    path = path.partition("#")[0]
    if "?" in path:
        raise InvalidItem("a prefix is a path, without a query")
    return PrefixPurge(target_host, _path(path or "/"))


def key_of_url(url: str, host: str | None = None) -> str:
    return _target(url, host)[1]


def _target(url: str, host: str | None) -> tuple[str, str]:
    """The cache key of `url`: an absolute http(s) URL, or a path on `host` (a host as
    proxy.http.authority returns it). Raises InvalidItem (a ValueError) when it has no
    host or is malformed. `_target` also returns the scheme ("https" for a path).

    Path normalisation is the request path's (proxy/http/paths.py). The query is kept as
    written, since cache keys keep the client's query bytes; characters a client could
    not send raw (space, controls, non-ASCII) are percent-encoded as UTF-8, as browsers
    send them."""
    if not url:
        raise InvalidItem("empty")
    if url.startswith("/"):
        if host is None:
            raise InvalidItem('a path needs "host" (or give an absolute http(s) URL)')
        scheme, rest = "https", url
    else:
        scheme, host, rest = _split_absolute(url)
    rest = rest.partition("#")[0]
    path, _, query = rest.partition("?")
    path = _path(path or "/")
    query = _encode_query(query)
    return scheme, url_key(host, path, query)


def _split_absolute(url: str) -> tuple[str, str, str]:
    """(scheme, host, the rest from the path on) of an http(s) URL."""
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in ("http", "https"):
        raise InvalidItem("must be a path starting with '/' or an http(s):// URL")
    end = _AUTHORITY_END.search(rest)
    authority, rest = (rest[: end.start()], rest[end.start() :]) if end else (rest, "")
    if "@" in authority:
        raise InvalidItem("user information in a URL is not accepted")
    host = _clean_host(authority)
    if host is None:
        raise InvalidItem("no usable host")
    if not rest.startswith("/"):
        rest = "/" + rest  # "https://h?q" is "/?q" on h
    return scheme, host, rest


def _path(raw: str) -> str:
    try:
        return normalize_path(raw)
    except BadPath as exc:
        raise InvalidItem(f"bad path ({exc.reason})") from None


def _encode_query(query: str) -> str:
    if all("!" <= c <= "~" for c in query):
        return query
    out: list[str] = []
    for c in query:
        if "!" <= c <= "~":
            out.append(c)
        else:
            data = c.encode("utf-8", "surrogatepass")
            out.append("".join(f"%{b:02X}" for b in data))
    return "".join(out)


def _clean_host(text: str) -> str | None:
    try:
        return parse_authority(text.strip()).host
    except BadAuthority:
        return None


# -- PURGE <url> ---------------------------------------------------------------------------


def parse_purge_method(
    host: str, path: str, query: str, headers: Mapping[str, str]
) -> PurgeRequest | PurgeError:
    """A ``PURGE`` request: `host` (Host field or proxy.request's host), the raw or
    normalised `path`, the raw `query`, lower-case `headers`."""
    soft = any(headers.get(name, "").strip().lower() in _TRUE for name in SOFT_HEADERS)
    for name in TAG_HEADERS:
        value = headers.get(name)
        if value is not None:
            tags = surrogate_keys([("xkey", value)], max_keys=MAX_TAGS)
            if not tags:
                return PurgeError(400, f"{name}: no surrogate keys")
            return PurgeRequest(tags=tuple(sorted(tags)), soft=soft)
    clean = _clean_host(host)
    if clean is None:
        return PurgeError(400, "PURGE needs a Host naming the site to purge")
    try:
        key = key_of_url(f"{path}?{query}" if query else path, clean)
    except InvalidItem as exc:
        return PurgeError(400, f"PURGE {_show(path)}: {exc}")
    return PurgeRequest(keys=(key,), soft=soft, urls=(absolute_url(key),))


# -- who may purge -------------------------------------------------------------------------


def check_admin(
    authorization: str | None, tokens: Sequence[str], *, loopback: bool
) -> PurgeError | None:
    """None when the request may use the admin endpoints (purge among them).

    `tokens`: the configured admin token(s), several during a rotation; empty when none
    is configured, and then only loopback clients pass (`loopback`: the peer address is
    a loopback one; never derive it from forwarded fields). The presented token is
    hashed and compared with every configured token's hash with hmac.compare_digest,
    all of them, so the time taken says nothing about either length or content."""
    if not tokens:
        if loopback:
            return None
        return PurgeError(403, "no admin token is configured: loopback clients only")
    given = _bearer(authorization)
    if given is None:
        return PurgeError(401, "a bearer token is required", _WWW_AUTHENTICATE)
    digest = hashlib.sha256(_wire_bytes(given)).digest()
    ok = False
    for token in tokens:
        expected = hashlib.sha256(token.encode("utf-8")).digest()
        ok |= hmac.compare_digest(digest, expected)
    return None if ok else PurgeError(403, "the bearer token is not valid")


def _bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, credentials = authorization.strip().partition(" ")
    # Auth schemes are case-insensitive (RFC 9110 11.1).
    if scheme.lower() != "bearer":
        return None
    token = credentials.strip(" \t")
    return token or None


def _wire_bytes(text: str) -> bytes:
    # Header values arrive decoded as latin-1 (proxy/request.py): back to the sent bytes.
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


def is_loopback(client: str) -> bool:
    """The ASGI peer address is 127.0.0.0/8, ::1 or an IPv4-mapped loopback. Anything
    unparseable (a Unix socket peer is "") is not: fail closed."""
    try:
        address = ipaddress.ip_address(client.partition("%")[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


# -- the body ------------------------------------------------------------------------------


async def read_body(
    receive: Receive, headers: Mapping[str, str], limit: int = MAX_BODY_BYTES
) -> bytes | PurgeError:
    """Read an ASGI request body of at most `limit` bytes; 413 as soon as it is known
    to be larger (by Content-Length, or while reading) without buffering the rest."""
    length = headers.get("content-length")
    if length is not None and length.strip().isdigit() and int(length) > limit:
        return PurgeError(413, f"body larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        kind = message.get("type")
        if kind == "http.disconnect":
            return PurgeError(400, "the client went away before the body was complete")
        if kind != "http.request":
            continue
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return PurgeError(413, f"body larger than {limit} bytes")
        if chunk:
            chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)
