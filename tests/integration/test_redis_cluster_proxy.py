"""Two edgeshield processes on a real 3-node Redis Cluster: the shared tier, shared rate
limits and the purge bus work there as on a single Redis."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.support.origin_server import OriginServer
from tests.support.proxy_server import running_proxy
from tests.support.redis_server import running_redis_cluster

TOKEN = "cluster-token-0123456789abcdef"


def test_shared_tier_and_purge_bus_on_a_cluster(
    origin: OriginServer, origin_server: OriginServer, tmp_path: Path
) -> None:
    with running_redis_cluster(3) as cluster:
        nodes = ", ".join(f'"{host}:{port}"' for host, port in cluster.startup_nodes)
        config = f"""
[server]
access_log = "off"
[admin]
token = "{TOKEN}"
[redis]
cluster_nodes = [{nodes}]
[origins.main]
kind = "http"
url = "{origin_server.url}"
[[routes]]
path_prefix = "/limited"
origin = "main"
[routes.access.ratelimit]
rate = 0.2
burst = 2
[[routes]]
origin = "main"
"""
        for i in range(6):
            origin.script(
                f"/c/{i}.jpg", body=f"c{i}" * 500, headers={"cache-control": "max-age=60"}
            )
        origin.script("/limited/x", body="x", headers={"cache-control": "max-age=60"})
        with running_proxy(config) as a, running_proxy(config) as b:
            for i in range(6):  # keys spread over the nodes
                httpx.get(f"{a.url}/c/{i}.jpg")
            time.sleep(0.3)  # the shared-tier writes run after the responses
            for i in range(6):
                status = httpx.get(f"{b.url}/c/{i}.jpg").headers["cache-status"]
                assert "detail=redis" in status, (i, status)
            codes = [httpx.get(p.url + "/limited/x").status_code for p in (a, b, a, b)]
            assert sorted(codes) == [200, 200, 429, 429]
            r = httpx.post(
                a.url + "/_purge",
                json={"prefixes": ["/c/"]},
                headers={"authorization": f"Bearer {TOKEN}"},
            )
            assert r.status_code == 200 and "errors" not in r.json()
            deadline = time.monotonic() + 30  # a hang guard
            while "hit" in httpx.get(f"{b.url}/c/0.jpg").headers["cache-status"]:
                assert time.monotonic() < deadline, "b kept serving after the purge"
                time.sleep(0.02)
