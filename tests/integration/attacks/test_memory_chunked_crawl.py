"""A crawl of large objects that come without a length (an origin answering chunked)
against the memory tier: a yes to an answer of unknown size used to let its body take
a place without a contest once it was in, so a one-time crawl pushed the popular
objects out. Now such a body is weighed when it is in; the popular objects stay hits,
and an answer that claims `stored` is kept."""

from __future__ import annotations

import httpx

from tests.support.origin_server import OriginServer
from tests.support.proxy_server import proxy_config, running_proxy

SIZE = 100_000
MEMORY = 1_420_000  # the hot objects fill it (with their headers); the window 14 KB
HOT = [f"/crawl-mem/hot{i}" for i in range(14)]
CRAWL = [f"/crawl-mem/page{i}" for i in range(40)]


def test_a_chunked_crawl_does_not_flush_the_memory_tier(origin: OriginServer) -> None:
    headers = {"cache-control": "max-age=300"}
    origin.scripts(
        [{"path": p, "size": SIZE, "headers": headers} for p in HOT]
        + [{"path": p, "size": SIZE, "headers": headers, "mode": "chunked"} for p in CRAWL]
    )
    config = proxy_config(origin.url, cache_settings={"memory_bytes": MEMORY})
    with running_proxy(config) as proxy, httpx.Client(base_url=proxy.url, timeout=30) as client:
        for _ in range(4):
            for path in HOT:
                assert client.get(path).status_code == 200
        assert all("; hit" in client.get(p).headers["cache-status"] for p in HOT)
        claimed = []
        for path in CRAWL:
            resp = client.get(path)
            assert resp.status_code == 200 and len(resp.content) == SIZE
            if "stored" in resp.headers["cache-status"]:
                claimed.append(path)
        still = [p for p in HOT if "; hit" in client.get(p).headers["cache-status"]]
        assert still == HOT, f"pushed out: {sorted(set(HOT) - set(still))}"
        # Whatever claimed `stored` was kept (asked again, a hit).
        for path in claimed:
            assert "; hit" in client.get(path).headers["cache-status"], path
