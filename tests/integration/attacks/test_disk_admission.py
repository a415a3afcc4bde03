"""The disk tier's admission against a crawler whose objects come without a length (an
origin answering chunked). Such a body is told to the tiers as it grows (store.fits, so
the fetch knows whether to keep it); the disk tier weighed it at its first chunks, which
as cold as it is looked denser than a popular object, and promised it the put of the
whole: a one-time scan pushed the popular object out. A promise now covers up to twice
the size it was weighed at; beyond, the body is weighed again."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.integration.test_disk_admission import DISK_BYTES, SIZE, _on_disk, _status
from tests.support.origin_server import OriginServer
from tests.support.proxy_server import disk_tier_config, running_proxy

FLOOD = 16


def test_a_scan_of_chunked_objects_leaves_the_hot_one_on_disk(
    origin: OriginServer, tmp_path: Path
) -> None:
    headers = {"cache-control": "max-age=300"}
    flood = [f"/dadm-chunked/flood{i}" for i in range(FLOOD)]
    origin.scripts(
        [{"path": "/dadm-chunked/hot", "size": SIZE, "headers": headers}]
        + [{"path": p, "size": SIZE, "headers": headers, "mode": "chunked"} for p in flood]
    )
    config = disk_tier_config(origin.url, tmp_path / "disk").replace(
        "[cache.disk]\n", f"[cache.disk]\nmax_bytes = {DISK_BYTES}\n"
    )
    with running_proxy(config) as proxy, httpx.Client(base_url=proxy.url, timeout=30) as client:
        assert "detail=disk" in _on_disk(client, "/dadm-chunked/hot")
        for path in flood:
            assert _status(client.get(path)).startswith("edgeshield; fwd=miss")
        hot = _status(client.get("/dadm-chunked/hot"))
        assert "detail=disk" in hot, hot
    assert origin.requests("/dadm-chunked/hot") == 1
