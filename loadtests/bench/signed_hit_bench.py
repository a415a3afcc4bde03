"""Memory hits with a required signature vs without one, same server, same run.

    python loadtests/bench/signed_hit_bench.py [--duration 8] [--rounds 3]
                                               [--connections 32] [--size 10240]

One edgeshield process (one worker, access log off), an fs origin on a temp folder and
two routes over the same object: `/open/...` (no auth) and `/signed/...` (native signed
URLs required). Both are warmed, checked to be hits, then loaded alternately (order
reversed every other round). Prints req/s, p99 and the ratio signed / open (issue 5's
target: >= 0.9). wrk when installed, else the bundled loadgen. Exit status 0 whatever
the figures; non-zero only when the harness could not measure.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from loadtests.bench.common import HOST, Server, free_port, get, run_wrk, wrk_path  # noqa: E402
from loadtests.bench.loadgen import LoadResult, run_in_process  # noqa: E402
from proxy.auth.keys import Key  # noqa: E402
from proxy.auth.native import sign_url  # noqa: E402

SECRET = "bench-secret-not-for-production-0123"
CONFIG = """
[server]
host = "{host}"
port = {port}
access_log = "off"
log_level = "warning"
[auth.keys.bench]
secret = "{secret}"
[origins.files]
kind = "fs"
root = "{root}"
[[routes]]
path_prefix = "/open"
origin = "files"
strip_prefix = "/open"
[routes.cache]
override_ttl = 3600
[[routes]]
path_prefix = "/signed"
origin = "files"
strip_prefix = "/signed"
[routes.cache]
override_ttl = 3600
[routes.auth]
schemes = ["native"]
styles = ["query"]
"""


def load(url: str, args: argparse.Namespace) -> LoadResult:
    if wrk_path() and args.generator != "loadgen":
        return run_wrk(url, args.connections, args.duration, 1)
    return run_in_process(url, args.connections, args.duration)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--size", type=int, default=10240)
    parser.add_argument("--generator", choices=("auto", "wrk", "loadgen"), default="auto")
    args = parser.parse_args(argv)
    args.duration = min(args.duration, 60.0)
    args.rounds = max(1, min(args.rounds, 10))
    with tempfile.TemporaryDirectory(prefix="edgeshield-signed-bench-") as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "objects").mkdir()
        (tmp / "objects" / "obj.bin").write_bytes(b"x" * args.size)
        port = free_port()
        config = tmp / "edgeshield.toml"
        config.write_text(CONFIG.format(host=HOST, port=port, secret=SECRET, root=tmp / "objects"))
        argv_ = [sys.executable, "-m", "proxy.serve.cli", "serve", "--config", str(config)]
        server = Server("edgeshield", argv_, port, tmp / "edgeshield.log")
        server.start("/healthz")
        try:
            signed = sign_url("/signed/obj.bin", Key("bench", SECRET.encode()), ttl=86400)
            paths = {"open": "/open/obj.bin", "signed": signed}
            for name, path in paths.items():
                get(port, path)
                resp = get(port, path)
                status = resp.headers.get("cache-status", "")
                if resp.status != 200 or "; hit" not in status:
                    raise RuntimeError(f"{name}: not a hit ({resp.status}, {status!r})")
            if get(port, "/signed/obj.bin").status != 403:
                raise RuntimeError("unsigned request was not refused")
            results: dict[str, list[LoadResult]] = {"open": [], "signed": []}
            for r in range(args.rounds):
                order = ["open", "signed"] if r % 2 == 0 else ["signed", "open"]
                for name in order:
                    res = load(f"http://{HOST}:{port}{paths[name]}", args)
                    results[name].append(res)
                    print(
                        f"  round {r + 1}/{args.rounds} {name:<7} {res.rps:>10,.0f} req/s  "
                        f"p99 {res.p99_ms:6.2f} ms  non-2xx {res.non_2xx}",
                        flush=True,
                    )
        finally:
            server.stop()
    rps = {n: statistics.median(x.rps for x in rs) for n, rs in results.items()}
    p99 = {n: statistics.median(x.p99_ms for x in rs) for n, rs in results.items()}
    ratios = [s.rps / o.rps for s, o in zip(results["signed"], results["open"], strict=True)]
    print(f"\n{args.size} B memory hit, {args.rounds} x {args.duration:.0f} s, medians:")
    for name in ("open", "signed"):
        print(f"  {name:<7} {rps[name]:>10,.0f} req/s  p99 {p99[name]:6.2f} ms")
    print(
        f"  signed / open: {rps['signed'] / rps['open']:.2f} "
        f"(per round {', '.join(f'{r:.2f}' for r in ratios)}; target >= 0.90)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
