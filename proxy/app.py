"""The ASGI application: lifespan-owned state, operations endpoints, the pipeline."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from config.handoff import settings_from_handoff
from config.schema import CachePolicy, CacheSettings, Settings
from proxy.access_log import AccessLog
from proxy.admin import PROBES, authorize, is_admin_request, needs_authorization, on_admin_listener
from proxy.cache.collapse import Inflight
from proxy.cache.memory import MemoryTier
from proxy.cache.redis_tier import RedisTier
from proxy.cache.store import Cache, LowerTier
from proxy.deliver import Send, send_error, send_response
from proxy.fastpath import HitFastPath
from proxy.guard import build_guards
from proxy.http.dates import format_http_date
from proxy.http.freshness import FreshnessPolicy
from proxy.http.paths import normalize_path
from proxy.images import build_images
from proxy.logs import configure_logging
from proxy.metrics import Stats, build_registry
from proxy.observe import record, scope_host
from proxy.pipeline import Receive, handle
from proxy.state import AppState
from routing.groups import build_router
from routing.origins import build_origin
from routing.rules import build_route_table

FLUSH_INTERVAL = 1.0
OpsHandler = Callable[[AppState], tuple[int, bytes, bytes]]


def freshness_policy(policy: CachePolicy, cache: CacheSettings) -> FreshnessPolicy:
    return FreshnessPolicy(
        default_ttl=policy.default_ttl,
        override_ttl=policy.override_ttl,
        negative_ttl=policy.negative_ttl,
        heuristic_fraction=cache.heuristic_fraction,
        heuristic_max=cache.heuristic_max,
        stale_while_revalidate=policy.stale_while_revalidate,
        stale_if_error=policy.stale_if_error,
        targeted_fields=tuple(f.lower() for f in policy.targeted_fields),
    )


def build_state(settings: Settings) -> AppState:
    origins = {name: build_origin(name, spec) for name, spec in settings.origins.items()}
    memory = MemoryTier(settings.cache.memory_bytes, settings.cache.memory_max_object_bytes)
    stats = Stats()
    router = build_router(settings, origins, stats)
    table = build_route_table(settings, origins, router.groups)
    routes = list(table.routes)
    stats.sampled["edgeshield_cache_bytes"] = lambda: {("memory",): memory.stats()["bytes"]}
    stats.sampled["edgeshield_cache_entries"] = lambda: {("memory",): memory.stats()["entries"]}
    stats.sampled["edgeshield_cache_evictions"] = lambda: {("memory",): memory.stats()["evictions"]}
    registry, collector = build_registry(stats, settings.server.metrics_dir)
    inflight = Inflight()
    stats.sampled["edgeshield_inflight_fetches"] = lambda: {(): len(inflight.fetches)}
    access_log = AccessLog(settings.server.access_log)
    stats.sampled["edgeshield_access_log_dropped"] = lambda: {(): access_log.dropped}
    lower: list[LowerTier] = []
    redis_tier = RedisTier.from_settings(settings.redis) if settings.redis.enabled else None
    if redis_tier is not None:
        lower.append(redis_tier)
    if redis_tier is not None:
        rt = redis_tier
        stats.sampled["edgeshield_redis_circuit_state"] = lambda: {
            (): rt.stats()["circuit_state_code"]
        }
        stats.sampled["edgeshield_redis_circuit_opened"] = lambda: {
            (): rt.stats()["circuit_opened"]
        }
    _sample_tiers(stats, lower)
    images = build_images(settings, routes)
    if images is not None:
        pool = images.workers
        stats.sampled["edgeshield_image_workers_busy"] = lambda: {(): pool.admitted}
    return AppState(
        settings=settings,
        routes=table,
        origins=origins,
        router=router,
        policies={route.name: freshness_policy(route.policy, settings.cache) for route in routes},
        cache=Cache(memory, settings.cache.max_variants, lower),
        inflight=inflight,
        stats=stats,
        registry=registry,
        collector=collector,
        access_log=access_log,
        normalize=lru_cache(maxsize=16384)(normalize_path),
        guards=build_guards(
            settings,
            [route.name for route in routes],
            redis_tier.client if redis_tier is not None else None,
        ),
        redis=redis_tier,
        log=logging.getLogger("edgeshield"),
        images=images,
    )


def _sample_tiers(stats: Stats, tiers: list[LowerTier]) -> None:
    """Lower-tier counters, read at scrape time from each tier's own stats()."""

    def rows(*fields: str) -> Callable[[], dict[tuple[str, ...], float]]:
        return lambda: {(tier.name,): sum(tier.stats().get(f, 0) for f in fields) for tier in tiers}

    def errors() -> dict[tuple[str, ...], float]:
        out: dict[tuple[str, ...], float] = {}
        for tier in tiers:
            st = tier.stats()
            out[(tier.name, "error")] = st.get("errors", 0)
            out[(tier.name, "timeout")] = st.get("timeouts", 0)
            out[(tier.name, "corrupt")] = st.get("corrupt", 0) + st.get("corrupt_dropped", 0)
            out[(tier.name, "write")] = st.get("write_errors", 0)
        return out

    stats.sampled["edgeshield_cache_tier_hits"] = rows("hits")
    stats.sampled["edgeshield_cache_tier_misses"] = rows("misses")
    stats.sampled["edgeshield_cache_tier_read_bytes"] = rows("bytes_read")
    stats.sampled["edgeshield_cache_tier_written_bytes"] = rows("bytes_written")
    stats.sampled["edgeshield_cache_tier_errors"] = errors


