"""Instance membership from DNS (`[cluster] dns`): every A/AAAA record of a name, at
`dns_port`, is an instance of weight 1. A Kubernetes headless Service resolves to the
addresses of its ready pods, so pods that come or go join or leave the ring within
`dns_interval`. Resolution (asyncio's getaddrinfo: the system resolver, no new
dependency) runs off the request path; a failure or an empty answer keeps the last
good membership and logs one warning until it resolves again. At most `MAX_MEMBERS`
addresses count. This instance is `self` when set, else the record whose address is
one of this machine's (a pod's own IP)."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable, Iterable

import httpx

from config.cluster import ClusterSettings, peer_url
from proxy.cluster.owner import Member

MAX_MEMBERS = 1000
log = logging.getLogger("edgeshield.cluster")

Resolver = Callable[[str, int], Awaitable[Iterable[str]]]


async def resolve(name: str, port: int) -> list[str]:
    """The addresses `name` resolves to (raises OSError when it does not)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(name, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def members_from(addresses: Iterable[str], port: int) -> tuple[Member, ...]:
    """One member per distinct address (sorted; what is not an IP address ignored)."""
    urls: set[str] = set()
    for text in addresses:
        try:
            ip = ipaddress.ip_address(text.partition("%")[0])  # no IPv6 zone in a name
        except ValueError:
            continue
        host = f"[{ip.compressed}]" if ip.version == 6 else ip.compressed
        urls.add(peer_url(f"http://{host}:{port}"))
    return tuple(Member(u) for u in sorted(urls)[:MAX_MEMBERS])


def is_local(address: str) -> bool:
    """Whether `address` is one of this machine's: binding a socket to it works."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with contextlib.suppress(OSError), socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.bind((address, 0))
        return True
    return False


def self_among(
    members: Iterable[Member], self_url: str | None, local: Callable[[str], bool] = is_local
) -> str | None:
    """This instance's name: `self_url`, else the first member whose address is local."""
    if self_url is not None:
        return self_url
    for m in members:
        if local(m.name.removeprefix("http://").rsplit(":", 1)[0].strip("[]")):
            return m.name
    return None


async def watch_dns(
    settings: ClusterSettings,
    apply: Callable[[tuple[Member, ...], str | None], list[httpx.AsyncClient]],
    resolver: Resolver = resolve,
    local: Callable[[str], bool] = is_local,
) -> None:
    """Resolve `dns` every `dns_interval`, forever; `apply(members, me)` takes each good
    reading and returns the httpx clients of the peers gone, closed here."""
    assert settings.dns is not None and settings.dns_peer_port is not None
    name, port = settings.dns, settings.dns_peer_port
    healthy = True
    while True:
        members: tuple[Member, ...] = ()
        reason = "no addresses"
        try:
            async with asyncio.timeout(max(settings.dns_interval, 5.0)):
                members = members_from(await resolver(name, port), port)
        except (OSError, TimeoutError) as exc:
            reason = type(exc).__name__
        if members:
            if not healthy:
                log.info("cluster dns %s resolves again", name)
            healthy = True
            for closing in apply(members, self_among(members, settings.self_url, local)):
                await closing.aclose()
        elif healthy:
            log.warning("cluster dns %s does not resolve (%s): membership kept", name, reason)
            healthy = False
        await asyncio.sleep(settings.dns_interval)
