"""Header field list helpers (RFC 9110 5.3, 7.6.1)."""

from __future__ import annotations

__all__ = ["HOP_BY_HOP", "join_fields", "strip_hop_by_hop"]

# RFC 9110 7.6.1 plus the de-facto ones (keep-alive, proxy-connection) and the proxy auth
# pair, which is addressed to this hop (RFC 9110 11.7).
HOP_BY_HOP: frozenset[str] = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "proxy-authenticate",
        "proxy-authorization",
    }
)

# Fields a Connection option may not remove. RFC 9110 7.6.1 forbids senders from listing
# end-to-end fields; honouring "Connection: host" or "content-length" would let a client
# strip what frames or routes the message (the hop-by-hop header abuse pattern).
_PROTECTED = frozenset(
    {"host", "content-length", "content-type", "content-encoding", "content-range"}
)


def strip_hop_by_hop(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Drop hop-by-hop fields and those named in Connection. Names are lower-case in and out."""
    listed: set[str] = set()
    for name, value in headers:
        if name == "connection":
            listed.update(t.strip(" \t").lower() for t in value.split(","))
    drop = HOP_BY_HOP | (listed - _PROTECTED) if listed else HOP_BY_HOP
    return [(n, v) for n, v in headers if n not in drop]


def join_fields(headers: list[tuple[str, str]]) -> dict[str, str]:
    """Map lower-cased names to field values, repeats joined in order (RFC 9110 5.3).

    Set-Cookie cannot be combined with commas (its Expires attribute contains one), so its
    lines are joined with "\\n", which no field value may contain: split on it to recover them.
    """
    out: dict[str, str] = {}
    for name, value in headers:
        name = name.lower()
        prev = out.get(name)
        if prev is None:
            out[name] = value
        else:
            out[name] = f"{prev}\n{value}" if name == "set-cookie" else f"{prev}, {value}"
    return out
