"""Cache keys: the one place a key is made, and the one place it is read back.

A URL key is ``host + path [+ "?" + query]``: the validated, lower-case host without
port (proxy/http/authority.py), the normalised path (always starting with "/") and the
client's query bytes minus token parameters. Derived entries append a NUL and a tag to
their URL key, so no URL key can ever equal a derived one (a URL key holds no NUL):

    <url>                        the object (or its Vary index)
    <url> NUL <vary key>         one Vary variant (proxy/http/vary.py variant_key)
    <url> NUL image NUL <opts>   an image variant of the source <url> (proxy/variants.py)
    <url> NUL slice=<n>          slice n of a sliced object (proxy/slices/)
    <url> NUL slices             the sliced object's record
    <key> NUL encoding=<coding>  the stored entry at <key> in another content coding
                                 (proxy/compress.py; "identity": an origin's coding undone)

Redis and disk hold these strings, so they stay byte-identical across releases.
"""

from __future__ import annotations

import re

SEPARATOR = "\x00"
IMAGE_TAG = f"{SEPARATOR}image{SEPARATOR}"
RECORD_TAG = f"{SEPARATOR}slices"
# A query as cache keys keep it: visible ASCII only (no space, control byte or NUL), so
# a query can never spell a separator or a tag.
_QUERY = re.compile(r"[\x21-\x7e]*")


class BadKey(ValueError):
    """A part that must never reach a key (e.g. a control byte in the query); request
    parsing refuses such a query first (proxy/request.py)."""


def url_key(host: str, path: str, query: str = "") -> str:
    """The key of a URL. `host` is validated, `path` normalised (both by their parsers);
    `query` is checked here because it is kept as the client sent it."""
    if not valid_query(query):
        raise BadKey("query holds a space or a control byte")
    return f"{host}{path}?{query}" if query else f"{host}{path}"


def valid_query(query: str) -> bool:
    return _QUERY.fullmatch(query) is not None


def vary_key(key: str, variant: str) -> str:
    """One Vary variant of `key`; `variant` from proxy.http.vary.variant_key."""
    return f"{key}{SEPARATOR}{variant}"


def image_key(source_key: str, variant: str) -> str:
    return f"{source_key}{IMAGE_TAG}{variant}"


def slice_key(key: str, index: int) -> str:
    return f"{key}{SEPARATOR}slice={index}"


def record_key(key: str) -> str:
    return key + RECORD_TAG


def encoded_key(key: str, coding: str) -> str:
    """The entry stored at `key` (a URL key or a Vary variant's) in `coding`."""
    return f"{key}{SEPARATOR}encoding={coding}"


# -- reading keys back (purge, bans, the admin page) -----------------------------------


def url_of(key: str) -> str:
    """The URL key a storage key belongs to (itself for a URL key)."""
    i = key.find(SEPARATOR)
    return key if i < 0 else key[:i]


def split_url(url: str) -> tuple[str, str]:
    """(host, path [+ "?" query]) of a URL key. A validated host holds no "/", so the
    first "/" starts the path."""
    i = url.find("/")
    if i < 0:
        return url, "/"
    return url[:i], url[i:]


def absolute_url(key: str, scheme: str = "https") -> str:
    """The URL a key stands for, as purge reports and the admin page show it."""
    return f"{scheme}://{url_of(key)}"
