"""The owner's side: the cluster listeners, and the cluster's place in a worker's life.

With `[cluster] peers`, each worker opens the cluster port of `self` beside the main one
(SO_REUSEPORT, served by uvicorn on the worker's loop, as the admin listener is); with
`socket_dir`, each worker also listens on `<socket_dir>/<pid>.sock` (mode 0600) and
watches that folder for the other workers. Every request on either must carry a valid
hop signature (proxy/cluster/hop.py), else 403 and a log line; a signed one is served by
the ordinary fast path or pipeline (lookup, collapsing, storing) with `HOP` set to the
level it came over, and its answer is marked as an owner's."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from config.cluster import ClusterSettings
from proxy.cache.disk import BUCKETS, DiskTier
from proxy.cluster import hop
from proxy.cluster.dns import watch_dns
from proxy.cluster.hop import HOP
from proxy.cluster.owner import Member, Ring
from proxy.cluster.peers import INSTANCE, WORKER, Cluster
from proxy.cluster.registry import watch_registry
from proxy.deliver import send_error
from proxy.pipeline import handle
from proxy.serve.admin_listener import AdminListener, open_side_listener, serve_socket
from proxy.serve.liveness import alive

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
    if settings.peers and not settings.dns and settings.self_url not in urls:
        warnings.append(f"cluster.self {settings.self_url} is not in cluster.peers: owns no keys")
    return warnings


def live_workers(folder: Path) -> list[int]:
    """The pids of the `<pid>.sock` files in `folder` whose process is alive."""
    pids = []
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            stem, dot, ext = entry.name.partition(".")
            if dot and ext == "sock" and stem.isdigit() and alive(int(stem)):
                pids.append(int(stem))
    return pids


class HopApp:
    """The ASGI app of the cluster listener."""

    def __init__(self, edge: EdgeShield, cluster: Cluster, level: str, name: str) -> None:
        self.edge = edge
        self.cluster = cluster
        self.level = level
        self.marker = (hop.ANSWERED.encode(), name.encode("latin-1", "replace"))

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        state, fast = self.edge.state, self.edge.fast
        if scope["type"] != "http" or state is None or fast is None:
            return
        try:
            stage = self._stage(scope)
        except hop.HopRefused as exc:
            client = scope.get("client") or ("unix", 0)
            log.info("cluster hop refused from %s: %s", client[0], exc)
            state.stats.inc("edgeshield_peer_hops", ("refused",))
            await send_error(send, 403, "peer signature required")
            return
        state.stats.inc("edgeshield_peer_hops", ("served",))
        headers = [h for h in scope["headers"] if h[0] != hop.HEADER.encode()]
        scope = {**scope, "headers": headers}
        marker = self.marker

        async def marked(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), marker]}
            await send(message)

        token = HOP.set(stage)
        try:
            if scope["method"] == "GET" and await fast.serve(scope, marked, receive):
                return
            await handle(state, scope, receive, marked)
        finally:
            HOP.reset(token)

    def _stage(self, scope: dict[str, Any]) -> int:
        """The stage the request's signature holds, if it is one this listener takes
        (the instance hop is stage 2, a worker hop 1 or 3); HopRefused otherwise."""
        headers = scope["headers"]
        signatures = [v for k, v in headers if k == hop.HEADER.encode()]
        if len(signatures) > 1:
            raise hop.HopRefused("two signatures")
        host = next((v for k, v in headers if k == b"host"), b"").decode("latin-1")
        target = scope.get("raw_path") or scope["path"].encode("utf-8", "surrogateescape")
        if scope.get("query_string"):
            target += b"?" + scope["query_string"]
        stage = hop.verify(
            self.cluster.secret,
            signatures[0].decode("latin-1") if signatures else None,
            scope["method"],
            host,
            target.decode("latin-1"),
            time.time(),
            self.cluster.settings.replay_window,
        )
        if stage not in ((2,) if self.level == INSTANCE else (1, 3)):
            raise hop.HopRefused(f"stage {stage} on the {self.level} listener")
        return stage


class ClusterRuntime:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.listeners: list[AdminListener] = []
        self.socket: Path | None = None
        self.tasks: list[asyncio.Task[Any]] = []

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.socket is not None:  # others stop routing to this worker at once
            remove(self.socket)
        for listener in self.listeners:
            await listener.close()
        await self.cluster.aclose()


async def start_cluster(edge: EdgeShield, state: AppState) -> ClusterRuntime | None:
    """The worker's cluster membership and listeners; None when [cluster] is off."""
    settings = state.settings.cluster
    if not settings.instances_on and settings.socket_dir is None:
        return None
    if settings.registry and state.redis is None:
        raise RuntimeError("cluster.registry needs [redis] (url or cluster_nodes)")
    for warning in membership_warnings(settings):
        log.warning("%s", warning)
    pid = os.getpid()
    cluster = Cluster(
        settings,
        state.stats,
        instances=members_of(settings),
        worker=pid if settings.socket_dir is not None else None,
    )
    state.cluster = cluster
    runtime = ClusterRuntime(cluster)
    server = state.settings.server
    try:
        if settings.instances_on:
            assert settings.port is not None
            app = HopApp(edge, cluster, INSTANCE, settings.self_url or f"dns:{settings.dns}")
            host = settings.host or server.host
            runtime.listeners.append(
                await open_side_listener(app, host, settings.port, "cluster", server.log_level)
            )
        if settings.socket_dir is not None:
            path = settings.socket_dir / f"{pid}.sock"
            app = HopApp(edge, cluster, WORKER, f"unix:{pid}")
            runtime.listeners.append(await open_unix_listener(app, path, server.log_level))
            runtime.socket = path
            runtime.tasks.append(state.spawn(watch_workers(cluster, settings, state.disk)))
        if settings.registry and state.redis is not None:
            key = f"{state.settings.redis.key_prefix}cluster:members"
            runtime.tasks.append(
                state.spawn(
                    watch_registry(state.redis.client, key, settings, cluster.set_instances)
                )
            )
        if settings.dns is not None:
            runtime.tasks.append(state.spawn(watch_dns(settings, cluster.set_instances)))
    except BaseException:
        await runtime.close()
        raise
    return runtime


