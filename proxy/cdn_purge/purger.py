"""Fan a purge out to every configured CDN at once, and remember the recent outcomes."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

import httpx

from config.cdn import BunnyCdn, CdnSettings, CloudflareCdn, CloudFrontCdn, FastlyCdn
from proxy.cdn_purge.base import CdnAdapter, CdnPurgeResult, PurgeCounts
from proxy.cdn_purge.bunny import BunnyAdapter
from proxy.cdn_purge.cloudflare import CloudflareAdapter
from proxy.cdn_purge.cloudfront import CloudFrontAdapter
from proxy.cdn_purge.fastly import FastlyAdapter

log = logging.getLogger("edgeshield.purge.cdn")


def build_adapter(
    settings: CdnSettings, *, transport: httpx.AsyncBaseTransport | None = None
) -> CdnAdapter:
    """The adapter for one `[[purge.cdn]]` table."""
    if isinstance(settings, CloudflareCdn):
        return CloudflareAdapter(settings, transport=transport)
    if isinstance(settings, FastlyCdn):
        return FastlyAdapter(settings, transport=transport)
    if isinstance(settings, BunnyCdn):
        return BunnyAdapter(settings, transport=transport)
    if isinstance(settings, CloudFrontCdn):
        return CloudFrontAdapter(settings, transport=transport)
    raise TypeError(f"unknown CDN settings {type(settings).__name__}")


class CdnPurger:
    """All configured CDNs. `purge` asks them all concurrently and returns one result
    per CDN, in configuration order; it never raises. `submit` runs it as a background
    task, so a local purge never waits for CDN APIs. The last `keep` results (newest
    first from `recent`) are for the admin page."""

    def __init__(self, adapters: Sequence[CdnAdapter], *, keep: int = 200) -> None:
        self.adapters = list(adapters)
        self._recent: deque[CdnPurgeResult] = deque(maxlen=keep)
        # Strong references: the event loop keeps only weak ones to tasks, and a
        # fire-and-forget task may otherwise be collected before it finishes.
        self._tasks: set[asyncio.Task[list[CdnPurgeResult]]] = set()

    @classmethod
    def from_settings(
        cls,
        settings: Sequence[CdnSettings],
        *,
        keep: int = 200,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> CdnPurger:
        return cls([build_adapter(cdn, transport=transport) for cdn in settings], keep=keep)

    def __bool__(self) -> bool:
        return bool(self.adapters)

    async def purge(
        self,
        urls: Sequence[str] = (),
        tags: Sequence[str] = (),
        prefixes: Sequence[str] = (),
        hosts: Sequence[str] = (),
        soft: bool = False,
        *,
        everything: bool = False,
    ) -> list[CdnPurgeResult]:
        if not self.adapters:
            return []
        started = time.time()
        outcomes = await asyncio.gather(
            *(
                adapter.purge(urls, tags, prefixes, hosts, soft, everything=everything)
                for adapter in self.adapters
            ),
            return_exceptions=True,
        )
        results = []
        for adapter, outcome in zip(self.adapters, outcomes, strict=True):
            if isinstance(outcome, CdnPurgeResult):
                results.append(outcome)
            elif isinstance(outcome, asyncio.CancelledError):
                raise outcome
            else:  # adapters do not raise; this is the belt to their braces
                log.error(
                    "cdn purge %s (%s): internal error %s",
                    adapter.name,
                    adapter.kind,
                    type(outcome).__name__,
                )
                results.append(_crashed(adapter, started, soft, outcome))
        self._recent.extend(results)
        return results

    def submit(
        self,
        urls: Sequence[str] = (),
        tags: Sequence[str] = (),
        prefixes: Sequence[str] = (),
        hosts: Sequence[str] = (),
        soft: bool = False,
        *,
        everything: bool = False,
    ) -> asyncio.Task[list[CdnPurgeResult]]:
        """`purge` as a background task (call from the event loop). The inputs are
        copied, so the caller may reuse its lists."""
        task = asyncio.create_task(
            self.purge(
                tuple(urls),
                tuple(tags),
                tuple(prefixes),
                tuple(hosts),
                soft,
                everything=everything,
            ),
            name="cdn-purge",
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    @property
    def pending(self) -> int:
        return len(self._tasks)

    def recent(self) -> list[CdnPurgeResult]:
        """The kept results, newest first."""
        return list(reversed(self._recent))

    def recent_dicts(self) -> list[dict[str, Any]]:
        return [result.to_dict() for result in self.recent()]

    async def aclose(self, grace: float = 5.0) -> None:
        """Give running purges `grace` seconds to finish, cancel the rest, close clients."""
        if self._tasks:
            _, late = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in late:
                task.cancel()
            if late:
                await asyncio.gather(*late, return_exceptions=True)
        for adapter in self.adapters:
            await adapter.aclose()


def _crashed(adapter: CdnAdapter, started: float, soft: bool, exc: BaseException) -> CdnPurgeResult:
    return CdnPurgeResult(
        name=adapter.name,
        kind=adapter.kind,
        ok=False,
        started=started,
        duration=time.time() - started,
        soft=soft,
        calls=0,
        failed_calls=0,
        attempts=0,
        statuses=(),
        sent=PurgeCounts(),
        skipped=(),
        ids=(),
        error=f"internal error ({type(exc).__name__})",
    )
