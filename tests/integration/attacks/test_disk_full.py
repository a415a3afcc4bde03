"""Issue 11, item 3: Cache-Status says `stored` only when a tier keeps the response. A
disk tier on a file system that is full takes nothing, and says so before the head goes
out; once room comes back it stores again. The file system is a real 2 MiB tmpfs."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.origin_server import OriginServer
from tests.support.proxy_server import disk_tier_config, running_proxy

SIZE = 512 * 1024


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    where = tmp_path / "fs"
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _wait_for(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.2)


def test_a_full_disk_is_never_claimed_as_stored(
    origin: OriginServer, origin_server: OriginServer, small_fs: Path
) -> None:
    origin.script("/full/a.bin", size=SIZE, headers={"cache-control": "max-age=600"})
    filler = small_fs / "filler"
    # Leave less room than the object needs (the tier's own lock file is tiny).
    filler.write_bytes(b"\0" * (2 * 1024 * 1024 - SIZE // 2))
    with running_proxy(disk_tier_config(origin_server.url, small_fs / "disk")) as proxy:
        url = proxy.url + "/full/a.bin"
        for n in (1, 2):
            r = httpx.get(url, timeout=30)
            assert r.status_code == 200 and len(r.content) == SIZE
            status = r.headers["cache-status"]
            assert "fwd=miss" in status and "stored" not in status, status
            assert origin.requests("/full/a.bin") == n
        filler.unlink()  # room again: stores resume (free space is looked at each second)

        def stored_and_hit() -> bool:
            status = httpx.get(url, timeout=30).headers["cache-status"]
            return "detail=disk" in status

        _wait_for(stored_and_hit)
        hit = httpx.get(url, timeout=30)
        assert "detail=disk" in hit.headers["cache-status"] and len(hit.content) == SIZE