class EdgeShield:
    """The ASGI callable. Pure ASGI (no BaseHTTPMiddleware): the hot path is one dict
    lookup for the operations paths, then the pipeline."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.state: AppState | None = None
        self.fast: HitFastPath | None = None
        self.admin_port = settings.admin.port
        self._ops: dict[str, OpsHandler] = {
            "/healthz": self._healthz,
            "/readyz": self._readyz,
            "/metrics": self._metrics,
            "/_admin/origins": self._admin_origins,
        }

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            state, fast = self.state, self.fast
            if state is None or fast is None:
                await send_error(send, 503, "starting", [(b"retry-after", b"1")])
                return
            if self.admin_port is not None and on_admin_listener(self.settings.admin, scope):
                await self._operations(state, scope, send, admin_listener=True)
                return
            if scope["method"] == "GET" and await fast.serve(scope, send):
                return  # a fresh memory hit (proxy/fastpath.py)
            path = scope["path"]
            if path in self._ops or is_admin_request(scope["method"], path):
                await self._operations(state, scope, send, admin_listener=False)
            else:
                await handle(state, scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _operations(
        self, state: AppState, scope: dict[str, Any], send: Send, *, admin_listener: bool
    ) -> None:
        started = time.perf_counter()
        admin = self.settings.admin
        path, method = scope["path"], scope["method"]
        ops = self._ops.get(path)
        if admin_listener:
            known = ops is not None or is_admin_request(method, path)
        else:  # with a separate admin listener, the main one keeps only the probes
            known = path in PROBES or admin.port is None
        refused: tuple[int, str, list[tuple[bytes, bytes]]] | None = None
        if not known:
            refused = 404, "not found", []
        elif needs_authorization(admin, method, path):
            refused = authorize(admin, scope)
        if refused is not None:
            status, reason, extra = refused
            if status != 404:
                state.log.info("admin refused path=%s status=%d reason=%s", path, status, reason)
            sent = await send_error(send, status, reason, extra)
        elif ops is not None and method in ("GET", "HEAD"):
            status, body, content_type = ops(state)
            headers = [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
                (b"date", format_http_date(time.time()).encode()),
            ]
            sent = await send_response(send, status, headers, body, head_only=method == "HEAD")
        elif ops is None:
            status = 404
            sent = await send_error(send, 404, "not found")
        else:
            status = 405
            sent = await send_error(send, 405, "method not allowed", [(b"allow", b"GET, HEAD")])
        record(
            state,
            scope,
            host=scope_host(scope),
            status=status,
            outcome="ops",
            route="-",
            origin=None,
            sent=sent,
            started=started,
            now=time.time(),
        )

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    self.state = build_state(self.settings)
                    self.state.cache.spawn = self.state.spawn
                    if self.state.redis is not None:
                        await self.state.redis.ping()  # warms a connection; down is logged
                    self.fast = HitFastPath(self.state, frozenset(self._ops))
                    self.state.router.start()
                    self.state.spawn(_flusher(self.state))
                    self.state.ready = True
                except Exception as exc:  # a bad config never starts a half-working server
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.state is not None:
                    await shutdown(self.state)
                await send({"type": "lifespan.shutdown.complete"})
                return

    @staticmethod
    def _healthz(state: AppState) -> tuple[int, bytes, bytes]:
        return 200, b"ok\n", b"text/plain; charset=utf-8"

    @staticmethod
    def _readyz(state: AppState) -> tuple[int, bytes, bytes]:
        body = orjson.dumps(
            {
                "ready": state.ready,
                "origins": sorted(state.origins),
                "routes": [route.name for route in state.routes.routes],
            }
        )
        return (200 if state.ready else 503), body, b"application/json"

    @staticmethod
    def _admin_origins(state: AppState) -> tuple[int, bytes, bytes]:
        return 200, orjson.dumps(state.router.snapshot()), b"application/json"

    @staticmethod
    def _metrics(state: AppState) -> tuple[int, bytes, bytes]:
        return 200, generate_latest(state.registry), CONTENT_TYPE_LATEST.encode()


async def _flusher(state: AppState) -> None:
    """Access log and metric snapshots leave the process here, never on a request."""
    while True:
        await asyncio.sleep(FLUSH_INTERVAL)
        state.access_log.flush()
        try:
            state.collector.write_snapshot()
        except OSError as exc:
            state.log.warning("metrics snapshot failed: %s", exc)


async def shutdown(state: AppState) -> None:
    state.ready = False
    for task in list(state.tasks):
        task.cancel()
    for task in list(state.tasks):
        with contextlib.suppress(BaseException):
            await task
    await state.router.stop()
    for origin in state.origins.values():
        await origin.aclose()
    if state.images is not None:
        state.images.close()
    if state.redis is not None:
        await state.redis.close()
    state.access_log.close()


def app_from_environment() -> EdgeShield:
    """Factory for `uvicorn --factory` worker processes: settings come from the parent."""
    settings = settings_from_handoff(os.environ)
    configure_logging(settings.server.log_level)
    return EdgeShield(settings)
