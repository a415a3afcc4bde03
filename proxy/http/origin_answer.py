"""Whether an origin's answer fits the request it answers (RFC 9110 14-15, RFC 9111 3.3)."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["final_status", "unrequested_range"]


def final_status(status: int) -> bool:
    """RFC 9110 15: a final status a client can be given is 200-599. 1xx are interim
    (a 101 would switch protocols on the client), and codes outside 100-599 are not
    HTTP at all: the server library refuses to send them."""
    return 200 <= status <= 599


def unrequested_range(status: int, headers: Iterable[tuple[str, str]]) -> bool:
    """A partial answer (206, or any Content-Range) to a request without Range. It is
    not the whole representation, so it may neither be stored as the object (RFC 9111
    3.3) nor answer a full request; Varnish fails such a fetch ("Unexpected
    Content-Range"). A 304's Content-Range is never used (RFC 9111 3.2), so it is not
    one."""
    if status == 206:
        return True
    return status != 304 and any(name == "content-range" for name, _ in headers)
