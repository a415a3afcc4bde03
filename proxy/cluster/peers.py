"""The non-owner's side: a miss whose key another peer owns is fetched from that peer.

Ownership has two levels: the instances of `[cluster] peers` (HTTP between machines),
then the workers of the owning instance (`[cluster] socket_dir`, a unix socket each).
`Cluster.route_for` is asked once per cache fetch (proxy/fetch.py `produce`). When the
owner is another peer that is not marked down, the fetch gets the route with a
`ViaPeer` group: the owner is asked (httpx, through routing/origins/http.py's
`send_streaming`, so the origin client's timeouts, streaming and error mapping apply),
and if it fails, times out or answers something that is not an owner's answer, the
route's own group asks the origin, and the peer is skipped for a while (doubling, up to
`max_down_seconds`). Everything after the head (collapsing, delivery, storing a copy per
normal freshness on another instance) is the ordinary miss path's; a worker relaying
from the worker that owns the key keeps no copy, so one machine holds one, unless the
object is hot on that worker (`hot_copy_requests`): then every worker answers it itself.

A request moves through stages, and only forward (`HOP`: the stage it arrived at, set
by proxy/cluster/listener.py for the request's task and the fetches it starts):

    0 a client's request    -> the worker of this instance that owns the key (1), or
                               when that is this one, the owning instance (2)
    1 over a worker hop     -> the owning instance (2)
    2 over the instance hop -> the worker of that instance that owns the key (3)
    3                          served here

so the asking instance's owning worker is the one that asks (and keeps the instance's
copy), the owning instance's owning worker the one that fetches, and with peer lists
that disagree a request still takes at most three hops, never a loop."""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import quote

import httpx

from config.cluster import ClusterSettings
from config.schema import _HttpClientSettings
from proxy.archive import signed as signed_archive
from proxy.cache.collapse import Fetch
from proxy.cache.disk import bucket
from proxy.cluster import hop
from proxy.cluster.hop import HOP
from proxy.cluster.owner import Member, Ring
from proxy.request import Request
from routing.origins.base import OriginError, OriginRequest, OriginResponse, OriginTimeout
from routing.origins.http import new_client, send_streaming
from routing.rules import Route

if TYPE_CHECKING:
    from proxy.serve.metrics import Stats
    from proxy.serve.state import AppState
    from routing.groups import OriginGroup

INSTANCE, WORKER = "instance", "worker"

# Stage -> the levels a request there may still be forwarded over, in order.
NEXT: dict[int, tuple[str, ...]] = {0: (WORKER, INSTANCE), 1: (INSTANCE,), 2: (WORKER,), 3: ()}

# Fields the owner never gets: it answers in identity (this instance compresses for its
# own clients), and the signature is added per hop.
_HOP_DROP = frozenset({"accept-encoding", "host", hop.HEADER})
_PATH_SAFE = "!$%&'()*+,/:;=@[]~"
_QUERY_SAFE = _PATH_SAFE + "?"

log = logging.getLogger("edgeshield.cluster")


def hop_target(path: str, query: str) -> str:
    """The request target sent to the owner: the client's normalised path and query
    (before the route's rewrite, which the owner applies itself)."""
    target = quote(path if path.startswith("/") else "/" + path, safe=_PATH_SAFE)
    return target + ("?" + quote(query, safe=_QUERY_SAFE) if query else "")


def owned_unit(kind: str, key: str) -> str:
    """What a ring hashes for `key`: instances own keys; the workers of one instance own
    the key's disk bucket, so that the worker that fetches a key keeps its file too
    (proxy/cache/disk.py shares one directory among them by bucket)."""
    return bucket(key) if kind == WORKER else key


def worker_name(pid: int) -> str:
    return f"unix:{pid}"


@dataclass(eq=False, slots=True)
class Peer:
    """Another member: its pooled client and whether it is skipped."""

    name: str
    client: httpx.AsyncClient
    base: httpx.URL
    failures: int = 0
    down_until: float = 0.0


@dataclass(eq=False, slots=True)
class Level:
    """One ring: the instances of `peers`, or the workers of this instance."""

    kind: str
    self_name: str
    ring: Ring
    peers: dict[str, Peer] = field(default_factory=dict)


