"""Without an admin token, the operations surface is for clients on this host only. A
request a proxy on this host relayed (it carries forwarding fields) is not one of them,
whether or not that proxy is trusted (a red-team finding: `X-Forwarded-For: 8.8.4.4`
from loopback read /_admin and purged, while the IP lists saw 8.8.4.4)."""

from __future__ import annotations

import httpx
import pytest

from tests.support.origin_server import OriginServer
from tests.support.proxy_server import proxy_config, running_proxy

RELAYED = [
    {"x-forwarded-for": "8.8.4.4"},
    {"forwarded": "for=8.8.4.4"},
    {"x-real-ip": "8.8.4.4"},
    {"x-forwarded-host": "admin.example"},
]


@pytest.mark.parametrize("trusted", [[], ["127.0.0.0/8"]], ids=["untrusted", "trusted"])
def test_relayed_requests_are_not_loopback_clients(
    origin_server: OriginServer, trusted: list[str]
) -> None:
    config = proxy_config(origin_server.url) + f"[server.trusted_proxies]\ncidrs = {trusted!r}\n"
    config = config.replace("'", '"')
    with running_proxy(config) as proxy:
        for headers in RELAYED:
            status = httpx.get(proxy.url + "/_admin/status.json", headers=headers)
            assert status.status_code == 403, headers
            purge = httpx.request("PURGE", proxy.url + "/gen/10", headers=headers)
            assert purge.status_code == 403, headers
            api = httpx.post(proxy.url + "/_purge", json={"urls": ["/gen/10"]}, headers=headers)
            assert api.status_code == 403, headers
        # A client on this host, unrelayed, still may; the probes stay open to all.
        assert httpx.get(proxy.url + "/_admin/status.json").status_code == 200
        assert httpx.get(proxy.url + "/healthz", headers=RELAYED[0]).status_code == 200