async def watch_workers(
    cluster: Cluster, settings: ClusterSettings, disk: DiskTier | None = None
) -> None:
    """The workers of this instance are the live sockets in `socket_dir`, looked at
    every `membership_interval` (a directory listing, off the request path). A shared
    disk tier keeps the buckets this worker owns, once the membership held for one
    interval (at start the workers appear one by one: no full scan for each)."""
    assert settings.socket_dir is not None and cluster.workers is not None
    level = cluster.workers
    seen: Ring | None = None
    kept: Ring | None = None
    while True:
        for client in cluster.set_workers(live_workers(settings.socket_dir)):
            await client.aclose()
        if disk is not None and disk.shared and level.ring == seen and level.ring != kept:
            kept = level.ring
            try:
                await disk.own(owned_buckets(kept, level.self_name))
            except OSError as exc:  # the next change of membership scans again
                log.warning("cluster: the disk tier could not take its buckets: %s", exc)
        seen = level.ring
        await asyncio.sleep(settings.membership_interval)


def owned_buckets(ring: Ring, name: str) -> frozenset[str]:
    """The disk buckets (proxy/cache/disk.py) that member `name` of `ring` owns."""
    return frozenset(b for b in BUCKETS if (m := ring.owner(b)) is not None and m.name == name)


def bind_unix(path: Path) -> socket.socket:
    """A unix socket at `path`, readable by this user only (the folder made 0700 when
    it is new; a file left there by an earlier process with this pid replaced)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    remove(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
        os.chmod(path, 0o600)
    except OSError as exc:
        sock.close()
        raise RuntimeError(
            f"cannot listen on the cluster socket {path}: {exc.strerror or exc}"
        ) from None
    return sock


def remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


async def open_unix_listener(app: Any, path: Path, log_level: str) -> AdminListener:
    """A worker's own unix socket, served by uvicorn on the worker's loop."""
    sock = bind_unix(path)
    sock.listen(128)
    return await serve_socket(app, sock, log_level)
