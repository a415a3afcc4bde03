"""The non-owner's side: a miss whose key another peer owns is fetched from that peer.

`Cluster.route_for` is asked once per cache fetch (proxy/fetch.py `produce`). When the
owner is another peer that is not marked down, the fetch gets the route with a
`ViaPeer` group: the owner is asked over HTTP (httpx, through routing/origins/http.py's
`send_streaming`, so the origin client's timeouts, streaming and error mapping apply),
and if it fails, times out or answers something that is not an owner's answer, the
route's own group asks the origin, and the peer is skipped for a while (doubling, up to
`max_down_seconds`). Everything after the head (collapsing, storing a copy per normal
freshness, delivery) is the ordinary miss path's.

A request that arrived over a hop is always served locally (`HOP`, set by
proxy/cluster/listener.py for the request's task and the fetches it starts): with two
instances whose peer lists disagree, each may forward once, never twice."""

from __future__ import annotations

import logging
import time
import weakref
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import quote

import httpx

from config.cluster import ClusterSettings
from config.schema import _HttpClientSettings
from proxy.cache.collapse import Fetch
from proxy.cluster import hop
from proxy.cluster.owner import Member, Ring
from proxy.request import Request
from routing.origins.base import OriginError, OriginRequest, OriginResponse, OriginTimeout
from routing.origins.http import new_client, send_streaming
from routing.rules import Route

if TYPE_CHECKING:
    from proxy.serve.metrics import Stats
    from proxy.serve.state import AppState
    from routing.groups import OriginGroup

# True in a request that came over a hop, and in the fetches it starts: served here,
# never forwarded again. A context variable, not state: each request task has its own.
HOP: ContextVar[bool] = ContextVar("edgeshield_cluster_hop", default=False)

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


@dataclass(eq=False, slots=True)
class Peer:
    """Another member: its pooled client and whether it is skipped."""

    name: str
    client: httpx.AsyncClient
    base: httpx.URL
    failures: int = 0
    down_until: float = 0.0


class Cluster:
    def __init__(
        self,
        settings: ClusterSettings,
        stats: Stats,
        *,
        self_name: str,
        members: tuple[Member, ...],
        transports: dict[str, httpx.AsyncBaseTransport] | None = None,
    ) -> None:
        """`members` includes this instance (`self_name`); `transports` reach members
        that are not TCP URLs (a worker's unix socket)."""
        assert settings.secret is not None
        self.settings = settings
        self.secret = settings.secret.get_secret_value().encode()
        self.self_name = self_name
        self.stats = stats
        self.client_settings = _HttpClientSettings(
            connect_timeout=settings.connect_timeout,
            first_byte_timeout=settings.first_byte_timeout,
            read_timeout=settings.read_timeout,
            max_connections=settings.max_connections,
            verify_tls=False,
        )
        self.ring = Ring.of(members)
        self.peers: dict[str, Peer] = {}
        for m in self.ring.members:
            if m.name != self_name:
                self.peers[m.name] = self._peer(m.name, (transports or {}).get(m.name))
        # Fetches being relayed from an owner: a hop request never joins one (with peer
        # lists that disagree, two relays could otherwise wait on each other).
        self.relaying: weakref.WeakSet[Fetch] = weakref.WeakSet()
        self.owned: dict[str, int] = {}
        stats.sample("edgeshield_peer_share", "cluster", self._shares)
        stats.sample("edgeshield_peer_owned_misses", "cluster", self._owned)
        stats.sample("edgeshield_peer_up", "cluster", self._up)

    def _peer(self, name: str, transport: httpx.AsyncBaseTransport | None) -> Peer:
        client = new_client(self.client_settings, transport)
        base = httpx.URL(name if transport is None else "http://peer")
        return Peer(name, client, base)

    def _shares(self) -> dict[tuple[str, ...], float]:
        return {(name,): share for name, share in self.ring.shares().items()}

    def _owned(self) -> dict[tuple[str, ...], float]:
        return {(name,): float(n) for name, n in self.owned.items()}

    def _up(self) -> dict[tuple[str, ...], float]:
        now = time.monotonic()
        return {(p.name,): float(p.down_until <= now) for p in self.peers.values()}

    def forwards(self, state: AppState, route: Route, req: Request) -> bool:
        """Whether this route's misses may go to an owner. Not routes with auth checks
        (the owner would check a token the request no longer carries, against a peer's
        address) or with downstream_cache_control (the owner's answer would carry the
        lifetime meant for clients), and not requests with credentials."""
        return (
            not HOP.get()
            and route.name not in state.guards.by_route
            and route.policy.downstream_cache_control is None
            and "authorization" not in req.headers
        )

    def route_for(self, state: AppState, route: Route, fetch: Fetch, req: Request) -> Route:
        """The route `fetch` is made through: `route`, or `route` via the key's owner."""
        if not self.forwards(state, route, req):
            return route
        owner = self.ring.owner(fetch.key)
        if owner is None:
            return route
        self.owned[owner.name] = self.owned.get(owner.name, 0) + 1
        peer = self.peers.get(owner.name)
        if peer is None or peer.down_until > time.monotonic():
            return route  # this instance owns it, or its owner is skipped for now
        self.relaying.add(fetch)
        via = ViaPeer(self, peer, route.group, req)
        return replace(route, group=cast("OriginGroup", via))

    def may_join(self, found: object) -> bool:
        """A hop request never joins a fetch this instance relays from another owner."""
        return not (HOP.get() and isinstance(found, Fetch) and found in self.relaying)

    async def ask(self, peer: Peer, req: Request, oreq: OriginRequest) -> OriginResponse | None:
        """The owner's answer to `oreq`, or None (counted, the peer marked down)."""
        target = hop_target(req.path, req.query)
        headers = [(b"host", req.host.encode("latin-1"))]
        headers += [
            (k.encode("latin-1"), v.encode("latin-1", "replace"))
            for k, v in oreq.headers
            if k not in _HOP_DROP
        ]
        signature = hop.sign(self.secret, oreq.method, req.host, target, time.time())
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
        for peer in self.peers.values():
            await peer.client.aclose()


class ViaPeer:
    """A route's origin group for one fetch whose key `peer` owns: the owner first, the
    route's own group when the owner fails (nothing reached a client yet)."""

    def __init__(self, cluster: Cluster, peer: Peer, group: OriginGroup, req: Request) -> None:
        self.cluster = cluster
        self.peer = peer
        self.group = group
        self.req = req

    async def fetch(self, request: OriginRequest) -> tuple[OriginResponse, str]:
        resp = await self.cluster.ask(self.peer, self.req, request)
        if resp is not None:
            return resp, f"peer:{self.peer.name}"
        return await self.group.fetch(request)

    def report_body_failure(self, origin: str) -> None:
        if origin == f"peer:{self.peer.name}":
            self.cluster.failed(self.peer, "body", "the owner's body broke off")
        else:
            self.group.report_body_failure(origin)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.group, name)  # anything else a group offers is the group's
