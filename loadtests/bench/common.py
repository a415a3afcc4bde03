"""Helpers for the benchmarks: free ports, server processes, one-off GETs, wrk."""

from __future__ import annotations

import http.client
import math
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import psutil

from loadtests.bench.loadgen import LoadResult

HOST = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parents[2]


def random_ranges(rng: random.Random, count: int, size: int) -> list[tuple[int, int]]:
    """`count` (start, length) byte ranges of 64 KiB - 2 MiB inside an object of `size`:
    the seeks a video player makes."""
    ranges = []
    for _ in range(count):
        length = rng.randint(64 * 1024, 2 * 1024 * 1024)
        ranges.append((rng.randrange(0, size - length), length))
    return ranges


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


def get(port: int, path: str, timeout: float = 10.0) -> Response:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
        return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, body)
    finally:
        conn.close()


@dataclass
class Server:
    """A server under test: one process, one worker, on 127.0.0.1:port."""

    name: str
    argv: list[str]
    port: int
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path = REPO_ROOT
    proc: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None

    def start(self, ready_path: str, timeout: float = 30.0) -> None:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            self.argv,
            cwd=self.cwd,
            env={**os.environ, **self.env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited early; see {self.log_path}")
            try:
                if get(self.port, ready_path, timeout=2.0).status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready after {timeout} s; see {self.log_path}")

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process (threads included)."""
        assert self.proc is not None
        t = psutil.Process(self.proc.pid).cpu_times()
        return float(t.user + t.system)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # uvicorn: graceful shutdown
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self._log is not None:
            self._log.close()
            self._log = None


def wrk_path() -> str | None:
    return shutil.which("wrk")


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        return math.nan
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk(output: str, url: str, connections: int, duration: float) -> LoadResult:
    """Requests/sec and the --latency distribution from wrk's text output."""

    def first(pattern: str) -> str | None:
        m = re.search(pattern, output, re.MULTILINE)
        return m.group(1) if m else None

    rps = first(r"^Requests/sec:\s+([\d.]+)")
    if rps is None:
        raise RuntimeError(f"cannot parse wrk output:\n{output}")
    requests = first(r"^\s*(\d+) requests in")
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    errors = sum(int(g) for g in socket_errors.groups()) if socket_errors else 0
    non_2xx = first(r"Non-2xx or 3xx responses: (\d+)")
    pct = {
        m.group(1): _ms(m.group(2))
        for m in re.finditer(r"^\s+(50|75|90|99)%\s+(\S+)", output, re.MULTILINE)
    }
    latency = re.search(r"^\s+Latency\s+(\S+)\s+\S+\s+(\S+)", output, re.MULTILINE)
    return LoadResult(
        generator="wrk",
        url=url,
        connections=connections,
        duration=duration,
        requests=int(requests) if requests else 0,
        errors=errors,
        non_2xx=int(non_2xx) if non_2xx else 0,
        body_bytes=0,
        rps=float(rps),
        p50_ms=pct.get("50", math.nan),
        p90_ms=pct.get("90", math.nan),
        p99_ms=pct.get("99", math.nan),
        max_ms=_ms(latency.group(2)) if latency else math.nan,
        mean_ms=_ms(latency.group(1)) if latency else math.nan,
    )


def run_wrk(url: str, connections: int, duration: float, threads: int) -> LoadResult:
    argv = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "10s",
        "--latency",
        url,
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    return parse_wrk(done.stdout, url, connections, max(1, round(duration)))
