"""Cache-Status response field members (RFC 9211)."""

from __future__ import annotations

import math
import re
from functools import lru_cache

__all__ = ["CACHE_NAME", "FWD_REASONS", "forward", "fresh_hit", "hit"]

CACHE_NAME = "edgeshield"
# RFC 9211 2.2.
FWD_REASONS = frozenset(
    {"bypass", "method", "uri-miss", "vary-miss", "miss", "request", "stale", "partial"}
)
# RFC 8941 3.3.4 sf-token; anything else is sent as an sf-string.
_TOKEN = re.compile(r"[A-Za-z*][!#$%&'*+\-.^_`|~0-9A-Za-z:/]*")


@lru_cache(maxsize=256)
def _detail(detail: str) -> str:
    """RFC 9211 2.8: detail is an sf-token or sf-string (RFC 8941 3.3.3, printable ASCII)."""
    if _TOKEN.fullmatch(detail):
        return f"; detail={detail}"
    clean = "".join(c for c in detail if " " <= c <= "~")
    return '; detail="' + clean.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _ttl(ttl: float | None) -> str:
    # RFC 9211 2.5: an sf-integer; non-finite input is simply left out.
    return f"; ttl={math.floor(ttl)}" if ttl is not None and math.isfinite(ttl) else ""


def hit(ttl: float, detail: str, *, stale: bool = False) -> str:
    """Member for a response served from cache, e.g. "edgeshield; hit; ttl=3529; detail=memory".

    ``ttl`` is the remaining freshness (lifetime - current age), floored; with ``stale`` a
    value that rounds to 0 or above is shown as -1 so a stale hit never reads as fresh.
    """
    t = ""
    if math.isfinite(ttl):
        secs = math.floor(ttl)
        if stale and secs >= 0:
            secs = -1
        t = f"; ttl={secs}"
    return f"{CACHE_NAME}; hit{t}{_detail(detail) if detail else ''}"


def fresh_hit(ttl: float, tier: bytes) -> bytes:
    """hit() for the hot path, already encoded: a fresh entry (finite ttl >= 0) served
    from `tier` (a token such as b"memory"). Same text as hit(ttl, tier)."""
    return b"edgeshield; hit; ttl=%d; detail=%s" % (ttl, tier)


def forward(
    fwd: str,
    *,
    fwd_status: int | None,
    stored: bool,
    collapsed: bool,
    ttl: float | None = None,
    detail: str | None = None,
) -> str:
    """Member for a forwarded request, e.g. "edgeshield; fwd=miss; fwd-status=200; stored".

    Parameters come in RFC 9211 order. Raises ValueError for an ``fwd`` outside RFC 9211 2.2
    (a programming error, not input).
    """
    if fwd not in FWD_REASONS:
        raise ValueError(f"unknown Cache-Status fwd reason: {fwd!r}")
    status = f"; fwd-status={fwd_status}" if fwd_status is not None else ""
    return (
        f"{CACHE_NAME}; fwd={fwd}{status}{_ttl(ttl)}"
        f"{'; stored' if stored else ''}{'; collapsed' if collapsed else ''}"
        f"{_detail(detail) if detail else ''}"
    )
