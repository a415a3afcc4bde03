"""Slow-reader RSS (issue 11 item 5), measured on loopback:

    python loadtests/bench/slow_reader_bench.py [--clients 300] [--size-mib 64]
                                                [--pass-clients 100] [--pass-size-mib 96]

Two cases against one real `edgeshield serve` (memory tier limited to 1 MiB objects, disk
tier on with a 65 MiB object limit, so 64 MiB bodies fit with their headers) and the
scripted test origin:
  disk  a disk-tier object (warmed once, then served with detail=disk)
  pass  an object larger than every tier: each client has its own origin stream
  nostore  the same size with Cache-Control: no-store (the issue's reproduction)
For each: the server's RSS before, at its peak while N raw-socket clients (small
SO_RCVBUF) have read the head and stopped reading, and after they reset their
connections (settled: three samples within 1 %). Bounded in count and time; exit 0
whatever the figures.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from proxy.serve.memory_tuning import COLLECT_INTERVAL, TRIM_INTERVAL  # noqa: E402
from tests.support.origin_server import running_origin  # noqa: E402
from tests.support.proxy_server import running_proxy  # noqa: E402
from tests.support.slow_readers import rss, settle, stalled_readers, wait_until  # noqa: E402

MiB = 1024 * 1024


def config(origin_url: str, disk: Path) -> str:
    return f"""
[server]
access_log = "off"
log_level = "warning"
[cache]
memory_max_object_bytes = {MiB}
[cache.disk]
path = "{disk}"
max_bytes = {1024 * MiB}
max_object_bytes = {65 * MiB}
[origins.main]
kind = "http"
url = "{origin_url}"
read_timeout = 600.0
[[routes]]
origin = "main"
"""


def measure(pid: int, port: int, path: str, clients: int) -> tuple[int, int, int]:
    time.sleep(2 * TRIM_INTERVAL)  # what the warm-up left is trimmed first
    start = settle(lambda: rss(pid))
    peak = start
    with stalled_readers(port, path, clients) as heads:
        bad = [h[:40] for h in heads if not h.startswith(b"HTTP/1.1 200")]
        if bad:
            print(f"  unexpected heads: {bad[:3]}")
        peak = max(peak, settle(lambda: rss(pid)))
    # the server trims every TRIM_INTERVAL and collects cycles every COLLECT_INTERVAL at most
    time.sleep(COLLECT_INTERVAL + 2 * TRIM_INTERVAL)
    after = settle(lambda: rss(pid), timeout=90.0)
    return start, peak, after


def report(name: str, clients: int, size: int, figures: tuple[int, int, int]) -> None:
    start, peak, after = (f / MiB for f in figures)
    print(
        f"{name:7} {clients:4d} clients x {size // MiB} MiB: RSS start {start:7.1f} MiB, "
        f"peak {peak:7.1f} (+{peak - start:.1f}), after {after:7.1f} MiB "
        f"({(after - start) / start * 100:+.1f} %)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=300)
    ap.add_argument("--size-mib", type=int, default=64)
    ap.add_argument("--pass-clients", type=int, default=100)
    ap.add_argument("--pass-size-mib", type=int, default=96)
    args = ap.parse_args()
    size, pass_size = args.size_mib * MiB, args.pass_size_mib * MiB
    with tempfile.TemporaryDirectory() as d, running_origin() as origin:
        origin.script("/disk.bin", size=size, headers={"cache-control": "max-age=3600"})
        origin.script("/pass.bin", size=pass_size, headers={"cache-control": "max-age=3600"})
        origin.script("/nostore.bin", size=pass_size, headers={"cache-control": "no-store"})
        with running_proxy(config(origin.url, Path(d) / "disk")) as proxy:
            assert proxy.proc is not None
            pid = proxy.proc.pid
            url = proxy.url + "/disk.bin"
            with httpx.Client(timeout=120.0) as client:
                client.get(url)  # the miss; the disk write follows in the background
                if not wait_until(
                    lambda: "detail=disk" in client.head(url).headers.get("cache-status", "")
                ):
                    print("disk: the object never reached the disk tier")
                    return
            t = time.monotonic()
            report("disk", args.clients, size, measure(pid, proxy.port, "/disk.bin", args.clients))
            report(
                "pass",
                args.pass_clients,
                pass_size,
                measure(pid, proxy.port, "/pass.bin", args.pass_clients),
            )
            report(
                "nostore",
                args.pass_clients,
                pass_size,
                measure(pid, proxy.port, "/nostore.bin", args.pass_clients),
            )
            print(f"({time.monotonic() - t:.0f} s)")


if __name__ == "__main__":
    main()
