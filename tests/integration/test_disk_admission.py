"""The disk tier's admission in a real edgeshield: a flood of large objects asked for once
each (a crawler walking a video library) leaves a popular large object on disk; the
flood is served whole, never claimed `stored` once it would push anything out, and its
refusals are counted under tier="disk"."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.origin_server import OriginServer, gen_bytes
from tests.support.proxy_server import disk_tier_config, running_proxy

SIZE = 256 * 1024  # over the memory tier's object limit (4 KiB): disk only
# Room for four such files (header + body) and a little more.
DISK_BYTES = 4 * SIZE + 64 * 1024
FLOOD = 24


def _disk_metric(client: httpx.Client, name: str) -> float:
    for family in text_string_to_metric_families(client.get("/metrics").text):
        if family.name == name:
            for sample in family.samples:
                if sample.labels == {"tier": "disk"}:
                    return sample.value
    raise AssertionError(f"no {name} series for the disk tier")


def _rejections(client: httpx.Client) -> float:
    return _disk_metric(client, "edgeshield_cache_admission_rejections")


def _status(resp: httpx.Response) -> str:
    assert resp.status_code == 200 and resp.content == gen_bytes(0, SIZE)
    return resp.headers["cache-status"]


def _on_disk(client: httpx.Client, path: str, timeout: float = 30.0) -> str:
    """The Cache-Status of `path` once the disk tier serves it: asked (a miss stores
    it; while its write is in flight it is found in memory), then asked again once the
    disk tier holds an entry. A hang guard, not a timing assertion."""
    deadline = time.monotonic() + timeout
    while "detail=disk" not in (status := _status(client.get(path))):
        while _disk_metric(client, "edgeshield_cache_entries") < 1:
            assert time.monotonic() < deadline, "the entry never reached the disk tier"
            time.sleep(0.05)
        assert time.monotonic() < deadline, status
    return status


def test_a_flood_of_one_time_objects_leaves_the_hot_one_on_disk(
    origin: OriginServer, tmp_path: Path
) -> None:
    headers = {"cache-control": "max-age=300"}
    flood = [f"/dadm/flood{i}" for i in range(FLOOD)]
    origin.scripts([{"path": p, "size": SIZE, "headers": headers} for p in ["/dadm/hot", *flood]])
    config = disk_tier_config(origin.url, tmp_path / "disk").replace(
        "[cache.disk]\n", f"[cache.disk]\nmax_bytes = {DISK_BYTES}\n"
    )
    with running_proxy(config) as proxy, httpx.Client(base_url=proxy.url, timeout=30) as client:
        first = _status(client.get("/dadm/hot"))
        assert first.startswith("edgeshield; fwd=miss") and "stored" in first
        assert "detail=disk" in _on_disk(client, "/dadm/hot")
        for _ in range(3):
            assert "detail=disk" in _status(client.get("/dadm/hot"))
        before = _rejections(client)

        stored = 0
        for path in flood:
            status = _status(client.get(path))
            assert status.startswith("edgeshield; fwd=miss"), status
            stored += "stored" in status
        # The free room (three files) is taken; after it, every one would have pushed
        # the popular object (or one of them) out and was refused.
        assert stored <= 3
        assert _rejections(client) - before == FLOOD - stored

        hot = _status(client.get("/dadm/hot"))
        assert "detail=disk" in hot, hot
        assert origin.requests("/dadm/hot") == 1
        # A refused object was not kept: asked for again, it comes from the origin.
        assert _status(client.get(flood[-1])).startswith("edgeshield; fwd=miss")
