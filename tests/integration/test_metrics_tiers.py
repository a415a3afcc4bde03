"""/metrics of a real edgeshield with the disk tier: memory and disk rows side by side
in the per-tier series, each series once (proxy/serve/metrics.py `Stats.sample`)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.origin_server import OriginServer
from tests.support.proxy_server import running_proxy


def _rows(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], list[float]]:
    rows: dict[tuple[str, tuple[tuple[str, str], ...]], list[float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            rows.setdefault(key, []).append(sample.value)
    return rows


def test_metrics_show_memory_and_disk_rows_once(
    origin: OriginServer, origin_server: OriginServer, tmp_path: Path
) -> None:
    body = "0123456789abcdef" * 1024  # 16 KiB: over the memory tier's object limit
    origin.script("/m/big.bin", body=body, headers={"cache-control": "max-age=300"})
    config = f"""
[server]
access_log = "off"
[cache]
memory_max_object_bytes = 4096
[cache.disk]
path = "{tmp_path / "disk"}"
min_object_bytes = 4096
[origins.main]
kind = "http"
url = "{origin_server.url}"
[[routes]]
origin = "main"
"""
    with running_proxy(config) as proxy, httpx.Client(base_url=proxy.url, timeout=10) as client:
        assert client.get("/m/big.bin").content == body.encode()
        deadline = time.monotonic() + 30  # a hang guard: the disk write follows the answer
        while True:
            rows = _rows(client.get("/metrics").text)
            if rows.get(("edgeshield_cache_entries", (("tier", "disk"),))) == [1.0]:
                break
            assert time.monotonic() < deadline, "the object never reached the disk tier"
            time.sleep(0.05)
        assert all(len(values) == 1 for values in rows.values())  # no series twice
        for name in ("edgeshield_cache_bytes", "edgeshield_cache_entries"):
            assert (name, (("tier", "memory"),)) in rows and (name, (("tier", "disk"),)) in rows
        assert rows[("edgeshield_cache_bytes", (("tier", "disk"),))][0] >= len(body)
        assert ("edgeshield_cache_evictions_total", (("tier", "disk"),)) in rows
        assert ("edgeshield_cache_tier_written_bytes_total", (("tier", "disk"),)) in rows
