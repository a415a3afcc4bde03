"""Key ownership between real edgeshield instances ([cluster], proxy/cluster/): a miss on
a non-owner is fetched from the owner over a signed hop, once per object for the whole
cluster (two and three instances of two workers); an instance leaving moves only its own
keys; a failing, hanging or garbage peer costs at most its timeout, then the origin
answers; an unsigned hop gets 403; two instances that disagree on the peer list never
forward a request twice. The workers of one instance ([cluster] socket_dir) fetch a cold
object once and keep one copy."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest

from proxy.cluster import hop
from proxy.cluster.owner import Member, Ring
from tests.support.origin_server import OriginServer
from tests.support.ports import free_port
from tests.support.proxy_server import ProxyServer, proxy_config, running_proxy

SECRET = "test-cluster-secret"
HOST = "media.test"


def cluster_config(
    origin_url: str, self_port: int, peer_ports: list[int], **cluster: object
) -> str:
    lines = [
        "[cluster]",
        f'self = "http://127.0.0.1:{self_port}"',
        "peers = [" + ", ".join(f'"http://127.0.0.1:{p}"' for p in peer_ports) + "]",
        f'secret = "{SECRET}"',
    ]
    lines += [f"{k} = {v!r}" for k, v in cluster.items()]
    return proxy_config(origin_url) + "\n".join(lines) + "\n"


def owner_port(path: str, ports: list[int]) -> int:
    ring = Ring.of(Member(f"http://127.0.0.1:{p}") for p in ports)
    owner = ring.owner(f"{HOST}{path}")
    assert owner is not None
    return int(owner.name.rsplit(":", 1)[1])


def path_owned_by(port: int, ports: list[int], prefix: str) -> str:
    """A path whose key `port` owns."""
    return next(f"{prefix}{i}" for i in range(1000) if owner_port(f"{prefix}{i}", ports) == port)


@contextmanager
def two_instances(origin: OriginServer, **cluster: object) -> Iterator[list[ProxyServer]]:
    ports = [free_port(), free_port()]
    with ExitStack() as stack:
        yield [
            stack.enter_context(running_proxy(cluster_config(origin.url, p, ports, **cluster)))
            for p in ports
        ]


def get(proxy: ProxyServer, path: str) -> httpx.Response:
    return httpx.get(proxy.url + path, headers={"host": HOST}, timeout=30)


def cluster_port(proxy: ProxyServer) -> int:
    text = proxy.config_text or ""
    return int(text.split('self = "http://127.0.0.1:')[1].split('"')[0])


def test_a_miss_on_the_non_owner_is_fetched_once_through_the_owner(
    origin_server: OriginServer,
) -> None:
    origin_server.reset()
    with two_instances(origin_server) as (a, b):
        ports = [cluster_port(a), cluster_port(b)]
        owner, other = (a, b) if owner_port("/gen/5000", ports) == ports[0] else (b, a)
        first = get(other, "/gen/5000")
        assert first.status_code == 200 and len(first.content) == 5000
        again = get(owner, "/gen/5000")  # the owner stored what it fetched for the hop
        assert again.content == first.content
        assert "hit" in again.headers["cache-status"]
        assert "hit" in get(other, "/gen/5000").headers["cache-status"]  # a copy kept
        assert origin_server.stats()["requests"].get("GET /gen/5000") == 1
        assert "edgeshield-peer" not in first.headers  # the hop's mark stays inside


def test_concurrent_cold_requests_on_both_instances_cost_one_origin_fetch(
    origin_server: OriginServer,
) -> None:
    origin_server.reset()
    origin_server.script("/cold", size=200_000, headers={"cache-control": "max-age=60"})

    async def burst(proxies: list[ProxyServer]) -> list[int]:
        async with httpx.AsyncClient(timeout=30, headers={"host": HOST}) as client:
            answers = await asyncio.gather(
                *(client.get(proxies[i % 2].url + "/cold") for i in range(40))
            )
        return [len(r.content) for r in answers if r.status_code == 200]

    with two_instances(origin_server) as proxies:
        assert asyncio.run(burst(proxies)) == [200_000] * 40
    assert origin_server.stats()["requests"].get("GET /cold") == 1


def test_a_hop_without_a_valid_signature_is_refused(origin_server: OriginServer) -> None:
    with two_instances(origin_server) as (a, _):
        port = cluster_port(a)
        hop_url = f"http://127.0.0.1:{port}/gen/10"
        assert httpx.get(hop_url, headers={"host": HOST}).status_code == 403
        forged = {"host": HOST, hop.HEADER: hop.sign(b"wrong", "GET", HOST, "/gen/10", 2, 0)}
        assert httpx.get(hop_url, headers=forged).status_code == 403
        signed = hop.sign(SECRET.encode(), "GET", HOST, "/gen/10", 2, time.time())
        other = {"host": HOST, hop.HEADER: signed}  # signed for another object
        assert httpx.get(f"http://127.0.0.1:{port}/gen/11", headers=other).status_code == 403
        worker_stage = hop.sign(SECRET.encode(), "GET", HOST, "/gen/10", 1, time.time())
        assert (
            httpx.get(hop_url, headers={"host": HOST, hop.HEADER: worker_stage}).status_code == 403
        )
        good = httpx.get(hop_url, headers={"host": HOST, hop.HEADER: signed})
        assert good.status_code == 200 and good.headers[hop.ANSWERED]
        assert origin_server.stats()["requests"].get("GET /gen/11") is None
        assert "cluster hop refused" in a.log()


class FakePeer:
    """A TCP listener at a peer's address that hangs (accepts, never answers) or
    answers garbage."""

    def __init__(self, mode: str) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.mode = mode
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            if self.mode == "garbage":
                conn.recv(65536)
                body = b"not an owner"
                conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))

    def close(self) -> None:
        self.sock.close()
        for conn in self.conns:
            conn.close()


@pytest.mark.parametrize("mode", ["hang", "garbage", "down"])
def test_a_failing_owner_costs_at_most_its_timeout_then_the_origin_answers(
    origin_server: OriginServer, mode: str
) -> None:
    origin_server.reset()
    fake = FakePeer(mode)
    dead_port = free_port()
    fake_port = dead_port if mode == "down" else fake.port
    if mode == "down":
        fake.close()
    port = free_port()
    ports = [port, fake_port]
    path = path_owned_by(fake_port, ports, "/gen/")
    config = cluster_config(origin_server.url, port, ports, first_byte_timeout=1.0)
    try:
        with running_proxy(config) as proxy:
            first = get(proxy, path)  # a hang costs the 1 s timeout, not the client's 30 s
            assert first.status_code == 200
            assert origin_server.stats()["requests"].get(f"GET {path}") == 1
            # The peer is skipped now: the next owned miss goes straight to the origin.
            second = path_owned_by(fake_port, ports, "/gen/2")
            assert get(proxy, second).status_code == 200
            metrics = httpx.get(proxy.url + "/metrics").text
            assert "edgeshield_peer_errors_total" in metrics
            assert f'edgeshield_peer_up{{peer="http://127.0.0.1:{fake_port}"}} 0.0' in metrics
            assert "skipped for" in proxy.log()
    finally:
        fake.close()


def test_peer_lists_that_disagree_never_loop(origin_server: OriginServer) -> None:
    """A thinks B owns everything and B thinks A does: each forwards at most once, the
    hop is served where it lands, and the origin is asked once per object."""
    origin_server.reset()
    pa, pb = free_port(), free_port()
    a_cfg = cluster_config(origin_server.url, pa, [pb], first_byte_timeout=5.0)
    b_cfg = cluster_config(origin_server.url, pb, [pa], first_byte_timeout=5.0)
    with running_proxy(a_cfg) as a, running_proxy(b_cfg) as b:
        for i in range(3):
            assert get(a, f"/gen/{300 + i}").status_code == 200
            assert get(b, f"/gen/{400 + i}").status_code == 200
        requests = origin_server.stats()["requests"]
        assert all(requests.get(f"GET /gen/{n}") == 1 for n in (300, 301, 302, 400, 401, 402))
        for proxy in (a, b):
            assert "peer_errors_total{" not in httpx.get(proxy.url + "/metrics").text


def test_a_peer_list_naming_this_instance_twice_starts_with_a_warning(
    origin_server: OriginServer,
) -> None:
    port = free_port()
    config = cluster_config(origin_server.url, port, [port, port, free_port()])
    with running_proxy(config) as proxy:
        assert get(proxy, "/gen/7").status_code == 200
        assert "more than once" in proxy.log()


def metric(proxy: ProxyServer, name: str) -> float:
    text = httpx.get(proxy.url + "/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def wait_for_workers(proxy: ProxyServer, n: int) -> None:
    """Until every worker sees `n` workers in the socket folder (a hang guard only). The
    metric alone is not enough: it merges the snapshots the workers wrote, and one that
    has not written one yet is not in it; so each of the `n` must also have logged it."""
    deadline = time.monotonic() + 60
    seen = f"cluster: {n} workers of this instance own keys"
    while metric(proxy, "edgeshield_peer_workers") < n or (n > 1 and proxy.log().count(seen) < n):
        assert time.monotonic() < deadline, proxy.log()
        time.sleep(0.2)


def workers_holding(folder: Path, path: str) -> int:
    """How many workers answer `path` from their own memory: each asked on its own
    socket at the last stage, where it serves the request itself (one without a copy
    fetches it then, so ask after counting origin fetches)."""
    holding = 0
    for sock in sorted(folder.glob("*.sock")):
        signed = hop.sign(SECRET.encode(), "GET", HOST, path, 3, time.time())
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(sock)), timeout=30) as client:
            resp = client.get(f"http://w{path}", headers={"host": HOST, hop.HEADER: signed})
        # The last member is this worker's (a relayed copy keeps its owner's before it).
        last = resp.headers["cache-status"].split(",")[-1].strip()
        holding += last.startswith("edgeshield; hit")
    return holding


async def fresh_connections(urls: list[str]) -> list[httpx.Response]:
    async def one(url: str) -> httpx.Response:
        async with httpx.AsyncClient(timeout=60, headers={"host": HOST}) as client:
            return await client.get(url)

    return await asyncio.gather(*(one(u) for u in urls))


@contextmanager
def worker_instances(
    origin: OriginServer, ports: list[int], folder: Path
) -> Iterator[list[ProxyServer]]:
    """An instance of two workers on each port, all peers, instance i's workers meeting in
    `folder`/i, relays keeping no hot copies; once every worker owns its keys."""
    with ExitStack() as stack:
        proxies = []
        for i, port in enumerate(ports):
            config = cluster_config(origin.url, port, ports) + (
                f'socket_dir = "{folder / str(i)}"\nhot_copy_requests = 0\n'
            )
            proxies.append(stack.enter_context(running_proxy(config, workers=2)))
        for proxy in proxies:
            wait_for_workers(proxy, 2)
        yield proxies


def test_the_workers_of_one_instance_fetch_a_cold_object_once_and_keep_one_copy(
    origin_server: OriginServer, tmp_path: Path
) -> None:
    origin_server.reset()
    origin_server.script("/w", size=100_000, headers={"cache-control": "max-age=60"})
    config = proxy_config(origin_server.url) + (
        f'[cluster]\nsocket_dir = "{tmp_path}"\nsecret = "{SECRET}"\nhot_copy_requests = 0\n'
    )
    with running_proxy(config, workers=2) as proxy:
        wait_for_workers(proxy, 2)
        answers = asyncio.run(fresh_connections([proxy.url + "/w"] * 40))
        assert [len(r.content) for r in answers if r.status_code == 200] == [100_000] * 40
        assert origin_server.stats()["requests"].get("GET /w") == 1
        assert workers_holding(tmp_path, "/w") == 1
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
            f"{pid}.sock" for pid in _pids(tmp_path)
        )
    assert list(tmp_path.iterdir()) == []  # each worker removed its socket


def _pids(folder: Path) -> list[int]:
    return [int(p.name.split(".")[0]) for p in folder.iterdir()]


def test_a_worker_socket_refuses_unsigned_requests(
    origin_server: OriginServer, tmp_path: Path
) -> None:
    config = proxy_config(origin_server.url) + (
        f'[cluster]\nsocket_dir = "{tmp_path}"\nsecret = "{SECRET}"\n'
    )
    with running_proxy(config) as proxy:
        wait_for_workers(proxy, 1)
        (sock,) = tmp_path.iterdir()
        assert oct(sock.stat().st_mode & 0o777) == "0o600"
        transport = httpx.HTTPTransport(uds=str(sock))
        with httpx.Client(transport=transport) as client:
            assert client.get("http://w/gen/3", headers={"host": HOST}).status_code == 403
            wrong_stage = hop.sign(SECRET.encode(), "GET", HOST, "/gen/3", 2, time.time())
            refused = client.get("http://w/gen/3", headers={"host": HOST, hop.HEADER: wrong_stage})
            assert refused.status_code == 403  # the instance hop's stage, on a worker socket
            signed = hop.sign(SECRET.encode(), "GET", HOST, "/gen/3", 1, time.time())
            ok = client.get("http://w/gen/3", headers={"host": HOST, hop.HEADER: signed})
            assert ok.status_code == 200 and ok.headers[hop.ANSWERED].startswith("unix:")


def test_two_instances_of_two_workers_fetch_a_cold_object_once(
    origin_server: OriginServer, tmp_path: Path
) -> None:
    """Over both levels: the asking instance's owning worker asks the owning instance,
    whose owning worker fetches; one copy per instance (relays keep no hot copies)."""
    origin_server.reset()
    origin_server.script("/both", size=100_000, delay=0.2, headers={"cache-control": "max-age=60"})
    ports = [free_port(), free_port()]
    with worker_instances(origin_server, ports, tmp_path) as proxies:
        urls = [proxies[i % 2].url + "/both" for i in range(60)]
        answers = asyncio.run(fresh_connections(urls))
        assert [len(r.content) for r in answers if r.status_code == 200] == [100_000] * 60
        assert origin_server.stats()["requests"].get("GET /both") == 1
        assert [workers_holding(tmp_path / str(i), "/both") for i in (0, 1)] == [1, 1]


def test_three_instances_of_two_workers_fetch_each_cold_object_once(
    origin_server: OriginServer, tmp_path: Path
) -> None:
    """Three instances of two workers, an object owned by each instance: 90 requests
    spread over all three on fresh connections cost one origin fetch per object, and
    each instance keeps one copy of each."""
    origin_server.reset()
    ports = [free_port() for _ in range(3)]
    paths = [path_owned_by(port, ports, "/three-") for port in ports]
    for path in paths:
        origin_server.script(path, size=50_000, delay=0.2, headers={"cache-control": "max-age=60"})
    with worker_instances(origin_server, ports, tmp_path) as proxies:
        urls = [proxies[i % 3].url + paths[i // 3 % 3] for i in range(90)]
        answers = asyncio.run(fresh_connections(urls))
        assert [len(r.content) for r in answers if r.status_code == 200] == [50_000] * 90
        requests = origin_server.stats()["requests"]
        assert [requests.get(f"GET {path}") for path in paths] == [1, 1, 1]
        for path in paths:
            assert [workers_holding(tmp_path / str(i), path) for i in range(3)] == [1, 1, 1]


def registry_config(origin_url: str, port: int, redis_port: int, redis_extra: str = "") -> str:
    return (
        proxy_config(origin_url)
        + f'[redis]\nurl = "redis://127.0.0.1:{redis_port}/0"\n{redis_extra}'
        + f'[cluster]\nself = "http://127.0.0.1:{port}"\nsecret = "{SECRET}"\n'
        + "registry = true\nheartbeat_interval = 0.2\nmember_ttl = 2.0\n"
    )


def wait_for_peers(proxy: ProxyServer, n: int) -> None:
    """Until the instance ring holds `n` instances (a hang guard only)."""
    deadline = time.monotonic() + 60
    while True:
        text = httpx.get(proxy.url + "/metrics", timeout=10).text
        rows = [x for x in text.splitlines() if x.startswith('edgeshield_peer_share{peer="http')]
        if len(rows) == n:
            return
        assert time.monotonic() < deadline, proxy.log()
        time.sleep(0.2)


def test_instances_found_in_the_redis_registry_share_their_misses(
    origin_server: OriginServer,
) -> None:
    from tests.support.redis_server import running_redis

    origin_server.reset()
    with running_redis() as redis_server:
        ports = [free_port(), free_port()]
        with ExitStack() as stack:
            a, b = (
                stack.enter_context(
                    running_proxy(registry_config(origin_server.url, p, redis_server.port))
                )
                for p in ports
            )
            wait_for_peers(a, 2)
            wait_for_peers(b, 2)
            paths = [f"/gen/{600 + i}" for i in range(6)]
            for path in paths:  # each cold object asked of the instance that does not own it
                asked = b if owner_port(path, ports) == ports[0] else a
                assert get(asked, path).status_code == 200
            requests = origin_server.stats()["requests"]
            assert [requests.get(f"GET {p}") for p in paths] == [1] * 6
            fetched = [metric(p, "edgeshield_peer_fetches_total") for p in (a, b)]
            assert sum(fetched) == 6  # each from its owner, found in the registry
            b.stop()  # its entry is no longer renewed: it leaves the ring
            wait_for_peers(a, 1)
            assert get(a, "/gen/700").status_code == 200
        assert "cluster: 2 instances own keys" in a.log()


def test_an_instance_leaving_a_ring_of_three_moves_only_its_own_keys(
    origin_server: OriginServer,
) -> None:
    """Three instances in the Redis registry, each object fetched by its owner; the third
    stops, and asked through the second, only the objects the third owned are fetched
    from the origin again: the others are still where they were. (Redis keeps no
    objects here, so only the instances' own tiers can answer.)"""
    from tests.support.redis_server import running_redis

    origin_server.reset()
    with running_redis() as redis_server:
        ports = [free_port() for _ in range(3)]
        with ExitStack() as stack:
            proxies = [
                stack.enter_context(
                    running_proxy(
                        registry_config(
                            origin_server.url, p, redis_server.port, "max_object_bytes = 1\n"
                        )
                    )
                )
                for p in ports
            ]
            for proxy in proxies:
                wait_for_peers(proxy, 3)
            paths = [f"/gen/{900 + i}" for i in range(18)]
            owners = [ports.index(owner_port(path, ports)) for path in paths]
            assert set(owners) == {0, 1, 2}
            for path, owner in zip(paths, owners, strict=True):
                assert get(proxies[owner], path).status_code == 200  # no copy elsewhere
            proxies[2].stop()  # its entry is no longer renewed: it leaves the ring
            wait_for_peers(proxies[0], 2)
            wait_for_peers(proxies[1], 2)
            for path in paths:
                assert get(proxies[1], path).status_code == 200
            requests = origin_server.stats()["requests"]
            assert [requests.get(f"GET {path}") for path in paths] == [
                2 if owner == 2 else 1 for owner in owners
            ]


def test_an_unreachable_registry_is_a_warning_and_the_instance_serves(
    origin_server: OriginServer,
) -> None:
    config = registry_config(origin_server.url, free_port(), free_port())  # nothing there
    with running_proxy(config) as proxy:
        assert get(proxy, "/gen/8").status_code == 200
        deadline = time.monotonic() + 60
        while "cluster registry unreachable" not in proxy.log():
            assert time.monotonic() < deadline, proxy.log()
            time.sleep(0.2)


@pytest.mark.parametrize("hot_copy_requests", [3, 0])
def test_a_relaying_worker_keeps_its_own_copy_of_a_hot_object(
    origin_server: OriginServer, tmp_path: Path, hot_copy_requests: int
) -> None:
    """Once a worker was asked for an object `hot_copy_requests` times, it keeps its own
    copy instead of relaying each request to the owning worker: every worker then
    answers it as a hit of its own. 0: the relay never keeps one."""
    path = f"/hot-{hot_copy_requests}"
    origin_server.script(path, size=5_000, headers={"cache-control": "max-age=300"})
    config = proxy_config(origin_server.url) + (
        f'[cluster]\nsocket_dir = "{tmp_path}"\nsecret = "{SECRET}"\n'
        f"hot_copy_requests = {hot_copy_requests}\n"
    )
    with running_proxy(config, workers=2) as proxy:
        wait_for_workers(proxy, 2)
        for _ in range(4):  # sequential rounds: each worker asked several times
            asyncio.run(fresh_connections([proxy.url + path] * 12))
        answers = asyncio.run(fresh_connections([proxy.url + path] * 24))
        assert all(r.status_code == 200 and len(r.content) == 5_000 for r in answers)
        assert origin_server.stats()["requests"].get(f"GET {path}") == 1
        if hot_copy_requests:
            last = [r.headers["cache-status"].split(",")[-1].strip() for r in answers]
            assert all(s.startswith("edgeshield; hit") for s in last), last
        else:  # asked directly, only the owning worker has it (however the kernel
            # spread the connections)
            assert workers_holding(tmp_path, path) == 1
