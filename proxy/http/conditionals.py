"""Conditional requests (RFC 9110 13)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Literal

from proxy.http.dates import parse_http_date

__all__ = [
    "NOT_MODIFIED_FIELDS",
    "evaluate_preconditions",
    "if_range_matches",
    "parse_etag_list",
    "stored_date",
    "strong_match",
    "weak_match",
]

# RFC 9110 15.4.5: the fields of the 200 that a 304 repeats, whoever makes the 304 (the
# cache answering a client, the fs origin answering the cache). Names as sent: bytes.
NOT_MODIFIED_FIELDS = frozenset(
    {b"cache-control", b"content-location", b"date", b"etag", b"expires", b"last-modified", b"vary"}
)

# RFC 9110 8.8.3: entity-tag = [ %s"W/" ] DQUOTE *etagc DQUOTE, etagc = %x21 / %x23-7E / obs-text.
# A comma is a valid etagc, so lists cannot simply be split on commas.
_ETAG = re.compile(r'(?:W/)?"[\x21\x23-\x7e\x80-\xff]*"')
_LIST_SEP = re.compile(r"[ \t]*(?:,|\Z)")


def parse_etag_list(value: str) -> list[str] | Literal["*"]:
    """Entity-tags of If-Match / If-None-Match, verbatim; malformed members are skipped."""
    v = value.strip(" \t")
    if v == "*":
        return "*"
    tags: list[str] = []
    pos, n = 0, len(v)
    while pos < n:
        c = v[pos]
        if c in " \t,":
            pos += 1
            continue
        m = _ETAG.match(v, pos)
        if m is not None:
            sep = _LIST_SEP.match(v, m.end())
            if sep is not None:
                tags.append(m[0])
                pos = sep.end()
                continue
        # Malformed member: resume after the next comma outside the bad token.
        comma = v.find(",", pos)
        if comma < 0:
            break
        pos = comma + 1
    return tags


def _opaque(tag: str) -> str:
    return tag[2:] if tag.startswith("W/") else tag


def weak_match(a: str, b: str) -> bool:
    """RFC 9110 8.8.3.2 weak comparison: opaque-tags equal, weakness ignored."""
    return _opaque(a) == _opaque(b)


def strong_match(a: str, b: str) -> bool:
    """RFC 9110 8.8.3.2 strong comparison: both strong and identical."""
    return a == b and not a.startswith("W/")


def _any_match(value: str, etag: str | None, *, strong: bool) -> bool:
    tags = parse_etag_list(value)
    if tags == "*":
        return True  # the caller holds a current representation
    if etag is None:
        return False
    match = strong_match if strong else weak_match
    return any(match(t, etag) for t in tags)


def evaluate_preconditions(
    method: str,
    headers: Mapping[str, str],
    etag: str | None,
    last_modified: float | None,
    *,
    date: float | None = None,
) -> int | None:
    """RFC 9110 13.2.2 evaluation order; 304, 412, or None to go on (Range comes next).

    ``headers`` has lower-case names; ``etag``/``last_modified`` describe the selected
    representation, which is assumed to exist. A cache passes its stored response's
    ``date``: If-Modified-Since is compared with it when there is no Last-Modified (RFC
    9111 4.3.2); If-Unmodified-Since never is (RFC 9110 13.1.4 wants a modification
    date). The caller skips this when the unconditional response would not be 2xx (RFC
    9110 13.2.1).
    """
    safe = method in ("GET", "HEAD")
    if_match = headers.get("if-match")
    if if_match is not None:  # step 1
        if not _any_match(if_match, etag, strong=True):
            return 412
    else:  # step 2: RFC 9110 13.1.4, ignored if invalid or nothing to compare with
        ius = parse_http_date(headers.get("if-unmodified-since"))
        if ius is not None and last_modified is not None and last_modified > ius:
            return 412
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:  # step 3
        if _any_match(if_none_match, etag, strong=False):
            return 304 if safe else 412
        return None
    if safe:  # step 4: RFC 9110 13.1.3, only without If-None-Match, only GET/HEAD
        ims = parse_http_date(headers.get("if-modified-since"))
        modified = last_modified if last_modified is not None else date
        if ims is not None and modified is not None and modified <= ims:
            return 304
    return None


def if_range_matches(value: str | None, etag: str | None, last_modified: float | None) -> bool:
    """RFC 9110 13.1.5: True when Range may be honoured (no If-Range, or its validator holds).

    An entity-tag needs a strong match, so weak tags never match; a date must equal
    Last-Modified exactly. Anything unparsable means "send the whole representation".
    """
    if value is None:
        return True
    v = value.strip(" \t")
    if v.startswith(('"', "W/")):
        return etag is not None and _ETAG.fullmatch(v) is not None and strong_match(v, etag)
    date = parse_http_date(v)
    return date is not None and last_modified is not None and date == last_modified


def stored_date(headers: Iterable[tuple[bytes, bytes]], received: float) -> float:
    """The Date of a stored response (its client fields), else when it was received:
    what If-Modified-Since is compared with when there is no Last-Modified (RFC 9111
    4.3.2)."""
    for name, value in headers:
        if name == b"date":
            date = parse_http_date(value.decode("latin-1"))
            return received if date is None else date
    return received
