"""Cache-Control parsing (RFC 9111 5.2) and targeted fields such as CDN-Cache-Control
(RFC 9213: RFC 8941 Dictionaries, parsed with http-sfv)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

import http_sfv

__all__ = [
    "EMPTY",
    "MAX_DELTA_SECONDS",
    "CacheControl",
    "parse_cache_control",
    "parse_targeted",
]

# RFC 9111 1.2.1: delta-seconds too large to represent are taken as 2**31.
MAX_DELTA_SECONDS = 2**31


@dataclass(frozen=True, slots=True)
class CacheControl:
    max_age: int | None = None
    s_maxage: int | None = None
    no_store: bool = False
    no_cache: bool = False
    private: bool = False
    public: bool = False
    must_revalidate: bool = False
    proxy_revalidate: bool = False
    immutable: bool = False
    no_transform: bool = False
    stale_while_revalidate: int | None = None
    stale_if_error: int | None = None
    # A freshness directive (max-age, s-maxage) was malformed or repeated with different
    # values: RFC 9111 4.2.1 lets the cache treat the response as stale, which we do.
    invalid: bool = False


EMPTY = CacheControl()

# Qualified no-cache="f" / private="f" (RFC 9111 5.2.2.4, 5.2.2.7) are treated as the
# unqualified forms: stricter, and a shared cache has no use for storing a partial response.
_FLAGS = frozenset(
    {
        "no-store",
        "no-cache",
        "private",
        "public",
        "must-revalidate",
        "proxy-revalidate",
        "immutable",
        "no-transform",
    }
)
_FRESHNESS = frozenset({"max-age", "s-maxage"})
_STALE = frozenset({"stale-while-revalidate", "stale-if-error"})


def _delta_seconds(arg: str | None) -> int | None:
    """RFC 9111 1.2.2: 1*DIGIT, capped at 2**31; None if malformed."""
    if not arg or not (arg.isascii() and arg.isdigit()):
        return None
    if len(arg) > 10:  # also keeps int() clear of the 4300-digit conversion limit
        return MAX_DELTA_SECONDS
    return min(int(arg), MAX_DELTA_SECONDS)


def _unquote(s: str) -> str:
    """Body of a quoted-string (RFC 9110 5.6.4), tolerating a missing closing quote."""
    out = []
    i, n = 1, len(s)
    while i < n:
        c = s[i]
        if c == "\\" and i + 1 < n:
            out.append(s[i + 1])
            i += 2
            continue
        if c == '"':
            break
        out.append(c)
        i += 1
    return "".join(out)


def _split_quoted(value: str) -> Iterator[str]:
    """Split a list on commas outside quoted-strings (private="a, b" is one directive)."""
    start = 0
    in_quote = False
    i, n = 0, len(value)
    while i < n:
        c = value[i]
        if in_quote:
            if c == "\\":
                i += 1
            elif c == '"':
                in_quote = False
        elif c == '"':
            in_quote = True
        elif c == ",":
            yield value[start:i]
            start = i + 1
        i += 1
    yield value[start:]


@lru_cache(maxsize=4096)
def parse_cache_control(value: str | None) -> CacheControl:
    """Parse a (comma-joined) Cache-Control field value; never raises.

    Names are case-insensitive; arguments may be tokens or quoted-strings (RFC 9111 5.2:
    recipients ought to accept both forms); unknown directives are ignored (RFC 9111 5.2.3).
    A malformed stale-* argument counts as 0 and repeated stale-* values keep the smallest,
    so a broken header never widens the window in which stale content is served.
    """
    if not value:
        return EMPTY
    items = value.split(",") if '"' not in value else _split_quoted(value)
    flags: set[str] = set()
    fresh: dict[str, int] = {}
    stale: dict[str, int] = {}
    invalid = False
    for item in items:
        name, eq, arg = item.partition("=")
        name = name.strip(" \t").lower()
        if not name:
            continue
        if eq:
            arg = arg.strip(" \t")
            if arg.startswith('"'):
                arg = _unquote(arg)
        if name in _FLAGS:
            flags.add(name)
        elif name in _FRESHNESS:
            secs = _delta_seconds(arg) if eq else None
            if secs is None:
                invalid = True
            elif name not in fresh:
                fresh[name] = secs  # RFC 9111 4.2.1: the first occurrence is the one kept
            elif fresh[name] != secs:
                invalid = True
        elif name in _STALE:
            secs = (_delta_seconds(arg) if eq else None) or 0
            stale[name] = min(stale.get(name, secs), secs)
    if not (flags or fresh or stale or invalid):
        return EMPTY
    return _directives(flags, fresh | stale, invalid=invalid)


def _directives(flags: set[str], seconds: dict[str, int], *, invalid: bool = False) -> CacheControl:
    """The parsed value from its valueless directives and its delta-seconds ones."""
    return CacheControl(
        max_age=seconds.get("max-age"),
        s_maxage=seconds.get("s-maxage"),
        no_store="no-store" in flags,
        no_cache="no-cache" in flags,
        private="private" in flags,
        public="public" in flags,
        must_revalidate="must-revalidate" in flags,
        proxy_revalidate="proxy-revalidate" in flags,
        immutable="immutable" in flags,
        no_transform="no-transform" in flags,
        stale_while_revalidate=seconds.get("stale-while-revalidate"),
        stale_if_error=seconds.get("stale-if-error"),
        invalid=invalid,
    )


# Surrogate-Control (W3C Edge Architecture, 2001) predates RFC 9213 and has the
# Cache-Control syntax; every other targeted field is an RFC 9213 Dictionary.
_LEGACY_TARGETED = frozenset({"surrogate-control"})
_QUALIFIABLE = frozenset({"no-cache", "private"})  # may carry an sf-string field list


def parse_targeted(name: str, value: str) -> CacheControl | None:
    """A targeted cache-control field (RFC 9213) by its lower-case name; None when the
    cache must ignore it (empty or invalid), never raises."""
    if name in _LEGACY_TARGETED:
        cc = parse_cache_control(value)
        return None if cc.invalid or not value.strip(" \t,") else cc
    return _parse_dictionary(value)


@lru_cache(maxsize=4096)
def _parse_dictionary(value: str) -> CacheControl | None:
    """RFC 9213 2.1: an RFC 8941 Dictionary of directives. A parse error, or a known
    directive with a value of the wrong type (max-age="10000", no-store=?0), makes the
    whole field invalid, and an invalid field is ignored as if absent. Unknown
    directives and parameters are ignored."""
    parsed = http_sfv.Dictionary()
    try:
        parsed.parse(value.encode("latin-1"))
    except (ValueError, UnicodeEncodeError):  # empty counts as a parse error too
        return None
    flags: set[str] = set()
    seconds: dict[str, int] = {}
    for key, member in parsed.items():
        if key not in _FLAGS and key not in _FRESHNESS and key not in _STALE:
            continue
        arg = member.value if isinstance(member, http_sfv.Item) else None
        if key in _FLAGS and (arg is True or (key in _QUALIFIABLE and isinstance(arg, str))):
            flags.add(key)
        elif key not in _FLAGS and type(arg) is int and arg >= 0:  # bool is an int too
            seconds[key] = min(arg, MAX_DELTA_SECONDS)
        else:
            return None
    return _directives(flags, seconds)
