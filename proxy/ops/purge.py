"""`POST /_purge` (JSON) and `PURGE <url>` (Varnish): purge here, on every instance
through the bus, and in the CDNs in front; answer what was purged per tier. And the
purges other instances accepted, heard on the bus."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, cast

from starlette.requests import Request
from starlette.responses import Response

from proxy.ops.responses import respond
from proxy.purge.engine import apply as apply_purge
from proxy.purge.report import error_response, report_response
from proxy.purge.request import (
    PurgeError,
    PurgeRequest,
    parse_purge_body,
    parse_purge_method,
    read_body,
)

if TYPE_CHECKING:
    from proxy.disconnect import Receive
    from proxy.serve.state import AppState


async def purge(state: AppState, request: Request) -> Response:
    """PURGE on any URL, POST on /_purge (the router answers other methods with 405)."""
    started = time.perf_counter()
    parsed = await _parse(request)
    if isinstance(parsed, PurgeError):
        message = state.guards.redact.target(parsed.message)  # it may quote a signed URL
        state.log.info("purge refused: %d %s", parsed.status, message)
        return respond(*error_response(parsed))
    now = time.time()
    report = await apply_purge(state.cache, parsed, now=now, shared=True)
    if state.bus is not None and not await state.bus.publish(parsed, now):
        report.errors.append("bus: other instances were not told (Redis unavailable)")
    if state.siblings is not None:
        told, others = await state.siblings.tell(parsed, now)
        if told < others:
            report.errors.append(f"workers: {others - told} of {others} others were not told")
    if state.cdn is not None:
        state.cdn.submit(**parsed.cdn_targets())
        report.cdn = [{"name": a.name, "state": "queued"} for a in state.cdn.adapters]
    elapsed = time.perf_counter() - started
    state.stats.inc("edgeshield_purges", ("api",))
    state.stats.observe("edgeshield_purge_duration_seconds", (), elapsed)
    summary = report.to_json()
    state.recent_purges.append(
        {
            **summary,
            "time": now,
            "urls": len(parsed.keys),
            "prefixes": [p.url for p in parsed.prefixes][:20],
            "tags": list(parsed.tags)[:20],
            "ms": round(elapsed * 1000, 2),
        }
    )
    state.log.info(
        "purge %s: %d url(s), %d prefix(es), %d tag(s), soft=%s -> %s",
        report.id,
        len(parsed.keys),
        len(parsed.prefixes),
        len(parsed.tags),
        parsed.soft,
        summary["purged"],
    )
    return respond(*report_response(report))


async def _parse(request: Request) -> PurgeRequest | PurgeError:
    scope = request.scope
    # One value per field, the last one, as the purge parsers have always been given.
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
    if request.method == "PURGE":
        raw_path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        return parse_purge_method(
            headers.get("host", ""),
            raw_path,
            scope.get("query_string", b"").decode("latin-1"),
            headers,
        )
    # Starlette types messages as MutableMapping; servers send dicts, as read_body says.
    body = await read_body(cast("Receive", request.receive), headers)
    if isinstance(body, PurgeError):
        return body
    # off the loop: 100,000 URLs take ~0.3 s to check, requests must not wait
    return await asyncio.to_thread(parse_purge_body, body, headers.get("content-type"))


async def apply_remote(state: AppState, req: PurgeRequest, when: float) -> None:
    """A purge another instance (or worker) accepted: this worker's memory and disk
    copies."""
    report = await apply_purge(state.cache, req, now=when, shared=False)
    state.stats.inc("edgeshield_purges", ("bus",))
    state.log.debug("purge from the bus: %s", report.to_json())
