"""The operations application: a Starlette app (its Router, Request and Responses)
beside the raw-ASGI proxy. `EdgeShield.__call__` (proxy/serve/app.py) hands it every request
on the admin listener and, on the main one, the paths in `PATHS`, `/_admin/*` and the
`PURGE` method. Before routing, `access.gate` decides who may use what on which
listener; after the answer, one access-log line with `outcome="ops"`."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING, Any, cast

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from proxy.observe import Tracked, record, request_id_of, scope_host
from proxy.ops import page, probes, purge, status, warm
from proxy.ops.access import Header, gate
from proxy.ops.responses import error
from proxy.warm.jobs import Warmer
from proxy.warm.top_keys import start_warming

if TYPE_CHECKING:
    from proxy.disconnect import Receive
    from proxy.fastpath import HitFastPath
    from proxy.serve.state import AppState

# The server's send; Starlette's own type says MutableMapping where the proxy's says dict.
Send = Callable[[Any], Awaitable[None]]

# The routed paths: the fast path never makes plans for them (proxy/fastpath.py).
PATHS = frozenset(
    {
        "/healthz",
        "/readyz",
        "/metrics",
        page.PATH,
        "/_admin/status.json",
        "/_admin/origins",
        "/_purge",
        warm.PATH,
    }
)
READ = ("GET",)  # Starlette adds HEAD


class Operations:
    """The ASGI callable for operations requests."""

    def __init__(self, state: AppState, fast: HitFastPath) -> None:
        self.state = state
        self.warmer = Warmer(state)
        start_warming(state, self.warmer, fast)
        routes = [
            Route("/healthz", partial(probes.healthz, state), methods=READ),
            Route("/readyz", partial(probes.readyz, state), methods=READ),
            Route("/metrics", partial(probes.metrics, state), methods=READ),
            Route(page.PATH, page.page, methods=READ),
            Route("/_admin/status.json", partial(status.status_json, state, fast), methods=READ),
            Route("/_admin/origins", partial(status.origins, state), methods=READ),
            Route("/_purge", partial(purge.purge, state), methods=("POST",)),
            Route(warm.PATH, partial(warm.start, self.warmer), methods=("POST",)),
            Route(warm.PATH, partial(warm.jobs, self.warmer), methods=READ),
            Route(warm.PATH + "/{id}", partial(warm.job, self.warmer), methods=READ),
        ]
        self.app = Starlette(routes=routes, exception_handlers={HTTPException: _refused})
        self.app.router.redirect_slashes = False  # "/_admin/" is not a page: 404

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        out = Tracked(send)  # error answers carry the request id, as the proxy's do
        out.request_id = request_id_of(self.state, scope)
        request = Request(scope, receive)
        response: Response | None = None
        refused = gate(self.state.settings.admin, scope, PATHS)
        if refused is not None:
            response = self._refusal(request, *refused)
        elif request.method == "PURGE":  # on any URL: not a route
            response = await purge.purge(self.state, request)
        send_out = cast(Send, out)  # Starlette types messages as MutableMapping
        if response is None:
            await self.app(scope, receive, send_out)
        else:
            await response(scope, receive, send_out)
        record(
            self.state,
            scope,
            host=scope_host(scope),
            status=out.status,
            outcome="ops",
            route="-",
            origin=None,
            sent=out.sent,
            started=started,
            now=time.time(),
            request_id=out.request_id,
        )

    def _refusal(self, request: Request, status: int, reason: str, extra: list[Header]) -> Response:
        path = request.scope["path"]
        if status != 404:
            self.state.log.info("admin refused path=%s status=%d reason=%s", path, status, reason)
        if status == 401 and path == page.PATH:  # the page reads #token= itself
            return page.unauthorized(request, extra)
        return error(status, reason, extra)


async def _refused(request: Request, exc: Exception) -> Response:
    """The router's 404 and 405, in the proxy's words: "404 not found", with Allow."""
    http = cast(HTTPException, exc)  # the handler of HTTPException only
    extra = []
    allow = (http.headers or {}).get("Allow")
    if allow is not None:  # Starlette joins a set: sorted, it is the same every run
        extra.append((b"allow", ", ".join(sorted(allow.split(", "))).encode()))
    return error(http.status_code, http.detail.lower(), extra)
