"""Vary handling and secondary cache keys (RFC 9111 4.1, RFC 9110 12.5.3)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache

__all__ = ["normalize_accept_encoding", "parse_vary", "variant_key"]

# Content codings the proxy can store separately, in the fixed output order.
_CODINGS = ("br", "gzip", "zstd")
_QVALUE = re.compile(r"\d{1,5}(?:\.\d{0,10})?", re.ASCII)
_COMMA_WS = re.compile(r"[ \t]*,[ \t]*")
# Fields whose values compare case-insensitively (media ranges, language tags, charsets).
_CASELESS = frozenset({"accept", "accept-charset", "accept-language"})


@lru_cache(maxsize=1024)
def parse_vary(value: str | None) -> tuple[str, ...] | None:
    """Sorted, de-duplicated, lower-cased field names; None when any member is "*"."""
    if not value:
        return ()
    names = {n for n in (p.strip(" \t").lower() for p in value.split(",")) if n}
    if "*" in names:
        return None
    return tuple(sorted(names))


def _qvalue(params: str) -> float:
    """The q parameter (RFC 9110 12.4.2); absent means 1, malformed means 0 (not acceptable)."""
    for param in params.split(";"):
        key, eq, val = param.partition("=")
        if eq and key.strip(" \t").lower() == "q":
            val = val.strip(" \t")
            return min(float(val), 1.0) if _QVALUE.fullmatch(val) else 0.0
    return 1.0


@lru_cache(maxsize=4096)
def normalize_accept_encoding(value: str | None) -> str:
    """Acceptable codings among br/gzip/zstd, comma-joined in fixed order; "" = identity.

    An absent header yields "" too: RFC 9110 12.5.3 would allow any coding, but clients
    that omit it are usually the ones that cannot decode. "x-gzip" means gzip (RFC 9110
    8.4.1.3); "*" covers the codings not listed; the first mention of a coding wins.
    """
    if not value:
        return ""
    q: dict[str, float] = {}
    star: float | None = None
    for item in value.split(","):
        coding, _, params = item.partition(";")
        coding = coding.strip(" \t").lower()
        if coding == "x-gzip":
            coding = "gzip"
        if coding == "*":
            if star is None:
                star = _qvalue(params) if params else 1.0
        elif coding in _CODINGS and coding not in q:
            q[coding] = _qvalue(params) if params else 1.0
    default = star or 0.0
    return ",".join(c for c in _CODINGS if q.get(c, default) > 0)


def _normalize_value(name: str, value: str) -> str:
    v = _COMMA_WS.sub(",", value.strip(" \t"))
    if name in _CASELESS:
        v = v.lower()
    if "\\" in v or "\n" in v:  # keep the key injective even for values a parser let through
        v = v.replace("\\", "\\\\").replace("\n", "\\n")
    return v


def variant_key(names: tuple[str, ...], request_headers: Mapping[str, str]) -> str:
    """Stable secondary key: one "name=value" line per Vary field, bare "name" if absent.

    Accept-Encoding is keyed by its normalised form, which is also what goes to the origin,
    so requests the origin cannot tell apart share a variant (absent and empty included).
    """
    parts = []
    for name in names:
        raw = request_headers.get(name)
        if name == "accept-encoding":
            parts.append(f"{name}={normalize_accept_encoding(raw)}")
        elif raw is None:
            parts.append(name)
        else:
            parts.append(f"{name}={_normalize_value(name, raw)}")
    return "\n".join(parts)


def merge_vary(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Fold every Vary field into one (last), each token once, first spelling kept."""
    tokens: list[bytes] = []
    seen: set[bytes] = set()
    out: list[tuple[bytes, bytes]] = []
    for name, value in headers:
        if name == b"vary":
            for token in value.split(b","):
                token = token.strip()
                if token and token.lower() not in seen:
                    seen.add(token.lower())
                    tokens.append(token)
        else:
            out.append((name, value))
    if tokens:
        out.append((b"vary", b", ".join(tokens)))
    return out
