"""The disk tier through a real edgeshield process: an object too large for memory is
served from disk (Cache-Status detail=disk), survives a restart, and a damaged file is a
miss, never a wrong answer."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.support.origin_server import OriginServer
from tests.support.proxy_server import disk_tier_config, running_proxy


def _served(url: str, timeout: float = 30.0) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:  # the disk write runs after the first response
        r = httpx.get(url)
        if "detail=disk" in r.headers["cache-status"] or time.monotonic() > deadline:
            return r
        time.sleep(0.05)


def test_large_objects_are_served_from_disk_across_restarts(
    origin: OriginServer, origin_server: OriginServer, tmp_path: Path
) -> None:
    text = "0123456789abcdef" * 3200  # 51,200 bytes: over the memory tier's object limit
    body = text.encode()
    origin.script("/d/big.bin", body=text, headers={"cache-control": "max-age=300"})
    config = disk_tier_config(origin_server.url, tmp_path / "disk")
    with running_proxy(config) as proxy:
        first = httpx.get(proxy.url + "/d/big.bin")
        assert first.content == body and "fwd=miss" in first.headers["cache-status"]
        hit = _served(proxy.url + "/d/big.bin")
        assert hit.content == body and "detail=disk" in hit.headers["cache-status"]
    with running_proxy(config) as proxy:  # a new process: the index is rebuilt from files
        again = httpx.get(proxy.url + "/d/big.bin")
        assert again.content == body and "detail=disk" in again.headers["cache-status"]
        # damage every stored file: the next answer comes from the origin, correct
        for path in (tmp_path / "disk").rglob("*"):
            if path.is_file() and not path.name.startswith("."):
                data = bytearray(path.read_bytes())
                data[-10] ^= 0xFF
                path.write_bytes(bytes(data))
        fresh = httpx.get(proxy.url + "/d/big.bin")
        assert fresh.content == body and "fwd=miss" in fresh.headers["cache-status"]
    assert origin.requests("/d/big.bin") == 2
