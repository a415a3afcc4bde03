"""Hop-by-hop fields (RFC 9110 7.6.1): the one list, for both directions and every origin
kind."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["HOP_BY_HOP", "hop_by_hop"]

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
# end-to-end fields; honouring "Connection: content-length" or "content-encoding" would
# let a peer strip what frames or decodes the message (the hop-by-hop header abuse).
_PROTECTED = frozenset(
    {"host", "content-length", "content-type", "content-encoding", "content-range"}
)


def hop_by_hop(headers: Iterable[tuple[str, str]]) -> frozenset[str]:
    """The fields of this message that stop at this hop: HOP_BY_HOP and those named in
    Connection (but never a framing field). Names are lower-case."""
    listed: set[str] = set()
    for name, value in headers:
        if name == "connection":
            listed.update(t.strip(" \t").lower() for t in value.split(","))
    listed.discard("")
    return HOP_BY_HOP | (listed - _PROTECTED) if listed else HOP_BY_HOP
