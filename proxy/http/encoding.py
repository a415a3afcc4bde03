"""Content codings (RFC 9110 8.4, 12.5.3): what a client accepts, what may be compressed.

Pure functions. `negotiate` picks the coding a response is sent in from Accept-Encoding;
`Policy` says whether a response of some type, size and Cache-Control may be compressed
at all; `encoded_etag` is the validator of an encoded form."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

__all__ = [
    "Policy",
    "acceptable",
    "content_coding",
    "encoded_etag",
    "negotiate",
    "parse_accept_encoding",
    "type_matches",
]

# What this cache can make itself, in the order that wins when q-values tie.
PREFERENCE = ("br", "zstd", "gzip")
# Longer fields are parsed but not memoised (the memo is bounded in entries, so in bytes).
MEMO_VALUE = 256
# Members looked at; what follows is ignored (a field is bounded by the header limit, this
# bounds the work and the table).
MAX_MEMBERS = 64
_QVALUE = re.compile(r"(?:0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?)", re.ASCII)
_LOOSE_Q = re.compile(r"[0-9]{1,5}(?:\.[0-9]{0,10})?", re.ASCII)
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+", re.ASCII)
NEVER = frozenset({"text/event-stream"})


def _q(params: str) -> float:
    """The q parameter; absent means 1. A malformed one means 0 (not acceptable) unless
    it is a plain number, which is clamped to [0, 1] (q=2 is read as 1, as browsers'
    peers do)."""
    for param in params.split(";"):
        name, eq, value = param.partition("=")
        if eq and name.strip(" \t").lower() == "q":
            value = value.strip(" \t")
            if _QVALUE.fullmatch(value):
                return float(value)
            return min(float(value), 1.0) if _LOOSE_Q.fullmatch(value) else 0.0
    return 1.0


def _parse(value: str) -> tuple[tuple[str, float], ...]:
    seen: dict[str, float] = {}
    for member in value.split(",", MAX_MEMBERS)[:MAX_MEMBERS]:
        coding, _, params = member.partition(";")
        coding = coding.strip(" \t").lower()
        if coding == "x-gzip":  # RFC 9110 8.4.1.3
            coding = "gzip"
        if coding and _TOKEN.fullmatch(coding) and coding not in seen:
            seen[coding] = _q(params)  # the first mention of a coding wins
    return tuple(seen.items())


@lru_cache(maxsize=4096)
def _parse_memo(value: str) -> tuple[tuple[str, float], ...]:
    return _parse(value)


def parse_accept_encoding(value: str) -> dict[str, float]:
    """coding -> q for each member ("*" and "identity" included), lower-cased."""
    return dict(_parse_memo(value) if len(value) <= MEMO_VALUE else _parse(value))


def _weight(table: dict[str, float], coding: str) -> float:
    if coding in table:
        return table[coding]
    if "*" in table:
        return table["*"]
    return 1.0 if coding == "identity" else 0.0


def acceptable(value: str | None, coding: str) -> bool:
    """May a response in `coding` go to a client that sent `value`? An absent field
    allows only identity here: RFC 9110 would allow any coding, but clients that omit
    it are usually the ones that cannot decode (proxy/http/vary.py keys them so too)."""
    coding = coding.lower()
    if coding == "identity":
        return True  # RFC 9110 allows 406; every CDN answers identity instead
    if value is None:
        return False
    return _weight(parse_accept_encoding(value), coding) > 0


def negotiate(value: str | None, offered: tuple[str, ...] = PREFERENCE) -> str | None:
    """The coding to send among `offered` (in preference order for ties), or None for
    identity: no field, nothing acceptable (even with identity;q=0), or identity
    weighted above every offer."""
    if not value:
        return None
    table = parse_accept_encoding(value)
    best, best_q = None, 0.0
    for coding in offered:
        q = _weight(table, coding)
        if q > best_q:
            best, best_q = coding, q
    # identity outranks the best offer only when the client weighted it explicitly
    identity = table.get("identity", table.get("*", 0.0))
    if best is None or identity > best_q:
        return None
    return best


def content_coding(value: str | None) -> str | None:
    """The coding a Content-Encoding field names (lower-cased, several joined by ", "),
    or None for none or identity."""
    if not value:
        return None
    parts = [p.strip(" \t").lower() for p in value.split(",")]
    parts = [p for p in parts if p and p != "identity"]
    return ", ".join(parts) or None


def encoded_etag(etag: str | None, coding: str) -> str | None:
    """The validator of an encoded form: the coding inside the quotes (`"v1"` ->
    `"v1-gzip"`, weakness kept), as Apache's mod_deflate does, so that If-None-Match
    tells the forms apart."""
    if etag is None or not etag.endswith('"'):
        return None
    return f'{etag[:-1]}-{coding}"'


@lru_cache(maxsize=1024)
def type_matches(content_type: str | None, types: tuple[str, ...]) -> bool:
    """Is the media type of `content_type` listed in `types` ("type/subtype", "type/*"
    or "type/*+suffix")?"""
    if not content_type:
        return False
    media = content_type.partition(";")[0].strip(" \t").lower()
    kind, slash, sub = media.partition("/")
    if not slash or media in NEVER:
        return False
    for pattern in types:
        pkind, _, psub = pattern.partition("/")
        if pkind != kind:
            continue
        if psub == sub or psub == "*":
            return True
        if psub.startswith("*+") and sub.endswith(psub[1:]) and len(sub) > len(psub) - 1:
            return True
    return False


def no_transform(cache_control: str | None) -> bool:
    """RFC 9111 5.2.2.6: a response with no-transform is never compressed by us."""
    if not cache_control:
        return False
    return any(
        d.strip(" \t").partition("=")[0].lower() == "no-transform" for d in cache_control.split(",")
    )


@dataclass(frozen=True, slots=True)
class Policy:
    """One route's compression rules (config/compression.py, resolved per route)."""

    types: tuple[str, ...]
    min_bytes: int
    max_bytes: int
    codings: tuple[str, ...]

    def may_apply(self, content_type: str | None, size: int) -> bool:
        """Might a stored 200 of this type and size be compressed (the hit fast path's
        cheap test; `applies` decides)?"""
        return self.min_bytes <= size <= self.max_bytes and type_matches(content_type, self.types)

    def applies(
        self,
        status: int,
        content_type: str | None,
        content_encoding: str | None,
        cache_control: str | None,
        size: int | None,
    ) -> bool:
        """May such a response be compressed? `size` None: not known yet (no
        Content-Length), decided again when the body is in."""
        return (
            status == 200
            and content_coding(content_encoding) is None
            and (size is None or self.min_bytes <= size <= self.max_bytes)
            and type_matches(content_type, self.types)
            and not no_transform(cache_control)
        )