class Cluster:
    def __init__(
        self,
        settings: ClusterSettings,
        stats: Stats,
        *,
        instances: tuple[Member, ...] = (),
        worker: int | None = None,
    ) -> None:
        """`instances` are `[cluster] peers` (this one's name is `self`); `worker`, this
        worker's pid when the workers are peers too (`socket_dir`)."""
        assert settings.secret is not None
        self.settings = settings
        self.secret = settings.secret.get_secret_value().encode()
        self.stats = stats
        self.client_settings = _HttpClientSettings(
            connect_timeout=settings.connect_timeout,
            first_byte_timeout=settings.first_byte_timeout,
            read_timeout=settings.read_timeout,
            max_connections=settings.max_connections,
            verify_tls=False,
        )
        self.instances: Level | None = None
        self.static = instances
        if instances or settings.instances_on:
            # With `dns` and no `self`, this instance's name comes with the records.
            self.instances = Level(INSTANCE, settings.self_url or "", Ring(()))
            self.set_instances(())
        self.workers: Level | None = None
        if worker is not None:
            me = worker_name(worker)
            self.workers = Level(WORKER, me, Ring.of([Member(me)]))
        # Fetches being relayed from an owner, and the stage their hop carries: only a
        # request of an earlier stage joins one, so no two relays wait on each other.
        self.relaying: weakref.WeakKeyDictionary[Fetch, int] = weakref.WeakKeyDictionary()
        self.owned: dict[str, int] = {}
        stats.sample("edgeshield_peer_share", "cluster", self._shares)
        stats.sample("edgeshield_peer_owned_misses", "cluster", self._owned)
        stats.sample("edgeshield_peer_up", "cluster", self._up)
        stats.sample("edgeshield_peer_workers", "cluster", self._workers)

    @property
    def levels(self) -> tuple[Level, ...]:
        return tuple(lv for lv in (self.instances, self.workers) if lv is not None)

    def level(self, kind: str) -> Level | None:
        return self.instances if kind == INSTANCE else self.workers

    def _peer(self, name: str, socket: Path | None) -> Peer:
        transport = None if socket is None else httpx.AsyncHTTPTransport(uds=str(socket))
        client = new_client(self.client_settings, transport)
        return Peer(name, client, httpx.URL(name if socket is None else "http://worker"))

    def set_instances(
        self, announced: Iterable[Member], me: str | None = None
    ) -> list[httpx.AsyncClient]:
        """The instances: `peers` and those `announced` in the registry or DNS (a peer
        named in both keeps its `peers` weight); `me`, this instance's name when DNS
        tells it. The clients of instances gone (or now this one) are returned."""
        level = self.instances
        if level is None:
            return []
        renamed = me is not None and me != level.self_name
        if me is not None:
            level.self_name = me
        # With a registry this instance is always a member (it announces itself); with
        # `peers` alone, only when listed there.
        mine = [Member(level.self_name, self.settings.weight)] if self.settings.registry else []
        ring = Ring.of([*self.static, *announced, *mine])
        if ring == level.ring and not renamed:
            return []
        names = {m.name for m in ring.members} - {level.self_name}
        gone = [level.peers.pop(n).client for n in [n for n in level.peers if n not in names]]
        for name in names - set(level.peers):
            level.peers[name] = self._peer(name, None)
        if level.ring.members:
            log.info("cluster: %d instances own keys", len(ring.members))
        level.ring = ring
        return gone

    def set_workers(self, pids: Iterable[int]) -> list[httpx.AsyncClient]:
        """The live workers of this instance (proxy/cluster/listener.py watches the
        folder): the ring is rebuilt, new workers get a client; the clients of the
        workers gone are returned, for the caller to close."""
        level, folder = self.workers, self.settings.socket_dir
        if level is None or folder is None:
            return []
        names = {worker_name(pid): pid for pid in pids}
        names.setdefault(level.self_name, 0)
        if set(names) == {m.name for m in level.ring.members}:
            return []
        gone = [level.peers.pop(n).client for n in [n for n in level.peers if n not in names]]
        for name, pid in names.items():
            if name != level.self_name and name not in level.peers:
                level.peers[name] = self._peer(name, folder / f"{pid}.sock")
        level.ring = Ring.of(Member(name) for name in names)
        log.info("cluster: %d workers of this instance own keys", len(names))
        return gone

    def _shares(self) -> dict[tuple[str, ...], float]:
        return {(n,): s for lv in self.levels for n, s in lv.ring.shares().items()}

    def _owned(self) -> dict[tuple[str, ...], float]:
        return {(name,): float(n) for name, n in self.owned.items()}

    def _up(self) -> dict[tuple[str, ...], float]:
        now = time.monotonic()
        return {
            (p.name,): float(p.down_until <= now) for lv in self.levels for p in lv.peers.values()
        }

    def _workers(self) -> dict[tuple[str, ...], float]:
        return {(): float(len(self.workers.ring.members))} if self.workers else {}

    def forwards(self, state: AppState, route: Route, req: Request) -> bool:
        """Whether this request's misses may go to an owner. Routes with auth checks do:
        the client's token and address were checked here, the request is token-free
        now (so is the hop's target), and the owner skips those checks for a signed hop
        only (`vouched`). Not requests with credentials (whether their answer may be
        stored is this instance's decision, RFC 9111 3.5, and the owner would store
        it for every peer), not routes with downstream_cache_control (the owner's
        answer would carry the lifetime meant for clients, and the asking peer would
        store it as the origin's), and not the signed archive form (`?archive=zip`:
        the owner would refuse it, the token binding that parameter is not on the
        hop)."""
        return (
            route.policy.downstream_cache_control is None
            and "authorization" not in req.headers
            and not (route.policy.archives and signed_archive.asks(req.query))
        )

    def route_for(self, state: AppState, route: Route, fetch: Fetch, req: Request) -> Route:
        """The route `fetch` is made through: `route`, or `route` via the key's owner at
        the first level this request's stage may still cross (module docstring)."""
        stage = HOP.get()
        if not NEXT[stage] or not self.forwards(state, route, req):
            return route
        for kind in NEXT[stage]:
            level = self.level(kind)
            owner = level.ring.owner(owned_unit(kind, fetch.key)) if level is not None else None
            if level is None or owner is None:
                continue
            self.owned[owner.name] = self.owned.get(owner.name, 0) + 1
            if owner.name == level.self_name:
                continue
            peer = level.peers.get(owner.name)
            if peer is None or peer.down_until > time.monotonic():
                continue  # skipped for now: the next level, or the origin
            next_stage = 2 if kind == INSTANCE else stage + 1
            self.relaying[fetch] = next_stage
            via = ViaPeer(self, level, peer, route.group, req, next_stage)
            return replace(route, group=cast("OriginGroup", via))
        return route

    def via_worker(self, route: Route) -> bool:
        """Is `route` the relay from the worker of this instance that owns the key? That
        worker decides how the object is kept (whole, or in slices); the relay keeps
        no copy of it, unless `hot`."""
        group: Any = route.group
        return isinstance(group, ViaPeer) and group.level.kind == WORKER

    def hot(self, asked: int) -> bool:
        """Was a key `asked` for often enough lately, before its fetch started, for a
        relay to keep its own copy? (Not counting the requests that join the fetch: a
        burst for a cold object leaves one copy.)"""
        return 0 < self.settings.hot_copy_requests <= asked

    def may_join(self, found: object) -> bool:
        """A request joins a relay only from an earlier stage than the relay's hop."""
        relayed = self.relaying.get(found) if isinstance(found, Fetch) else None
        return relayed is None or HOP.get() < relayed

    async def ask(
        self, peer: Peer, req: Request, oreq: OriginRequest, stage: int
    ) -> OriginResponse | None:
        """The owner's answer to `oreq` sent at `stage`, or None (counted, the peer
        marked down)."""
        target = hop_target(req.path, req.query)
        headers = [(b"host", req.host.encode("latin-1"))]
        headers += [
            (k.encode("latin-1"), v.encode("latin-1", "replace"))
            for k, v in oreq.headers
            if k not in _HOP_DROP
        ]
        signature = hop.sign(self.secret, oreq.method, req.host, target, stage, time.time())
        headers.append((hop.HEADER.encode(), signature.encode()))
        url = peer.base.copy_with(raw_path=target.encode("ascii"))
        try:
            resp = await send_streaming(
                peer.client, peer.name, self.client_settings, oreq.method, url, headers
            )
        except OriginError as exc:
            self.failed(peer, "timeout" if isinstance(exc, OriginTimeout) else "error", exc.reason)
            return None
        marked = [v for k, v in resp.headers if k == hop.ANSWERED]
        if not marked:
            await resp.aclose()
            self.failed(peer, "garbage", f"not an owner's answer (status {resp.status})")
            return None
        resp.headers = [(k, v) for k, v in resp.headers if k != hop.ANSWERED]
        peer.failures = 0
        self.stats.inc("edgeshield_peer_fetches", (peer.name,))
        return resp

    def failed(self, peer: Peer, kind: str, reason: str) -> None:
        """Skip `peer` for `down_seconds`, doubled per failure in a row (bounded)."""
        self.stats.inc("edgeshield_peer_errors", (peer.name, kind))
        s = self.settings
        down = min(s.max_down_seconds, s.down_seconds * 2 ** min(peer.failures, 30))
        peer.failures += 1
        peer.down_until = time.monotonic() + down
        log.warning("peer %s skipped for %.1f s: %s", peer.name, down, reason)

    async def aclose(self) -> None:
        for client in [p.client for lv in self.levels for p in lv.peers.values()]:
            await client.aclose()


class ViaPeer:
    """A route's origin group for one fetch whose key `peer` owns: the owner first, the
    route's own group when the owner fails (nothing reached a client yet)."""

    def __init__(
        self,
        cluster: Cluster,
        level: Level,
        peer: Peer,
        group: OriginGroup,
        req: Request,
        stage: int,
    ) -> None:
        self.cluster = cluster
        self.level = level
        self.peer = peer
        self.group = group
        self.req = req
        self.stage = stage
        self.name = f"peer:{peer.name}"

    async def fetch(self, request: OriginRequest) -> tuple[OriginResponse, str]:
        resp = await self.cluster.ask(self.peer, self.req, request, self.stage)
        if resp is not None:
            return resp, self.name
        return await self.group.fetch(request)

    def report_body_failure(self, origin: str) -> None:
        if origin == self.name:
            self.cluster.failed(self.peer, "body", "the owner's body broke off")
        else:
            self.group.report_body_failure(origin)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.group, name)  # anything else a group offers is the group's
