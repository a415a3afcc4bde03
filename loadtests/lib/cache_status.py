"""RFC 9211 Cache-Status as a load test sees it: which cache answered, and how.

    Cache-Status: edgeshield; hit; ttl=297; detail=memory
    Cache-Status: edgeshield; fwd=miss; fwd-status=200; stored; collapsed
    Cache-Status: upstream-cdn; hit, edgeshield; fwd=stale; detail=stale-if-error

The field is an RFC 8941 list; each cache on the way appends its member, so the member of
the cache closest to the client comes last. edgeshield names itself "edgeshield"
(proxy/http/cache_status.py); when no member has that name, the last member is used.
"""

from __future__ import annotations

from dataclasses import dataclass

CACHE_NAME = "edgeshield"
NO_STATUS = "(none)"
NO_DETAIL = "-"


@dataclass(frozen=True)
class Member:
    name: str
    params: dict[str, str | bool]


@dataclass(frozen=True)
class CacheOutcome:
    """One response, classified for the summary table."""

    status: str  # "hit", "hit (stale)", "fwd=miss", "fwd=stale", ..., or NO_STATUS
    detail: str = NO_DETAIL
    collapsed: bool = False
    stored: bool = False
    fwd_status: int | None = None  # the origin's status on a forwarded response

    @property
    def is_hit(self) -> bool:
        return self.status.startswith("hit")

    @property
    def forwarded(self) -> bool:
        return self.status.startswith("fwd=")


def parse(value: str) -> list[Member]:
    """The members of a Cache-Status field value. Lenient: a malformed member is kept as
    far as it parses, since a load test reports what it got rather than failing on it."""
    members: list[Member] = []
    for raw in _split(value, ","):
        parts = _split(raw, ";")
        name = _unquote(parts[0].strip()) if parts else ""
        if not name:
            continue
        params: dict[str, str | bool] = {}
        for part in parts[1:]:
            key, sep, val = part.strip().partition("=")
            if key:
                params[key.strip().lower()] = _unquote(val.strip()) if sep else True
        members.append(Member(name, params))
    return members


def classify(value: str | None, cache_name: str = CACHE_NAME) -> CacheOutcome:
    if not value:
        return CacheOutcome(NO_STATUS)
    members = parse(value)
    if not members:
        return CacheOutcome(NO_STATUS)
    ours = [m for m in members if m.name.lower() == cache_name]
    member = ours[-1] if ours else members[-1]
    params = member.params
    detail = params.get("detail")
    detail_text = detail if isinstance(detail, str) and detail else NO_DETAIL
    if params.get("hit") is True:
        status = "hit (stale)" if _negative(params.get("ttl")) else "hit"
    elif isinstance(params.get("fwd"), str):
        status = f"fwd={params['fwd']}"
    else:
        status = NO_STATUS
    fwd_status = params.get("fwd-status")
    return CacheOutcome(
        status=status,
        detail=detail_text,
        collapsed=params.get("collapsed") is True,
        stored=params.get("stored") is True,
        fwd_status=int(fwd_status)
        if isinstance(fwd_status, str) and fwd_status.isdigit()
        else None,
    )


def _negative(ttl: str | bool | None) -> bool:
    # RFC 9211 2.5: a negative ttl means the response was served stale.
    if not isinstance(ttl, str):
        return False
    try:
        return int(ttl) < 0
    except ValueError:
        return False


def _split(text: str, sep: str) -> list[str]:
    """Split at `sep` outside sf-strings (a quoted detail may contain commas)."""
    parts: list[str] = []
    buf: list[str] = []
    quoted = escaped = False
    for ch in text:
        if quoted:
            buf.append(ch)
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
            buf.append(ch)
        elif ch == sep:
            parts.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
    parts.append("".join(buf))
    return parts


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] == '"':
        inner = text[1:-1]
        out: list[str] = []
        escaped = False
        for ch in inner:
            if escaped:
                out.append(ch)
                escaped = False
            elif ch == "\\":
                escaped = True
            else:
                out.append(ch)
        return "".join(out)
    return text
