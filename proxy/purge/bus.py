"""The purge bus: every instance hears every purge, through a Redis stream.

A stream rather than plain pub/sub: XREAD BLOCK wakes on a new entry as fast as a
subscriber does, and an instance that lost its connection reads on from the last entry
it applied once it is back, so a purge made meanwhile is applied before anything else
(the epoch check the issue asks for). If the stream was trimmed past that entry, the
gap cannot be replayed and the instance drops its whole memory tier (conservative). At
start, the retained history is replayed: bans with their original times only cover
entries stored before them, so replaying is safe."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from proxy.purge.request import PrefixPurge, PurgeRequest

log = logging.getLogger("edgeshield.purge")
MAX_LEN = 10_000  # purges kept for instances that were away
BLOCK_MS = 1000

Apply = Callable[[PurgeRequest, float], Awaitable[None]]


def encode(req: PurgeRequest, now: float, source: str) -> bytes:
    return orjson.dumps(
        {
            "src": source,
            "t": now,
            "k": list(req.keys),
            "p": [[p.host, p.prefix] for p in req.prefixes],
            "g": list(req.tags),
            "s": req.soft,
            "e": req.everything,
        }
    )


def decode(raw: bytes) -> tuple[PurgeRequest, float, str]:
    """What `encode` made; ValueError (or KeyError) for anything else, whatever its JSON
    shape, so no odd value reaches the purge (a string of keys purged each letter)."""
    data = orjson.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("not a purge")
    pairs, when = data["p"], data["t"]
    if not (
        _strings(data["k"])
        and _strings(data["g"])
        and isinstance(pairs, list)
        and all(_prefix(p) for p in pairs)
        and isinstance(data["s"], bool)
        and isinstance(data["e"], bool)
        and isinstance(when, int | float)
        and not isinstance(when, bool)
        and isinstance(data["src"], str)
    ):
        raise ValueError("not a purge")
    req = PurgeRequest(
        keys=tuple(data["k"]),
        prefixes=tuple(PrefixPurge(host, prefix) for host, prefix in data["p"]),
        tags=tuple(data["g"]),
        soft=bool(data["s"]),
        everything=bool(data["e"]),
    )
    return req, float(data["t"]), str(data["src"])


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _prefix(value: Any) -> bool:
    """[host or null (every host), path]"""
    return (
        isinstance(value, list)
        and len(value) == 2
        and (value[0] is None or isinstance(value[0], str))
        and isinstance(value[1], str)
    )


class PurgeBus:
    def __init__(
        self,
        client: Any,
        key: str,
        apply: Apply,
        on_gap: Callable[[], None],
        *,
        timeout: float = 0.5,
    ) -> None:
        self.client = client
        self.key = key
        self.apply = apply
        self.on_gap = on_gap
        self.timeout = timeout
        self.source = f"{os.getpid()}-{secrets.token_hex(4)}"
        self.last_id = "0-0"
        self.connected = False
        self.received = 0
        self.gaps = 0

    async def publish(self, req: PurgeRequest, now: float) -> bool:
        try:
            async with asyncio.timeout(self.timeout):
                entry_id = await self.client.xadd(
                    self.key, {"d": encode(req, now, self.source)}, maxlen=MAX_LEN, approximate=True
                )
        except Exception as exc:  # any Redis trouble: reported in the purge's answer
            log.warning("purge bus: publish failed (%s)", type(exc).__name__)
            return False
        log.debug("purge bus: published %s", entry_id)
        return True

    async def run(self) -> None:
        backoff = 0.1
        while True:
            try:
                await self._check_gap()
                while True:
                    found = await self.client.xread(
                        {self.key: self.last_id}, block=BLOCK_MS, count=100
                    )
                    if not self.connected:
                        self.connected = True
                        log.info("purge bus: listening on %s", self.key)
                    backoff = 0.1
                    for _stream, entries in found or ():
                        for entry_id, fields in entries:
                            await self._deliver(entry_id, fields)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.connected:
                    log.warning("purge bus: disconnected (%s); retrying", type(exc).__name__)
                self.connected = False
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)

    async def _check_gap(self) -> None:
        """After a reconnect: were entries we never read trimmed away meanwhile?"""
        if self.last_id == "0-0":
            return
        first = await self.client.xrange(self.key, count=1)
        if first and _id(first[0][0]) > _id(self.last_id):
            self.gaps += 1
            log.warning("purge bus: purges were missed while away; dropping the memory tier")
            self.on_gap()

    async def _deliver(self, entry_id: Any, fields: dict[Any, Any]) -> None:
        self.last_id = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
        raw = fields.get(b"d") or fields.get("d")
        if raw is None:
            return
        try:
            req, when, source = decode(raw)
        except (TypeError, ValueError, KeyError) as exc:
            log.warning("purge bus: unreadable entry %s (%s)", self.last_id, exc)
            return
        if source == self.source:
            return  # applied when it was accepted
        self.received += 1
        await self.apply(req, when)


def _id(text: Any) -> tuple[int, int]:
    value = text.decode() if isinstance(text, bytes) else str(text)
    ms, _, seq = value.partition("-")
    return int(ms), int(seq or 0)
