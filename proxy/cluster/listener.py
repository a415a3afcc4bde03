"""The owner's side: the cluster listener, and the cluster's place in a worker's life.

Each worker opens the cluster port of `[cluster] self` beside the main one (SO_REUSEPORT,
served by uvicorn on the worker's loop, as the admin listener is). Every request there
must carry a valid hop signature (proxy/cluster/hop.py), else 403 and a log line; a
signed one is served by the ordinary fast path or pipeline (lookup, collapsing, storing)
with `HOP` set, so it is never forwarded again, and its answer is marked as an owner's."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from config.cluster import ClusterSettings
from proxy.cluster import hop
from proxy.cluster.owner import Member
from proxy.cluster.peers import HOP, Cluster
from proxy.deliver import send_error
from proxy.pipeline import handle
from proxy.serve.admin_listener import AdminListener, open_side_listener

if TYPE_CHECKING:
    from proxy.exchange import Receive, Send
    from proxy.serve.app import EdgeShield
    from proxy.serve.state import AppState

log = logging.getLogger("edgeshield.cluster")


def members_of(settings: ClusterSettings) -> tuple[Member, ...]:
    return tuple(Member(p.url, p.weight) for p in settings.peers)


def membership_warnings(settings: ClusterSettings) -> list[str]:
    """What is odd but not fatal in a peer list: a URL named twice (the first weight
    counts), this instance missing from it (it then owns nothing)."""
    urls = [p.url for p in settings.peers]
    warnings = [
        f"cluster.peers names {u} more than once" for u in sorted(set(urls)) if urls.count(u) > 1
    ]
    if settings.peers and settings.self_url not in urls:
        warnings.append(
            f"cluster.self {settings.self_url} is not in cluster.peers: it owns no keys"
        )
    return warnings


class HopApp:
    """The ASGI app of the cluster listener."""

    def __init__(self, edge: EdgeShield, cluster: Cluster) -> None:
        self.edge = edge
        self.cluster = cluster
        self.marker = (hop.ANSWERED.encode(), cluster.self_name.encode("latin-1", "replace"))

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        state, fast = self.edge.state, self.edge.fast
        if scope["type"] != "http" or state is None or fast is None:
            return
        headers = scope["headers"]
        host = next((v for k, v in headers if k == b"host"), b"").decode("latin-1")
        signature = [v for k, v in headers if k == hop.HEADER.encode()]
        target = scope.get("raw_path") or scope["path"].encode("utf-8", "surrogateescape")
        if scope.get("query_string"):
            target += b"?" + scope["query_string"]
        reason = (
            hop.verify(
                self.cluster.secret,
                signature[0].decode("latin-1"),
                scope["method"],
                host,
                target.decode("latin-1"),
                time.time(),
                self.cluster.settings.replay_window,
            )
            if len(signature) == 1
            else "no signature"
            if not signature
            else "two signatures"
        )
        if reason is not None:
            client = scope.get("client") or ("unix", 0)
            log.info("cluster hop refused from %s: %s", client[0], reason)
            state.stats.inc("edgeshield_peer_hops", ("refused",))
            await send_error(send, 403, "peer signature required")
            return
        state.stats.inc("edgeshield_peer_hops", ("served",))
        scope = {**scope, "headers": [h for h in headers if h[0] != hop.HEADER.encode()]}
        marker = self.marker

        async def marked(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), marker]}
            await send(message)

        token = HOP.set(True)
        try:
            if scope["method"] == "GET" and await fast.serve(scope, marked, receive):
                return
            await handle(state, scope, receive, marked)
        finally:
            HOP.reset(token)


class ClusterRuntime:
    def __init__(self, cluster: Cluster, listener: AdminListener | None) -> None:
        self.cluster = cluster
        self.listener = listener

    async def close(self) -> None:
        if self.listener is not None:
            await self.listener.close()
        await self.cluster.aclose()


async def start_cluster(edge: EdgeShield, state: AppState) -> ClusterRuntime | None:
    """The worker's cluster membership and listener; None when [cluster] is off."""
    settings = state.settings.cluster
    if not settings.peers:
        return None
    for warning in membership_warnings(settings):
        log.warning("%s", warning)
    assert settings.self_url is not None and settings.port is not None
    cluster = Cluster(
        settings, state.stats, self_name=settings.self_url, members=members_of(settings)
    )
    state.cluster = cluster
    server = state.settings.server
    listener = await open_side_listener(
        HopApp(edge, cluster),
        settings.host or server.host,
        settings.port,
        "cluster",
        server.log_level,
    )
    return ClusterRuntime(cluster, listener)
