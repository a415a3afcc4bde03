"""loadtests/bench/nginx_bench.py runs end to end: a real nginx (origin and caching
proxy) and a real edgeshield, a one-second measurement each.

nginx is a requirement of the test suite, not an optional extra: without it this test
fails and says how to install it, so CI cannot silently stop measuring."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from loadtests.bench.nginx_bench import INSTALL_HINT, find_nginx
from tests.support.proxy_server import REPO_ROOT

BENCH = REPO_ROOT / "loadtests" / "bench" / "nginx_bench.py"
pytestmark = pytest.mark.bench
RATIO = re.compile(
    r"^ratio edgeshield / nginx 10 KiB hit: req/s (\d+\.\d\d)  p99 \S+  CPU per request \S+",
    re.M,
)


def test_smoke_run_prints_the_ratios() -> None:
    if find_nginx() is None:
        pytest.fail(f"this test needs nginx.\n{INSTALL_HINT}")
    done = subprocess.run(
        [sys.executable, str(BENCH), "--smoke"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    ratio = RATIO.search(out)
    assert ratio is not None, out
    assert float(ratio.group(1)) > 0
    # Both were checked to be hits with the origin's bytes before measuring.
    assert "edgeshield /obj-10240.bin: 10,240 bytes, hit (edgeshield; hit;" in out
    assert "nginx /obj-10240.bin: 10,240 bytes, hit (HIT)" in out
    assert "ERRORS" not in out
    assert 'edgeshield_cache_entries{tier="memory"} 1' in out


def test_missing_nginx_says_how_to_install() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--smoke", "--nginx", "/nonexistent/nginx"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "apt-get install -y --no-install-recommends nginx" in done.stderr
