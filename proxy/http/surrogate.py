"""Surrogate keys (cache tags) from origin response fields, for purging by tag.

Four vendor spellings feed one namespace of keys:

    Surrogate-Key   Fastly: space separated. Keys may contain commas, so only
                    whitespace separates.
    xkey            Varnish vmod_xkey: space separated; varnish-modules 0.18 and later
                    also split on commas, so both do here. (There is no "X-Key" in the
                    vmod: it reads `xkey`, and a purge request names keys in `xkey` or
                    `xkey-purge`.)
    Cache-Tag       Cloudflare: comma separated.
    Edge-Cache-Tag  Akamai: comma separated.

Every line of every one of these fields counts, in the order given (Akamai reads only the
first Edge-Cache-Tag line; taking all of them can only purge more, never less).
Whitespace around a key is trimmed and empty keys are dropped. Keys are compared exactly
(case-sensitive, as Fastly and Akamai do): the same string that tagged a response purges it.

An origin controls these fields, so the result is bounded: at most `max_keys` distinct
keys (the first ones), each at most `max_key_length` bytes as UTF-8. Anything beyond is
dropped without error: a response with too many tags is still cacheable, it is merely
not purgeable by the dropped ones (Akamai and CloudFront do the same). Keys with control
characters are dropped too: they cannot be named again in a purge request header."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from types import MappingProxyType

__all__ = [
    "MAX_KEYS",
    "MAX_KEY_LENGTH",
    "STRIP_FIELDS",
    "SURROGATE_FIELDS",
    "surrogate_keys",
    "valid_key",
]

MAX_KEYS = 256
MAX_KEY_LENGTH = 1024

# One match per key; OWS is SP / HTAB (RFC 9110 5.6.3).
_SPACED = re.compile(r"[^ \t]+")
_SPACED_OR_COMMA = re.compile(r"[^ \t,]+")
_COMMA = re.compile(r"[^,]+")

# Lower-case field name -> how its value splits into keys (read-only: shared by all).
SURROGATE_FIELDS: Mapping[str, re.Pattern[str]] = MappingProxyType(
    {
        "surrogate-key": _SPACED,
        "xkey": _SPACED_OR_COMMA,
        "cache-tag": _COMMA,
        "edge-cache-tag": _COMMA,
    }
)

# Removed from responses to clients by default: they describe this cache's index, and
# a CDN in front would otherwise index the shield's keys as its own (the CDNs strip them
# too). Operators who want a CDN to see them can take names out of this set.
STRIP_FIELDS: frozenset[str] = frozenset(SURROGATE_FIELDS)

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def valid_key(key: str, max_key_length: int = MAX_KEY_LENGTH) -> bool:
    """Non-empty, no control characters, within the length bound (bytes as UTF-8)."""
    if not key or len(key) > max_key_length or _CONTROL.search(key):
        return False
    # Fields are text decoded as latin-1 or UTF-8; count bytes only when it can differ.
    return key.isascii() or len(key.encode("utf-8", "surrogatepass")) <= max_key_length


def surrogate_keys(
    headers: Iterable[tuple[str, str]],
    *,
    max_keys: int = MAX_KEYS,
    max_key_length: int = MAX_KEY_LENGTH,
) -> frozenset[str]:
    """The surrogate keys of a response, from its (name, value) field lines (any case).

    Takes the field lines rather than a joined dict: joining repeats with ", " would glue
    a comma into Fastly keys, which only whitespace separates."""
    keys: set[str] = set()
    if max_keys <= 0:
        return frozenset()
    for name, value in headers:
        splitter = SURROGATE_FIELDS.get(name.lower())
        if splitter is None:
            continue
        # finditer is lazy: a huge value costs no more than the keys it yields.
        for match in splitter.finditer(value):
            key = match.group().strip(" \t")
            if not valid_key(key, max_key_length):
                continue
            keys.add(key)
            if len(keys) >= max_keys:
                return frozenset(keys)
    return frozenset(keys)
