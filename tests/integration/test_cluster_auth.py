"""Key ownership on routes with auth checks ([cluster] with [routes.auth]): the instance
a client asks checks the client's token, then a miss goes to the key's owner over a
signed hop that carries no token; the owner skips the route's checks for that hop
only. One origin fetch for the cluster; a bad token never leaves the instance it was
sent to; a hop signature on the main port counts for nothing."""

from __future__ import annotations

import io
import time
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import httpx

from proxy.auth.keys import Key
from proxy.auth.native import sign_url
from proxy.cache.keys import url_key
from proxy.cluster import hop
from proxy.cluster.owner import Member, Ring
from tests.support.origin_server import OriginServer, gen_bytes
from tests.support.ports import free_port
from tests.support.proxy_server import ProxyServer, running_proxy

CLUSTER_SECRET = "test-cluster-auth-secret"
TOKEN_SECRET = "test-cluster-auth-token-key-0123456789"
KEY = Key("k1", TOKEN_SECRET.encode())
HOST = "media.test"


def config(origin_url: str, self_port: int, ports: list[int]) -> str:
    peers = ", ".join(f'"http://127.0.0.1:{p}"' for p in ports)
    return f"""
[server]
access_log = "off"
[auth]
signing_kid = "k1"
[auth.keys.k1]
secret = "{TOKEN_SECRET}"
[origins.main]
kind = "http"
url = "{origin_url}"
[[routes]]
path_prefix = "/private"
origin = "main"
[routes.auth]
schemes = ["native"]
[[routes]]
path_prefix = "/"
origin = "main"
[cluster]
self = "http://127.0.0.1:{self_port}"
peers = [{peers}]
secret = "{CLUSTER_SECRET}"
"""


@contextmanager
def two_instances(origin: OriginServer) -> Iterator[tuple[list[int], list[ProxyServer]]]:
    """The cluster ports and the running instances, in the same order."""
    ports = [free_port(), free_port()]
    with ExitStack() as stack:
        proxies = [stack.enter_context(running_proxy(config(origin.url, p, ports))) for p in ports]
        yield ports, proxies


def split(
    path: str, ports: list[int], proxies: list[ProxyServer], query: str = ""
) -> tuple[ProxyServer, ...]:
    """(owner, other) for the key of `path` and `query`."""
    ring = Ring.of(Member(f"http://127.0.0.1:{p}") for p in ports)
    owner = ring.owner(url_key(HOST, path, query))
    assert owner is not None
    i = [f"http://127.0.0.1:{p}" for p in ports].index(owner.name)
    return proxies[i], proxies[1 - i]


def metric(proxy: ProxyServer, name: str) -> float:
    text = httpx.get(proxy.url + "/metrics", timeout=30).text
    return sum(float(x.rsplit(" ", 1)[1]) for x in text.splitlines() if x.startswith(name))


def get(proxy: ProxyServer, target: str, **headers: str) -> httpx.Response:
    return httpx.get(proxy.url + target, headers={"host": HOST, **headers}, timeout=30)


def test_a_signed_miss_on_the_non_owner_is_fetched_once_through_the_owner(
    origin_server: OriginServer,
) -> None:
    origin_server.reset()
    path = "/private/a.mp4"
    origin_server.script(path, size=30_000, headers={"cache-control": "max-age=600"})
    with two_instances(origin_server) as (ports, proxies):
        owner, other = split(path, ports, proxies)
        first = get(other, sign_url(path, KEY, ttl=300))
        assert first.status_code == 200 and len(first.content) == 30_000
        assert metric(other, "edgeshield_peer_fetches_total") == 1  # over the hop
        assert metric(owner, 'edgeshield_peer_hops_total{result="served"}') == 1
        # The owner stored it under the token-free key: another client's token hits there.
        again = get(owner, sign_url(path, KEY, ttl=200))
        assert again.status_code == 200 and "hit" in again.headers["cache-status"]
        assert again.content == first.content
        assert get(owner, path).status_code == 403  # its clients still need a token
        assert origin_server.stats()["requests"].get(f"GET {path}") == 1
        assert origin_server.stats()["last_target"][path] == path  # no token reached it


