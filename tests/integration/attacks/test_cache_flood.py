"""Cache flooding: a client asks for thousands of never-repeated URLs (a cache-busting
query on every request, a crawler, a scan) to push everyone else's objects out of the
memory tier. With LRU every such request evicted a popular object. The memory tier's
admission (W-TinyLFU, proxy/cache/admission.py) lets them pass through its window: each
answer is a clean 200 with the right bytes, the popular objects stay hits, the tier stays
within its byte budget, and the refusals are counted."""

from __future__ import annotations

import re

import httpx

from tests.support.origin_server import OriginServer, gen_bytes
from tests.support.proxy_server import proxy_config, running_proxy

SIZE = 4096
MEMORY_BYTES = 200_000  # about 40 objects of 4 KiB with their headers
HOT = [f"/gen/{SIZE}?hot={i}" for i in range(20)]
FLOOD = 2_000  # fifty times what the tier holds


def _metric(text: str, name: str) -> float:
    m = re.search(rf'^{name}\{{tier="memory"\}} (\S+)$', text, re.M)
    assert m is not None, name
    return float(m.group(1))


def _get(client: httpx.Client, path: str) -> str:
    r = client.get(path)
    assert r.status_code == 200 and r.content == gen_bytes(0, SIZE), path
    return r.headers["cache-status"]


def test_a_flood_of_unique_urls_does_not_flush_the_popular_objects(
    origin: OriginServer,
) -> None:
    config = proxy_config(origin.url, cache_settings={"memory_bytes": MEMORY_BYTES})
    with running_proxy(config) as proxy, httpx.Client(base_url=proxy.url, timeout=10) as client:
        for _ in range(3):
            for path in HOT:
                _get(client, path)
        assert all("; hit" in _get(client, p) for p in HOT)
        for i in range(FLOOD):
            assert "; hit" not in _get(client, f"/gen/{SIZE}?bust={i}")
            if i % 100 == 0:  # the usual traffic goes on during the flood
                for path in HOT:
                    _get(client, path)
        still = [p for p in HOT if "; hit" in _get(client, p)]
        assert still == HOT, f"pushed out: {sorted(set(HOT) - set(still))}"
        metrics = client.get("/metrics").text
        assert _metric(metrics, "edgeshield_cache_bytes") <= MEMORY_BYTES
        assert _metric(metrics, "edgeshield_cache_admission_rejections_total") >= FLOOD // 2
