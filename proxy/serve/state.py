"""Everything that outlives a request, created in the app lifespan and closed there."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prometheus_client.registry import CollectorRegistry

from config.schema import Settings
from proxy.auth.step import Guards
from proxy.cache.collapse import Inflight
from proxy.cache.disk import DiskTier
from proxy.cache.redis_tier import RedisTier
from proxy.cache.store import Cache
from proxy.cdn_purge import CdnPurger
from proxy.ops.top_objects import TopObjects
from proxy.purge.bus import PurgeBus
from proxy.purge.siblings import Siblings
from proxy.serve.access_log import AccessLog
from proxy.serve.metrics import Stats, StatsCollector
from proxy.serve.request_ids import RequestIds
from proxy.streams import StreamIndex
from routing.groups import OriginRouter
from routing.origins.base import Origin
from routing.rules import RouteTable

if TYPE_CHECKING:
    from proxy.cluster.peers import Cluster
    from proxy.variants import Images


@dataclass(eq=False)
class AppState:
    settings: Settings
    routes: RouteTable
    origins: dict[str, Origin]
    router: OriginRouter
    cache: Cache
    inflight: Inflight
    stats: Stats
    registry: CollectorRegistry
    collector: StatsCollector
    access_log: AccessLog
    normalize: Callable[[str], str]
    # The auth step per route (proxy/auth/step.py).
    guards: Guards
    log: logging.Logger
    ready: bool = False
    # The image step's pool and URL memo; None unless some route has `images = true`.
    images: Images | None = None
    # The shared tier ([redis]); its client also carries rate limits and the purge bus.
    redis: RedisTier | None = None
    disk: DiskTier | None = None
    # Every instance hears every purge (proxy/purge/bus.py); needs [redis].
    bus: PurgeBus | None = None
    # Without [redis], the other workers of this instance (proxy/purge/siblings.py).
    siblings: Siblings | None = None
    # Downstream CDNs told of purges ([[purge.cdn]]).
    cdn: CdnPurger | None = None
    # Key ownership among peers ([cluster]; proxy/cluster/).
    cluster: Cluster | None = None
    # The last purges accepted (newest last), as reported to the purge API's caller.
    recent_purges: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=50))
    # The most requested objects, for the admin page (proxy/ops/top_objects.py).
    top_objects: TopObjects = field(default_factory=TopObjects)
    # X-Request-Id: kept from a trusted proxy, else made here (proxy/serve/request_ids.py).
    request_ids: RequestIds = field(default_factory=RequestIds)
    # Recently served HLS media playlists and prefetched segments (proxy/prefetch.py).
    streams: StreamIndex = field(default_factory=StreamIndex)
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Background work the state keeps a reference to (asyncio holds tasks weakly)."""
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task
