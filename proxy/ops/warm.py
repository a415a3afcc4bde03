"""`POST /_warm` (a JSON list of URLs and playlists, or a sitemap), `GET /_warm` (the
jobs of this process, newest first) and `GET /_warm/<id>` (one job's progress). Admin
authorization, as `/_purge` (proxy/ops/access.py). The jobs run in proxy/warm/."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

import orjson
from starlette.requests import Request
from starlette.responses import Response

from proxy.ops.responses import answer
from proxy.purge.request import PurgeError, read_body
from proxy.warm.jobs import Warmer
from proxy.warm.sources import SourceError, parse_body

if TYPE_CHECKING:
    from proxy.disconnect import Receive

PATH = "/_warm"
JSON = b"application/json"
Fields = Sequence[tuple[bytes, bytes]]


def _json(request: Request, data: object, status: int = 200, extra: Fields = ()) -> Response:
    return answer(request, orjson.dumps(data), JSON, status, extra)


async def start(warmer: Warmer, request: Request) -> Response:
    """202 with the new job's report (and its URL in Location); 400/413 for a body that
    is refused, 429 while `[warm] max_jobs` jobs run."""
    state = warmer.state
    settings = state.settings.warm
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in request.scope["headers"]}
    # Starlette types messages as MutableMapping; servers send dicts, as read_body says.
    body = await read_body(cast("Receive", request.receive), headers, settings.max_body_bytes)
    if isinstance(body, PurgeError):
        return _json(request, {"error": body.message}, body.status)
    try:
        # Off the loop: a sitemap of several MiB takes a while to read.
        parsed = await asyncio.to_thread(
            parse_body, body, headers.get("content-type"), settings.max_urls
        )
    except SourceError as exc:
        state.log.info("warm refused: %d %s", exc.status, exc.reason)
        return _json(request, {"error": exc.reason}, exc.status)
    job = warmer.submit(parsed)
    if job is None:
        reason = f"{settings.max_jobs} warm jobs are running; try again later"
        return _json(request, {"error": reason}, 429, [(b"retry-after", b"10")])
    state.log.info("warm %s (%s) started: %d URLs", job.id, job.source, job.total)
    location = f"{PATH}/{job.id}".encode()
    return _json(request, job.report(), 202, [(b"location", location)])


async def jobs(warmer: Warmer, request: Request) -> Response:
    return _json(request, {"jobs": [job.report() for job in reversed(warmer.jobs.values())]})


async def job(warmer: Warmer, request: Request) -> Response:
    found = warmer.jobs.get(request.path_params["id"])
    if found is None:
        # With --workers N, a job belongs to the worker that accepted it: ask on the
        # connection that posted it (proxy/warm/cli.py does).
        return _json(request, {"error": "no such warm job in this process"}, 404)
    return _json(request, found.report())
