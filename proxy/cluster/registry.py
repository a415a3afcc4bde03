"""Instance membership from Redis: a sorted set of `"<weight> <url>"` entries scored by
the time of their last heartbeat. Every worker renews its instance's entry and reads the
live ones (renewed within `member_ttl`) in one round trip every `heartbeat_interval`;
entries ten times older are deleted on the way. A Redis that cannot be reached leaves the
last membership in place. Entries that do not parse are ignored, and at most
`MAX_MEMBERS` are read, so nothing written there can break or bloat a worker. The score
is each writer's clock: instances must agree on the time to well within `member_ttl`."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import Any

from config.cluster import ClusterSettings, peer_url
from proxy.cluster.owner import Member

MAX_MEMBERS = 1000
log = logging.getLogger("edgeshield.cluster")


def entry(url: str, weight: float) -> str:
    return f"{weight!r} {url}"


def parse(raw: bytes | str) -> Member | None:
    """The member an entry names, or None when it is not one."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    weight_text, _, url = text.partition(" ")
    try:
        weight = float(weight_text)
        url = peer_url(url)
    except ValueError:
        return None
    if not math.isfinite(weight) or not 0 < weight <= 1000:
        return None
    return Member(url, weight)


async def beat(client: Any, key: str, me: str, settings: ClusterSettings) -> list[Member]:
    """Renew `me` and read the live members (raises on any Redis failure or timeout)."""
    now = time.time()
    async with asyncio.timeout(settings.heartbeat_interval):
        pipe = client.pipeline(transaction=False)
        pipe.zadd(key, {me: now})
        pipe.zremrangebyscore(key, "-inf", now - 10 * settings.member_ttl)
        pipe.zrangebyscore(key, now - settings.member_ttl, "+inf", start=0, num=MAX_MEMBERS)
        *_, raw = await pipe.execute()
    return [m for m in (parse(r) for r in raw) if m is not None]


async def watch_registry(client: Any, key: str, settings: ClusterSettings, apply: Any) -> None:
    """Heartbeat and membership, forever; `apply(members)` takes each reading and
    returns the httpx clients of the peers gone, closed here."""
    assert settings.self_url is not None
    me = entry(settings.self_url, settings.weight)
    healthy = True
    while True:
        try:
            members = await beat(client, key, me, settings)
        except Exception as exc:  # any Redis failure: keep the membership we have
            if healthy:
                log.warning(
                    "cluster registry unreachable (%s): membership kept", type(exc).__name__
                )
            healthy = False
        else:
            if not healthy:
                log.info("cluster registry reachable again")
            healthy = True
            for closing in apply(members):
                await closing.aclose()
        await asyncio.sleep(settings.heartbeat_interval)
