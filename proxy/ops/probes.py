"""What monitors read: `/healthz` (the process answers), `/readyz` (startup finished and
no origin misconfigured, with the origins and routes it serves and what is wrong) and
`/metrics` (the Prometheus exposition)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import Response

from proxy.ops.responses import TEXT, answer
from routing.origins.fs import FsOrigin

if TYPE_CHECKING:
    from proxy.serve.state import AppState


async def healthz(state: AppState, request: Request) -> Response:
    return answer(request, b"ok\n", TEXT)


async def readyz(state: AppState, request: Request) -> Response:
    problems = await asyncio.to_thread(origin_problems, state)
    ready = state.ready and not problems
    body = orjson.dumps(
        {
            "ready": ready,
            "origins": sorted(state.origins),
            "routes": [route.name for route in state.routes.routes],
            "problems": problems,
        }
    )
    return answer(request, body, b"application/json", 200 if ready else 503)


def origin_problems(state: AppState) -> dict[str, str]:
    """Origins that cannot serve anything whatever a request asks: a folder origin's
    missing or unreadable root. Checked on every probe, so fixing it needs no restart."""
    problems: dict[str, str] = {}
    for name, origin in sorted(state.origins.items()):
        if isinstance(origin, FsOrigin):
            problem = origin.root_problem()
            if problem is not None:
                problems[name] = problem
    return problems


async def metrics(state: AppState, request: Request) -> Response:
    return answer(request, generate_latest(state.registry), CONTENT_TYPE_LATEST.encode())
