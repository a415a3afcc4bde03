"""Odd and damaged files in the disk tier's directory, shared by the workers of a real
instance ([cluster] socket_dir) or kept by one worker. A FIFO named like an entry file
blocked the scan's open for good (the workers never took their buckets, a lone worker
never started); a symlink would have been read through. Now every file that is not a
regular one is dropped by the scan (the link, never what it points at), a damaged entry
is fetched again rather than served, and a restart with another worker count while the
directory holds all of this still answers every object whole."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import httpx

from tests.integration.test_cluster import wait_for_workers
from tests.integration.test_disk_shared_proxy import config, entry_files, wait_for_buckets
from tests.support.origin_server import OriginServer, gen_bytes
from tests.support.proxy_server import ProxyServer, disk_tier_config, running_proxy

PATHS = [f"/odd-disk/{i}" for i in range(8)]
BODY = 20_000  # over the memory tier's 4 KiB ceiling: only the disk tier keeps it


def _odd_files(disk: Path, outside: Path) -> dict[str, Path]:
    """A FIFO, a symlink to a file outside the tier and a folder, each named like an
    entry file, in buckets spread over the ring."""
    made = {}
    for kind in ("fifo", "symlink", "folder"):
        name = hashlib.sha256(f"odd-{kind}".encode()).hexdigest()
        path = disk / name[:2] / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if kind == "fifo":
            os.mkfifo(path)
        elif kind == "symlink":
            path.symlink_to(outside)
        else:
            path.mkdir(exist_ok=True)
        made[kind] = path
    return made


def _get_all(proxy: ProxyServer) -> list[httpx.Response]:
    with httpx.Client(base_url=proxy.url, timeout=30) as client:
        return [client.get(path) for path in PATHS]


def _stored(disk: Path) -> None:
    deadline = time.monotonic() + 30  # a hang guard: files are written in the background
    while len([p for p in entry_files(disk) if p.is_file() and not p.is_symlink()]) < len(PATHS):
        assert time.monotonic() < deadline, entry_files(disk)
        time.sleep(0.1)


def test_odd_and_damaged_files_in_a_shared_directory(
    origin_server: OriginServer, tmp_path: Path
) -> None:
    for path in PATHS:
        origin_server.script(path, size=BODY, headers={"cache-control": "max-age=600"})
    disk, sockets = tmp_path / "disk", tmp_path / "sockets"
    outside = tmp_path / "secret.txt"
    outside.write_bytes(b"not the cache's")
    odd = _odd_files(disk, outside)
    with running_proxy(config(origin_server, disk, sockets), workers=2) as proxy:
        wait_for_workers(proxy, 2)
        wait_for_buckets(proxy, 2)  # a FIFO's bucket blocked this for good
        assert all(r.content == gen_bytes(0, BODY) for r in _get_all(proxy))
        _stored(disk)
    assert not odd["fifo"].exists() and not odd["symlink"].is_symlink()
    assert outside.read_bytes() == b"not the cache's"  # the link went, not its target

    # Every entry file damaged (last byte flipped), a new FIFO, and a restart with three.
    for file in entry_files(disk):
        if file.is_file():
            data = bytearray(file.read_bytes())
            data[-1] ^= 0xFF
            file.write_bytes(bytes(data))
    _odd_files(disk, outside)
    before = origin_server.stats()["requests"]
    with running_proxy(config(origin_server, disk, sockets), workers=3) as proxy:
        wait_for_workers(proxy, 3)
        wait_for_buckets(proxy, 3)
        answers = _get_all(proxy)
        assert [r.status_code for r in answers] == [200] * len(PATHS)
        assert all(r.content == gen_bytes(0, BODY) for r in answers)  # never the damage
    after = origin_server.stats()["requests"]
    assert [after[f"GET {p}"] - before[f"GET {p}"] for p in PATHS] == [1] * len(PATHS)


def test_a_fifo_in_a_lone_workers_directory_does_not_stop_its_start(
    origin_server: OriginServer, tmp_path: Path
) -> None:
    disk = tmp_path / "disk"
    odd = _odd_files(disk, tmp_path / "missing")  # a dangling link as well
    origin_server.script(PATHS[0], size=BODY, headers={"cache-control": "max-age=600"})
    with running_proxy(disk_tier_config(origin_server.url, disk)) as proxy:
        assert httpx.get(proxy.url + PATHS[0], timeout=30).content == gen_bytes(0, BODY)
    assert not odd["fifo"].exists() and not odd["symlink"].is_symlink()
