"""What monitors read: `/healthz` (the process answers), `/readyz` (startup finished,
with the origins and routes it serves) and `/metrics` (the Prometheus exposition)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import Response

from proxy.ops.responses import TEXT, answer

if TYPE_CHECKING:
    from proxy.serve.state import AppState


async def healthz(state: AppState, request: Request) -> Response:
    return answer(request, b"ok\n", TEXT)


async def readyz(state: AppState, request: Request) -> Response:
    body = orjson.dumps(
        {
            "ready": state.ready,
            "origins": sorted(state.origins),
            "routes": [route.name for route in state.routes.routes],
        }
    )
    return answer(request, body, b"application/json", 200 if state.ready else 503)


async def metrics(state: AppState, request: Request) -> Response:
    return answer(request, generate_latest(state.registry), CONTENT_TYPE_LATEST.encode())
