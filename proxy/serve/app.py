"""The ASGI application: lifespan-owned state, and the dispatch of each request to
the operations app (proxy/ops/), the fast path or the pipeline."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import time
from functools import lru_cache
from typing import Any

from config.handoff import settings_from_handoff
from config.schema import Settings
from proxy.auth.step import build_guards
from proxy.cache.collapse import Inflight
from proxy.cache.disk import DiskTier, DiskTierBusy
from proxy.cache.memory import MemoryTier
from proxy.cache.redis_tier import RedisTier
from proxy.cache.store import Cache, LowerTier
from proxy.cdn_purge import CdnPurger
from proxy.cluster.listener import ClusterRuntime, start_cluster
from proxy.deliver import Send, send_error
from proxy.fastpath import HitFastPath
from proxy.http.paths import normalize_path
from proxy.ops import app as ops
from proxy.ops.access import is_admin_request, on_admin_listener
from proxy.ops.purge import apply_remote
from proxy.pipeline import Receive, handle
from proxy.purge.bus import PurgeBus
from proxy.purge.siblings import Siblings
from proxy.serve.access_log import AccessLog
from proxy.serve.admin_listener import AdminListener, open_admin_listener
from proxy.serve.granian_signals import on_worker_stop
from proxy.serve.logs import configure_logging
from proxy.serve.memory_tuning import keep_trimmed, tuned_malloc
from proxy.serve.metrics import Stats, build_registry
from proxy.serve.redirect_listener import open_redirect_listener
from proxy.serve.state import AppState
from proxy.upgrade import refuse_websocket
from proxy.variants import build_images
from routing.groups import build_router
from routing.origins import build_origin
from routing.rules import build_route_table

FLUSH_INTERVAL = 1.0


def build_state(settings: Settings) -> AppState:
    origins = {name: build_origin(name, spec) for name, spec in settings.origins.items()}
    stats = Stats()
    memory = MemoryTier(settings.cache.memory_bytes, settings.cache.memory_max_object_bytes)
    memory.register_metrics(stats)
    router = build_router(settings, origins, stats)
    table = build_route_table(settings, origins, router.groups)
    routes = list(table.routes)
    registry, collector = build_registry(stats, settings.server.metrics_dir)
    inflight = Inflight()
    inflight.register_metrics(stats)
    access_log = AccessLog(settings.server.access_log)
    access_log.register_metrics(stats)
    lower: list[LowerTier] = []
    redis_tier = RedisTier.from_settings(settings.redis) if settings.redis.enabled else None
    if redis_tier is not None:
        redis_tier.register_metrics(stats)
        lower.append(redis_tier)
    cache = Cache(
        memory,
        settings.cache.max_variants,
        lower,
        max_bans=settings.purge.max_bans,
        ban_retention=settings.purge.ban_retention,
    )
    cache.bans.register_metrics(stats)
    images = build_images(settings, routes)
    if images is not None:  # the pool lives in transforms/, which knows no metrics
        pool = images.workers
        stats.sample("edgeshield_image_workers_busy", "images", lambda: {(): pool.admitted})
    return AppState(
        settings=settings,
        routes=table,
        origins=origins,
        router=router,
        cache=cache,
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


async def start_state(settings: Settings) -> AppState:
    """build_state, then what needs the loop: the disk tier's index, Redis, the bus."""
    state = build_state(settings)
    cache = state.cache
    cache.spawn = state.spawn
    disk = await _open_disk(settings)
    if disk is not None:
        state.disk = disk
        cache.lower = (*cache.lower, disk)
        disk.admit_by(cache.memory.frequency)  # memory counts every request, disk's too
        disk.register_metrics(state.stats)
    if state.redis is not None:
        await state.redis.ping()  # warms a connection; a Redis that is down is logged
        state.bus = PurgeBus(
            state.redis.client,
            f"{settings.redis.key_prefix}purge",
            lambda req, when: apply_remote(state, req, when),
            cache.memory.clear,
        )
        state.spawn(state.bus.run())
    elif settings.server.workers > 1 and settings.server.metrics_dir is not None:
        siblings = Siblings(
            settings.server.metrics_dir, lambda req, when: apply_remote(state, req, when)
        )
        try:
            await siblings.start()
            state.siblings = siblings
        except OSError as exc:  # e.g. a metrics_dir path too long for a unix socket
            state.log.warning("purge: the other workers will not hear purges: %s", exc)
    if settings.purge.cdn:
        state.cdn = CdnPurger.from_settings(settings.purge.cdn)
    state.spawn(_lurker(state))
    return state


