"""Hop headers as a way around a route's token check: two real instances with
[cluster] peers and a signed-URL route. The owner skips the route's auth checks for a
request that came over a hop whose signature held, so every way a client might reach
that skip is replayed here: a valid hop signature on the main port (with no token or a
bad one), and on the cluster port no signature, a forged one, an expired (replayed)
one, one made for another object, host, method or stage, and two at once. Each is a
403 with nothing fetched from the origin, and a signed client still gets the bytes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack

import httpx
import pytest

from proxy.auth.native import sign_url
from proxy.cluster import hop
from proxy.cluster.owner import Member, Ring
from tests.integration.test_cluster_auth import CLUSTER_SECRET as SECRET
from tests.integration.test_cluster_auth import KEY, config
from tests.support.origin_server import OriginServer, gen_bytes
from tests.support.ports import free_port
from tests.support.proxy_server import ProxyServer, running_proxy

# Two instances with a signed-URL route under /private (test_cluster_auth's config).
CLUSTER_SECRET = SECRET.encode()
TOKEN_KEY = KEY
HOST = "media.test"
PATH = "/private/target.mp4"
SIZE = 4096


class Cluster:
    def __init__(self, ports: list[int], proxies: list[ProxyServer]) -> None:
        names = [f"http://127.0.0.1:{p}" for p in ports]
        owner = Ring.of(Member(n) for n in names).owner(f"{HOST}{PATH}")
        assert owner is not None
        i = names.index(owner.name)
        self.owner, self.other = proxies[i], proxies[1 - i]
        self.hop_url = f"http://127.0.0.1:{ports[i]}"


@pytest.fixture(scope="module")
def cluster(origin_server: OriginServer) -> Iterator[Cluster]:
    ports = [free_port(), free_port()]
    with ExitStack() as stack:
        proxies = [
            stack.enter_context(running_proxy(config(origin_server.url, p, ports))) for p in ports
        ]
        yield Cluster(ports, proxies)


@pytest.fixture(autouse=True)
def _scripted(origin_server: OriginServer) -> None:
    origin_server.reset()
    origin_server.script(PATH, size=SIZE, headers={"cache-control": "max-age=600"})


def _sign(target: str = PATH, *, stage: int = 2, when: float | None = None, **kw: str) -> str:
    secret = kw.get("secret", "").encode() or CLUSTER_SECRET
    host, method = kw.get("host", HOST), kw.get("method", "GET")
    return hop.sign(secret, method, host, target, stage, time.time() if when is None else when)


def _refused_and_untouched(resp: httpx.Response, origin: OriginServer) -> None:
    assert resp.status_code == 403
    assert len(resp.content) < 200  # a short reason, never a traceback
    assert hop.ANSWERED not in resp.headers
    assert origin.stats()["requests"].get(f"GET {PATH}") is None


# -- the main port: a hop header is just a header ------------------------------------


@pytest.mark.parametrize("stage", hop.STAGES)
@pytest.mark.parametrize("token", ["none", "bad"])
def test_a_valid_hop_signature_on_the_main_port_is_not_a_token(
    cluster: Cluster, origin_server: OriginServer, stage: int, token: str
) -> None:
    target = PATH if token == "none" else PATH + "?token=az1rMSZlPTE.bm90LWEtc2lnbmF0dXJl"
    for proxy in (cluster.owner, cluster.other):
        signed = _sign(target, stage=stage)
        resp = httpx.get(proxy.url + target, headers={"host": HOST, hop.HEADER: signed}, timeout=30)
        _refused_and_untouched(resp, origin_server)
        assert resp.headers["edgeshield-auth-reason"]


# -- the cluster port: only a signature that holds --------------------------------------

FORGERIES = {
    "unsigned": None,
    "forged": {"secret": "not-the-cluster-secret"},
    "replayed an hour later": {"when": "-3600"},
    "signed in the future": {"when": "3600"},
    "signed for another object": {"target": "/private/other.mp4"},
    "signed for another host": {"host": "other.test"},
    "signed for HEAD, sent as GET": {"method": "HEAD"},
    "a worker stage on the instance port": {"stage": "1"},
    "the last worker stage on the instance port": {"stage": "3"},
    "malformed": {"raw": "12.2.zz"},
    "oversized": {"raw": "1" * 5000},
}


def _forgery(spec: dict[str, str] | None) -> list[tuple[str, str]]:
    if spec is None:
        return []
    if "raw" in spec:
        return [(hop.HEADER, spec["raw"])]
    when = time.time() + float(spec.get("when", "0"))
    kw = {k: v for k, v in spec.items() if k in ("secret", "host", "method")}
    value = _sign(spec.get("target", PATH), stage=int(spec.get("stage", "2")), when=when, **kw)
    return [(hop.HEADER, value)]


@pytest.mark.parametrize("name", list(FORGERIES))
def test_a_hop_whose_signature_does_not_hold_is_refused(
    cluster: Cluster, origin_server: OriginServer, name: str
) -> None:
    headers = [("host", HOST), *_forgery(FORGERIES[name])]
    resp = httpx.get(cluster.hop_url + PATH, headers=headers, timeout=30)
    _refused_and_untouched(resp, origin_server)


def test_two_signatures_on_one_hop_are_refused(
    cluster: Cluster, origin_server: OriginServer
) -> None:
    good = _sign()
    headers = [("host", HOST), (hop.HEADER, good), (hop.HEADER, good)]
    resp = httpx.get(cluster.hop_url + PATH, headers=headers, timeout=30)
    _refused_and_untouched(resp, origin_server)


def test_after_the_attacks_a_signed_client_gets_the_bytes_with_one_origin_fetch(
    cluster: Cluster, origin_server: OriginServer
) -> None:
    signed = sign_url(PATH, TOKEN_KEY, ttl=300)
    for proxy in (cluster.other, cluster.owner, cluster.other):
        resp = httpx.get(proxy.url + signed, headers={"host": HOST}, timeout=30)
        assert resp.status_code == 200 and resp.content == gen_bytes(0, SIZE)
    assert origin_server.stats()["requests"].get(f"GET {PATH}") == 1
    assert "cluster hop refused" in cluster.owner.log()