def test_a_bad_token_on_the_non_owner_is_refused_before_any_hop(
    origin_server: OriginServer,
) -> None:
    origin_server.reset()
    path = "/private/b.mp4"
    origin_server.script(path, size=1000, headers={"cache-control": "max-age=600"})
    with two_instances(origin_server) as (ports, proxies):
        owner, other = split(path, ports, proxies)
        signed = sign_url(path, KEY, ttl=300)
        i = len(signed) - 10  # inside the signature, whose every bit counts there
        tampered = signed[:i] + ("A" if signed[i] != "A" else "B") + signed[i + 1 :]
        for target in (path, tampered, sign_url(path, KEY, expires=int(time.time()) - 3600)):
            refused = get(other, target)
            assert refused.status_code == 403, target
            assert refused.headers["edgeshield-auth-reason"]
        assert metric(other, "edgeshield_peer_fetches_total") == 0
        assert metric(owner, "edgeshield_peer_hops_total") == 0
        assert origin_server.stats()["requests"].get(f"GET {path}") is None


def test_a_hop_signature_on_the_main_port_does_not_skip_the_token_check(
    origin_server: OriginServer,
) -> None:
    origin_server.reset()
    path = "/private/c.mp4"
    origin_server.script(path, size=1000, headers={"cache-control": "max-age=600"})
    with two_instances(origin_server) as (ports, proxies):
        owner, _ = split(path, ports, proxies)
        for stage in hop.STAGES:
            signed = hop.sign(CLUSTER_SECRET.encode(), "GET", HOST, path, stage, time.time())
            for target in (path, path + "?token=bad"):
                refused = get(owner, target, **{hop.HEADER: signed})
                assert refused.status_code == 403
                assert refused.headers["edgeshield-auth-reason"]
        assert origin_server.stats()["requests"].get(f"GET {path}") is None
        # The same signature on the cluster port is a hop, and is served.
        cluster_port = ports[proxies.index(owner)]
        signed = hop.sign(CLUSTER_SECRET.encode(), "GET", HOST, path, 2, time.time())
        served = httpx.get(
            f"http://127.0.0.1:{cluster_port}{path}",
            headers={"host": HOST, hop.HEADER: signed},
            timeout=30,
        )
        assert served.status_code == 200 and served.headers[hop.ANSWERED]


def test_the_signed_archive_form_and_credentials_stay_on_the_instance_asked(
    origin_server: OriginServer,
) -> None:
    """Not forwarded: `?archive=zip` (the token binding it is not on the hop, so the
    owner would refuse it) and a request with Authorization (its answer's storing is
    the asking instance's decision). Both are answered all the same."""
    origin_server.reset()
    sizes = [1000, 2000]
    manifest = "".join(
        f"{zlib.crc32(gen_bytes(0, n)):08x} {n} /gen/{n} set/{n}.bin\n" for n in sizes
    )
    origin_server.script("/private/set.txt", body=manifest, headers={"cache-control": "max-age=60"})
    with two_instances(origin_server) as (ports, proxies):
        owner, other = split("/private/set.txt", ports, proxies, "archive=zip")
        signed = sign_url("/private/set.txt?archive=zip", KEY, ttl=300, bind=["archive"])
        archive = get(other, signed)
        assert archive.status_code == 200, archive.text
        with zipfile.ZipFile(io.BytesIO(archive.content)) as zf:
            assert [zf.read(f"set/{n}.bin") for n in sizes] == [gen_bytes(0, n) for n in sizes]
        # The members go to their owners like any miss; the manifest did not.
        members = sum(split(f"/gen/{n}", ports, proxies)[0] is owner for n in sizes)
        assert metric(owner, 'edgeshield_peer_hops_total{result="served"}') == members
        asked = split("/gen/777", ports, proxies)[1]
        before = metric(asked, "edgeshield_peer_fetches_total")
        assert get(asked, "/gen/777", authorization="Bearer x").status_code == 200
        assert metric(asked, "edgeshield_peer_fetches_total") == before
