"""Sampled series (proxy/serve/metrics.py): each component registers its own rows once, where
it is created; with the disk tier on, memory and disk rows share the per-tier series."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from config.loader import load_settings
from proxy.serve.app import EdgeShield
from proxy.serve.metrics import Stats
from tests.support.asgi import Sink

Message = dict[str, Any]


def test_sources_of_one_series_merge_and_register_once() -> None:
    stats = Stats()
    stats.sample("edgeshield_cache_bytes", "memory", lambda: {("memory",): 10})
    assert stats.sampled["edgeshield_cache_bytes"]() == {("memory",): 10}
    stats.sample("edgeshield_cache_bytes", "disk", lambda: {("disk",): 20})
    assert stats.sampled["edgeshield_cache_bytes"]() == {("memory",): 10, ("disk",): 20}
    with pytest.raises(ValueError, match="memory is registered already"):
        stats.sample("edgeshield_cache_bytes", "memory", lambda: {("memory",): 30})
    assert stats.sampled["edgeshield_cache_bytes"]() == {("memory",): 10, ("disk",): 20}


def test_tier_rows_come_from_the_tiers_own_stats() -> None:
    stats = Stats()
    counts = {"hits": 3, "misses": 1, "bytes_read": 7, "corrupt_dropped": 2, "bytes": 5}
    stats.sample_lower_tier("disk", lambda: counts)
    stats.sample_sizes("disk", lambda: counts)
    assert stats.sampled["edgeshield_cache_tier_hits"]() == {("disk",): 3}
    assert stats.sampled["edgeshield_cache_tier_written_bytes"]() == {("disk",): 0}
    errors = stats.sampled["edgeshield_cache_tier_errors"]()
    assert errors[("disk", "corrupt")] == 2 and errors[("disk", "write")] == 0
    assert stats.sampled["edgeshield_cache_bytes"]() == {("disk",): 5}
    counts["hits"] = 4  # read at scrape time, not copied
    assert stats.sampled["edgeshield_cache_tier_hits"]() == {("disk",): 4}


@pytest.fixture
async def disk_app(tmp_path: Path) -> AsyncIterator[EdgeShield]:
    """The app with its lifespan and a disk tier, as uvicorn runs it."""
    config = tmp_path / "c.toml"
    config.write_text(
        f'[server]\naccess_log = "off"\n[cache.disk]\npath = "{tmp_path / "disk"}"\n'
        f'[origins.media]\nkind = "fs"\nroot = "{tmp_path}"\n[[routes]]\norigin = "media"\n'
    )
    application = EdgeShield(load_settings(config, {}))
    queue: asyncio.Queue[Message] = asyncio.Queue()
    await queue.put({"type": "lifespan.startup"})
    task = asyncio.ensure_future(application({"type": "lifespan"}, queue.get, Sink()))
    for _ in range(1000):  # a hang guard, not a timing assertion
        if application.state is not None and application.state.ready:
            break
        await asyncio.sleep(0.01)
    try:
        yield application
    finally:
        await queue.put({"type": "lifespan.shutdown"})
        await task


async def test_with_the_disk_tier_each_series_is_registered_once(disk_app: EdgeShield) -> None:
    state = disk_app.state
    assert state is not None and state.disk is not None
    sources = state.stats.sources
    for name in (
        "edgeshield_cache_bytes",
        "edgeshield_cache_entries",
        "edgeshield_cache_evictions",
    ):
        assert list(sources[name]) == ["memory", "disk"]
    for name in ("edgeshield_cache_tier_hits", "edgeshield_cache_tier_errors"):
        assert list(sources[name]) == ["disk"]
    for name in ("edgeshield_inflight_fetches", "edgeshield_bans", "edgeshield_access_log_dropped"):
        assert len(sources[name]) == 1
    with pytest.raises(ValueError):  # a component wired twice is refused, not doubled
        state.disk.register_metrics(state.stats)
    with pytest.raises(ValueError):
        state.cache.memory.register_metrics(state.stats)

    rows: dict[tuple[str, tuple[tuple[str, str], ...]], int] = {}
    text = generate_latest(state.registry).decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            rows[key] = rows.get(key, 0) + 1
    assert all(n == 1 for n in rows.values())
    for name in ("edgeshield_cache_bytes", "edgeshield_cache_entries"):
        assert (name, (("tier", "memory"),)) in rows and (name, (("tier", "disk"),)) in rows
    assert ("edgeshield_cache_tier_hits_total", (("tier", "disk"),)) in rows