async def _open_disk(settings: Settings) -> DiskTier | None:
    """Workers that are peers share <path>, each keeping the buckets it owns (set by
    proxy/cluster/listener.py); the serving process holds the directory's lock. Other
    workers take one directory each: the first of <path>/w0, w1, ... that no other
    worker holds, with its share of the budget (one copy of a hot object per worker)."""
    disk = settings.cache.disk
    workers = settings.server.workers
    if disk.path is None or workers == 1:
        return await DiskTier.from_settings(disk)
    if settings.disk_shared:
        return await DiskTier.from_settings(disk, shared=True)
    for i in range(workers):
        share = disk.model_copy(
            update={"path": disk.path / f"w{i}", "max_bytes": max(1, disk.max_bytes // workers)}
        )
        try:
            return await DiskTier.from_settings(share)
        except DiskTierBusy:
            continue
    raise RuntimeError(f"cache.disk: every worker directory under {disk.path} is taken")


class EdgeShield:
    """The ASGI callable. Pure ASGI (no BaseHTTPMiddleware): an operations request goes
    to the Starlette app in proxy/ops/, a fresh memory hit is answered by the fast
    path, anything else by the pipeline."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.state: AppState | None = None
        self.fast: HitFastPath | None = None
        self.ops: ops.Operations | None = None
        self.admin_port = settings.admin.port
        self.admin_listener: AdminListener | None = None
        # Requests in the pipeline (not fast-path hits, which end in a few sends): what a
        # shutdown waits for, then cuts off (each still logs its line).
        self.requests: set[asyncio.Task[Any]] = set()
        self.redirect_listener: AdminListener | None = None
        self.cluster: ClusterRuntime | None = None

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            state, fast, operations = self.state, self.fast, self.ops
            if state is None or fast is None or operations is None:
                await send_error(send, 503, "starting", [(b"retry-after", b"1")])
                return
            if self.admin_port is not None and on_admin_listener(self.settings.admin, scope):
                await operations(scope, receive, send)  # it answers nothing else
                return
            if scope["method"] == "GET" and await fast.serve(scope, send, receive):
                return  # a fresh memory hit (proxy/fastpath.py)
            path = scope["path"]
            if path in ops.PATHS or is_admin_request(scope["method"], path):
                await operations(scope, receive, send)
            else:
                task = asyncio.current_task()
                if task is not None:
                    self.requests.add(task)
                try:
                    await handle(state, scope, receive, send)
                finally:
                    if task is not None:
                        self.requests.discard(task)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "websocket":
            await refuse_websocket(self.state, scope, receive, send)  # 501 (proxy/upgrade.py)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    malloc = tuned_malloc()  # before the state allocates much
                    self.state = await start_state(self.settings)
                    self.fast = HitFastPath(self.state, ops.PATHS)
                    self.ops = ops.Operations(self.state, self.fast)
                    self.state.router.start()
                    self.state.spawn(_flusher(self.state))
                    if malloc is not None:
                        self.state.spawn(keep_trimmed(malloc))
                    # What startup made lives as long as the process: out of the
                    # collector's reach, a full collection pauses requests ~10 ms, not 100.
                    gc.collect()
                    gc.freeze()
                    if self.admin_port is not None:
                        server = self.settings.server
                        self.admin_listener = await open_admin_listener(
                            self, self.settings.admin, server.host, server.log_level
                        )
                    tls = self.settings.server.tls
                    if tls is not None and tls.redirect_port is not None:
                        server = self.settings.server
                        self.redirect_listener = await open_redirect_listener(
                            server.host, tls.redirect_port, server.port, server.log_level
                        )
                    self.cluster = await start_cluster(self, self.state)  # [cluster]
                    self.state.ready = True
                except Exception as exc:  # a bad config never starts a half-working server
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self._drain()
                if self.admin_listener is not None:
                    await self.admin_listener.close()
                if self.redirect_listener is not None:
                    await self.redirect_listener.close()
                if self.cluster is not None:
                    await self.cluster.close()
                if self.state is not None:
                    await shutdown(self.state)
                await send({"type": "lifespan.shutdown.complete"})
                return

    def begin_drain(self) -> None:
        """The server is stopping: drain now, not only once every connection closed."""
        if self.state is not None:
            self.state.spawn(self._drain())

    async def _drain(self) -> None:
        """Let requests in flight finish for `drain_seconds`, then cancel the rest. uvicorn
        did both before the lifespan shutdown; granian starts it at SIGTERM, while
        requests still run, and stops the process after it."""
        if not self.requests:
            return
        drain = self.settings.server.drain_seconds
        _, pending = await asyncio.wait(set(self.requests), timeout=drain)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=1)
        if self.state is not None:
            self.state.access_log.flush()  # granian may stop the process before its lifespan ends


async def _lurker(state: AppState) -> None:
    """Bans retire once nothing they cover can still be served (proxy/cache/store.py).
    Each run works in slices of about 2 ms, so requests never queue behind it."""
    while True:
        await asyncio.sleep(state.settings.purge.lurk_interval)
        dropped, retired = await state.cache.lurk(time.time())
        if dropped or retired:
            state.log.debug("ban lurker: %d entries dropped, %d bans retired", dropped, retired)


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
    if state.cdn is not None:
        await state.cdn.aclose()
    if state.siblings is not None:
        await state.siblings.close()
    if state.disk is not None:
        await state.disk.close()
    if state.redis is not None:
        await state.redis.close()
    state.access_log.close()
    state.log.info("shut down: requests drained, state closed")  # on either engine


def app_from_environment() -> EdgeShield:
    """The app of each worker process, on either engine (proxy/serve/engines.py):
    settings come from the parent through the environment."""
    settings = settings_from_handoff(os.environ)
    configure_logging(settings.server.log_level)
    app = EdgeShield(settings)
    if settings.server.engine == "granian":
        on_worker_stop(app.begin_drain)
    return app
