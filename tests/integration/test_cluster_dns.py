"""Membership from DNS ([cluster] dns, proxy/cluster/dns.py) with the system resolver:
an instance finds itself among the records of a name that resolves on loopback and owns
its keys for a peer that asks it; a name that does not resolve is one warning, and the
instance serves from the origin."""

from __future__ import annotations

import time
from contextlib import ExitStack

import httpx

from tests.integration.test_cluster import SECRET, get, metric, owner_port, wait_for_peers
from tests.support.origin_server import OriginServer
from tests.support.ports import free_port
from tests.support.proxy_server import ProxyServer, proxy_config, running_proxy


def dns_config(origin_url: str, name: str, port: int) -> str:
    return proxy_config(origin_url) + (
        f'[cluster]\ndns = "{name}"\ndns_port = {port}\nhost = "127.0.0.1"\n'
        f'secret = "{SECRET}"\ndns_interval = 0.2\n'
    )


def wait_for_log(proxy: ProxyServer, text: str) -> None:
    deadline = time.monotonic() + 60  # a hang guard only
    while text not in proxy.log():
        assert time.monotonic() < deadline, proxy.log()
        time.sleep(0.2)


def test_an_instance_found_by_dns_owns_keys_for_a_peer_that_asks_it(
    origin_server: OriginServer,
) -> None:
    origin_server.reset()
    a_port, b_port = free_port(), free_port()
    ports = [a_port, b_port]
    with ExitStack() as stack:
        # `localhost` resolves to 127.0.0.1 here: A's only record, local, so A is itself.
        a = stack.enter_context(running_proxy(dns_config(origin_server.url, "localhost", a_port)))
        b_cluster = (
            f'[cluster]\nself = "http://127.0.0.1:{b_port}"\nsecret = "{SECRET}"\n'
            f'peers = ["http://127.0.0.1:{a_port}", "http://127.0.0.1:{b_port}"]\n'
        )
        b = stack.enter_context(running_proxy(proxy_config(origin_server.url) + b_cluster))
        wait_for_peers(a, 1)
        text = httpx.get(a.url + "/metrics", timeout=10).text
        assert f'edgeshield_peer_share{{peer="http://127.0.0.1:{a_port}"}} 1.0' in text
        paths = [f"/gen/{800 + i}" for i in range(8)]
        owned_by_a = [p for p in paths if owner_port(p, ports) == a_port]
        assert owned_by_a  # rendezvous over 2 peers: about half of 8
        for path in paths:
            assert get(b, path).status_code == 200
        for path in owned_by_a:  # now hits on A, the owner
            assert get(a, path).status_code == 200
        requests = origin_server.stats()["requests"]
        assert [requests.get(f"GET {p}") for p in paths] == [1] * len(paths)
        assert metric(b, "edgeshield_peer_fetches_total") == len(owned_by_a)
        assert metric(a, "edgeshield_peer_fetches_total") == 0


def test_a_name_that_does_not_resolve_is_one_warning_and_the_instance_serves(
    origin_server: OriginServer,
) -> None:
    config = dns_config(origin_server.url, "edgeshield-nowhere.invalid", free_port())
    with running_proxy(config) as proxy:
        wait_for_log(proxy, "cluster dns edgeshield-nowhere.invalid does not resolve")
        assert get(proxy, "/gen/9").status_code == 200
        time.sleep(1)  # several more failed resolutions (0.2 s apart): still one warning
        assert proxy.log().count("does not resolve") == 1
