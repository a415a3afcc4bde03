"""The disk tier shared by the workers of one real instance ([cluster] socket_dir): one
file per object in one directory, written by the worker that owns its bucket, and every
file found again after a restart with three workers, or one."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx

from tests.integration.test_cluster import SECRET, wait_for_workers
from tests.support.origin_server import OriginServer
from tests.support.ports import free_port
from tests.support.proxy_server import (
    ProxyServer,
    disk_tier_config,
    running_proxy,
    serve_until_exit,
)

# The workers' processes, locks and sockets differ per engine: both are run.
ON_EVERY_ENGINE = True
PATHS = [f"/shared-disk/{i}" for i in range(12)]
BODY = 20_000  # over the memory tier's 4 KiB ceiling: only the disk tier keeps it


def config(origin: OriginServer, disk: Path, sockets: Path) -> str:
    return disk_tier_config(origin.url, disk) + (
        f'[cluster]\nsocket_dir = "{sockets}"\nsecret = "{SECRET}"\n'
    )


def wait_for_buckets(proxy: ProxyServer, workers: int) -> None:
    """Until the workers took their disk buckets: one log line each, shares summing to
    all 4,096 (a hang guard only)."""
    deadline = time.monotonic() + 60
    while True:
        shares = [int(n) for n in re.findall(r"keeps (\d+) of 4096 buckets", proxy.log())]
        if len(shares) >= workers and sum(shares[-workers:]) == 4096:
            return
        assert time.monotonic() < deadline, proxy.log()
        time.sleep(0.2)


def entry_files(disk: Path) -> list[Path]:
    return [p for p in disk.glob("*/*") if len(p.name) == 64]


def get_all(proxy: ProxyServer) -> list[httpx.Response]:
    with httpx.Client(base_url=proxy.url, timeout=30) as client:
        return [client.get(path) for path in PATHS]


def test_workers_share_one_directory_and_a_restart_with_another_count_finds_it(
    origin_server: OriginServer, tmp_path: Path, engine: str | None
) -> None:
    origin_server.reset()
    for path in PATHS:
        origin_server.script(path, size=BODY, headers={"cache-control": "max-age=600"})
    disk, sockets = tmp_path / "disk", tmp_path / "sockets"
    with running_proxy(config(origin_server, disk, sockets), workers=2, engine=engine) as proxy:
        wait_for_workers(proxy, 2)
        wait_for_buckets(proxy, 2)
        assert all(r.status_code == 200 and len(r.content) == BODY for r in get_all(proxy))
        deadline = time.monotonic() + 30
        while len(entry_files(disk)) < len(PATHS):  # written in the background
            assert time.monotonic() < deadline, (entry_files(disk), proxy.log())
            time.sleep(0.1)
    # One file per object, in the shared layout: no per-worker directories.
    assert len(entry_files(disk)) == len(PATHS)
    assert not list(disk.glob("w*"))
    requests = origin_server.stats()["requests"]
    assert [requests.get(f"GET {p}") for p in PATHS] == [1] * len(PATHS)

    for workers in (3, 1):
        with running_proxy(
            config(origin_server, disk, sockets), workers=workers, engine=engine
        ) as proxy:
            if workers > 1:
                wait_for_workers(proxy, workers)
                wait_for_buckets(proxy, workers)
            answers = get_all(proxy)
        assert all(r.status_code == 200 and len(r.content) == BODY for r in answers)
        assert all("detail=disk" in r.headers["cache-status"] for r in answers), [
            r.headers["cache-status"] for r in answers
        ]
        requests = origin_server.stats()["requests"]
        assert [requests.get(f"GET {p}") for p in PATHS] == [1] * len(PATHS)


def test_a_second_instance_on_a_shared_directory_is_refused(
    origin_server: OriginServer, tmp_path: Path
) -> None:
    disk = tmp_path / "disk"
    second = tmp_path / "second.toml"
    second.write_text(config(origin_server, disk, tmp_path / "b"))
    with running_proxy(config(origin_server, disk, tmp_path / "a"), workers=2) as proxy:
        wait_for_workers(proxy, 2)
        result = serve_until_exit(second, "--port", str(free_port()), "--workers", "2")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"edgeshield: cache.disk.path: {disk} is in use by another disk tier"
    )


def test_a_second_single_worker_instance_on_a_disk_path_is_refused(
    origin_server: OriginServer, tmp_path: Path
) -> None:
    """Without sharing, the worker locks the directory itself; a second instance is
    still refused before it starts, with the reason (not by its worker failing)."""
    disk = tmp_path / "disk"
    second = tmp_path / "second.toml"
    second.write_text(disk_tier_config(origin_server.url, disk))
    with running_proxy(disk_tier_config(origin_server.url, disk)):
        result = serve_until_exit(second, "--port", str(free_port()))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"edgeshield: cache.disk.path: {disk} is in use by another disk tier"
    )
