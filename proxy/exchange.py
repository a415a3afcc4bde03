"""One request and its answer, as the pipeline's steps pass them along.

`Exchange` is the per-request context every step takes (state, route, request, its cache
key, the ASGI receive/send, when it started), in place of long lists of loose parameters;
the fetches a request starts take it too (`proxy/fetch.py`, `proxy/slices/`), while pure
decisions keep taking plain values. A step
returns an `Answer` (the response went out: its status, the body bytes sent, the
`Outcome` and a short reason for the log) or None to pass the request on, the way
Varnish's builtin VCL subroutines return their next state.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from proxy.auth.common import AuthResult
    from proxy.request import Request
    from proxy.serve.state import AppState
    from routing.rules import Route

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class Outcome(StrEnum):
    """How a request was answered: the `cache` label of the metrics and the access log."""

    HIT = "hit"  # a fresh stored answer
    STALE = "stale"  # a stored answer past its freshness (revalidating, or standing in)
    MISS = "miss"  # fetched from the origin for this request
    COLLAPSED = "collapsed"  # joined a fetch another request started
    PASS = "pass"  # relayed, never stored (unsafe methods, routes without a cache)
    STEER = "steer"  # redirected to a CDN
    PREFLIGHT = "preflight"  # a CORS preflight answered by the auth step
    DENY = "deny"  # refused: bad request, no route, auth, limits
    ERROR = "error"  # the origin (or a transform) failed
    OPS = "ops"  # the operations surface


class Answer(NamedTuple):
    status: int
    sent: int  # body bytes sent
    outcome: Outcome
    reason: str = ""


@dataclass(slots=True)
class Exchange:
    state: AppState
    route: Route
    req: Request
    receive: Receive
    send: Send
    # The cache key of the request's URL (Request.key, proxy/cache/keys.py): made with the
    # exchange, and made again by the auth step once the request is token-free.
    key: str
    # time.perf_counter() when the request came in: the access log's and the metrics' start.
    started: float
    # What the auth step needs of the path as parsed (token segments cut before routing).
    path_token: str | None = None
    bunny_path: str | None = None
    # A member request of a batch download (proxy/archive/): never an archive itself.
    archive_entry: bool = False
    # The token check that admitted the request (the auth step), for what it vouches.
    verified: AuthResult | None = None
