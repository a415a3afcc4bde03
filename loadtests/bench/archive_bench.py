"""Figures of batch downloads (proxy/archive/): what a ZIP streamed from a manifest costs
next to fetching its members one by one, both through the same edgeshield.

    python loadtests/bench/archive_bench.py [--members 20] [--member-mib 4] [--rounds 3]

One scripted origin serves N members of M MiB (gen_bytes, cacheable) and a manifest
naming them with their CRC-32s; after one warm-up GET (members and manifest now cached),
each round times a GET of every member (the reference) and a GET of the archive. Printed:
both throughputs and their ratio (archive / members), and the archive's origin requests
after the warm-up (0: everything came from the cache). Ratios, never absolute goals: the
machine is shared.
"""

from __future__ import annotations

import argparse
import sys
import time
import zlib
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.origin_server import gen_bytes, running_origin  # noqa: E402
from tests.support.proxy_server import proxy_config, running_proxy  # noqa: E402

MIB = 1024 * 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--members", type=int, default=20)
    parser.add_argument("--member-mib", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    size = args.member_mib * MIB
    crc = format(zlib.crc32(gen_bytes(0, size)), "08x")
    with running_origin() as origin:
        lines = []
        for i in range(args.members):
            location = f"/m/{i}.bin"
            origin.script(location, size=size, headers={"cache-control": "max-age=3600"})
            lines.append(f"{crc} {size} {location} member-{i}.bin")
        origin.script(
            "/set.zip",
            body="\n".join(lines) + "\n",
            headers={"x-archive-files": "zip", "cache-control": "max-age=3600"},
        )
        config = proxy_config(origin.url, cache_settings={"memory_bytes": 512 * MIB})
        config = config.replace('access_log = "off"', 'access_log = "off"\nlog_level = "warning"')
        with running_proxy(config) as proxy, httpx.Client(timeout=120) as client:
            archive_size = len(client.get(proxy.url + "/set.zip").content)
            before = origin.stats()["total"]
            members_s = archive_s = 0.0
            for _ in range(args.rounds):
                t = time.perf_counter()
                for i in range(args.members):
                    client.get(f"{proxy.url}/m/{i}.bin").raise_for_status()
                members_s += time.perf_counter() - t
                t = time.perf_counter()
                r = client.get(proxy.url + "/set.zip")
                archive_s += time.perf_counter() - t
                assert len(r.content) == archive_size
            total = args.members * size * args.rounds
            print(f"members: {args.members} x {args.member_mib} MiB, archive {archive_size} bytes")
            print(f"members one by one: {total / members_s / MIB:.0f} MiB/s")
            print(f"archive:            {archive_size * args.rounds / archive_s / MIB:.0f} MiB/s")
            ratio = (archive_size * args.rounds / archive_s) / (total / members_s)
            print(f"ratio archive/members: {ratio:.2f}")
            print(f"origin requests after warm-up: {origin.stats()['total'] - before}")


if __name__ == "__main__":
    main()
