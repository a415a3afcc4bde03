"""granian's options, A/B in one run: the same app under several option sets.

    python loadtests/bench/granian_options_bench.py [--apps edgeshield,asgi,rsgi]
        [--variants default,st,rust] [--variant NAME='{"runtime_threads": 2}']
        [--sizes 10240] [--duration 6] [--rounds 3] [--connections 32] [--pin auto|off]

Each (app, variant) is its own `edgeshield serve` process, one worker, on granian, with
exactly the options proxy/serve/engines.py gives it except those the variant replaces
(loadtests/bench/granian_variant.py). Apps: `edgeshield` (memory hits, access log off,
the hit_bench configuration), `asgi` (loadtests/bench/bare_asgi.py, the same bytes and
headers, no work) and `rsgi` (bare_rsgi.py, the same on granian's RSGI interface).
Servers run on the first CPU and wrk (else the bundled loadgen) on the second, as in
hit_bench.py. `--nginx` adds nginx_bench.py's nginx `proxy_cache` (one worker, cache on
tmpfs) as one more row, to put the figures against nginx's. The servers are measured in
rounds, order reversed every other round, and every variant is compared with the first
one of its app: req/s and server CPU per request, medians, with the per-round req/s
ratios to show the spread. A measurement: exit status 0 whatever the figures.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from loadtests.bench.common import HOST, free_port, get  # noqa: E402
from loadtests.bench.granian_variant import OBJECTS_VAR  # noqa: E402
from loadtests.bench.hit_bench import (  # noqa: E402
    CONFIG,
    Bench,
    Series,
    TreeServer,
    _loadavg,
    _ratio,
    machine,
    pin_cpus,
    pinned_argv,
    size_label,
)

# Named option sets (granian.server.Server keyword arguments; see granian_variant.py).
PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "st": {"runtime_mode": "st"},
    "mt": {"runtime_mode": "mt"},
    "threads2": {"runtime_threads": 2},
    "st-threads2": {"runtime_mode": "st", "runtime_threads": 2},
    "blocking1": {"blocking_threads": 1},
    "rust": {"task_impl": "rust"},
    "asyncio-loop": {"loop": "asyncio"},
    "rloop": {"loop": "rloop"},
    "no-backpressure": {"backpressure": None},
    "flush": {"pipeline_flush": True},
    "no-keepalive": {"keep_alive": False},
    "big-buffer": {"max_buffer_size": 8192 + 4096 * 100},  # granian's default
    "no-ws": {"websockets": False},
}
APPS: dict[str, dict[str, Any]] = {
    "edgeshield": {},
    "asgi": {"target": "loadtests.bench.bare_asgi:app", "factory": False},
    "rsgi": {"target": "loadtests.bench.bare_rsgi:app", "factory": False, "interface": "rsgi"},
}


NGINX_ROW = "nginx/proxy_cache"


class OptionsBench(Bench):
    def start_nginx(self, cache_dir: Path) -> None:
        """nginx_bench.py's nginx `proxy_cache` (and its nginx origin), one worker on the
        server CPU, as a reference row: its 10 KiB hit, warmed to a HIT."""
        from loadtests.bench import nginx_bench

        binary = nginx_bench.find_nginx()
        if binary is None:
            raise SystemExit("--nginx: nginx is not installed")
        argv = ["--sizes", ",".join(map(str, self.args.sizes)), "--stream-size", "0"]
        nb_args = nginx_bench.parse_args([*argv, "--http2", "off"])
        nb = nginx_bench.Bench(nb_args, self.tmp / "nginx", cache_dir, binary, self.pinned)
        (self.tmp / "nginx").mkdir()
        nb.es_names = {}  # nginx and its origin only
        nb.write_objects()
        self.nginx_bench = nb
        nb.start()
        for size in self.args.sizes:
            for _ in range(3):
                resp = get(nb.servers[nginx_bench.NGINX].port, f"/obj-{size}.bin")
                if resp.headers.get("x-cache-status") == "HIT":
                    break
            else:
                raise RuntimeError(f"nginx: /obj-{size}.bin is not a HIT")
        nginx = nb.servers[nginx_bench.NGINX]
        nginx.name = NGINX_ROW
        self.servers[NGINX_ROW] = nginx

    def stop(self) -> None:
        super().stop()
        nb = getattr(self, "nginx_bench", None)
        if nb is not None and nb.origin is not None:
            nb.origin.stop()

    def variant(self, app: str, name: str, overrides: dict[str, Any]) -> TreeServer:
        port = free_port()
        config = self.tmp / f"{app}-{name}.toml"
        config.write_text(CONFIG.format(host=HOST, port=port, access_log="off", root=self.objects))
        opts = json.dumps({**overrides, **APPS[app]})
        argv = [sys.executable, "-m", "loadtests.bench.granian_variant", opts, "serve"]
        argv += ["--config", str(config), "--server", "granian"]
        env = {OBJECTS_VAR: str(self.objects)}
        if self.args.pythonpath:  # e.g. a --target install of rloop
            env["PYTHONPATH"] = self.args.pythonpath
        log = self.tmp / f"{app}-{name}.log"
        return TreeServer(f"{app}/{name}", pinned_argv(argv, self.pinned), port, log, env=env)

    def start(self) -> None:
        for app in self.args.apps:
            for name, overrides in self.args.variants.items():
                self.servers[f"{app}/{name}"] = self.variant(app, name, overrides)
        first = f"/obj-{self.args.sizes[0]}.bin"
        for server in self.servers.values():
            server.start(first)

    def warm_and_check(self) -> None:
        for size, body in self.bodies.items():
            path = f"/obj-{size}.bin"
            for server in self.servers.values():
                if server.name == NGINX_ROW:
                    continue
                resp = get(server.port, path)
                if server.name.startswith("edgeshield/"):
                    resp = get(server.port, path)
                    if "; hit" not in resp.headers.get("cache-status", ""):
                        raise RuntimeError(f"{server.name} {path}: not a hit")
                if resp.status != 200 or resp.body != body:
                    raise RuntimeError(f"{server.name} {path}: wrong answer ({resp.status})")


def report(series: list[Series], args: argparse.Namespace) -> list[str]:
    lines: list[str] = []
    for size in args.sizes:
        lines.append(f"\n== {size_label(size)}: {args.connections} connections, medians ==")
        lines.append(
            f"{'server':<26} {'req/s':>9} {'CPU us/req':>10} {'srv CPU':>7} "
            f"{'req/s ratio':>11} {'CPU ratio':>9}  req/s ratio per round"
        )
        for app in [*args.apps, *(["nginx"] if args.nginx else [])]:
            rows = [s for s in series if s.size == size and s.server.startswith(app + "/")]
            ref = rows[0]
            for s in rows:
                paired = " ".join(
                    f"{_ratio(x.rps, y.rps):.2f}"
                    for x, y in zip(s.samples, ref.samples, strict=True)
                )
                lines.append(
                    f"{s.server:<26} {s.median('rps'):>9,.0f} "
                    f"{s.median('cpu_us_per_req'):>10.1f} {s.median('server_cpu'):>7.0%} "
                    f"{_ratio(s.median('rps'), ref.median('rps')):>11.2f} "
                    f"{_ratio(s.median('cpu_us_per_req'), ref.median('cpu_us_per_req')):>9.2f}"
                    f"  {paired}"
                )
    return lines


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="granian option sets, A/B in one run.")
    p.add_argument("--apps", default="edgeshield", help=f"comma-separated: {', '.join(APPS)}")
    p.add_argument("--variants", default="default,st", help=f"presets: {', '.join(PRESETS)}")
    p.add_argument(
        "--variant", action="append", default=[], metavar="NAME=JSON", help="a custom set"
    )
    p.add_argument("--sizes", default="10240", help="object sizes, bytes, comma-separated")
    p.add_argument("--duration", type=float, default=6.0)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--generator", choices=("auto", "wrk", "loadgen"), default="auto")
    p.add_argument("--wrk-threads", type=int, default=1)
    p.add_argument("--pin", choices=("auto", "off"), default="auto")
    p.add_argument(
        "--nginx", action="store_true", help="add nginx proxy_cache (nginx_bench.py) as a row"
    )
    p.add_argument("--pythonpath", default="", help="PYTHONPATH for the servers")
    args = p.parse_args(argv)
    args.apps = [a for a in args.apps.split(",") if a]
    if not args.apps or any(a not in APPS for a in args.apps):
        p.error(f"--apps: some of {', '.join(APPS)}")
    variants: dict[str, dict[str, Any]] = {}
    for name in filter(None, args.variants.split(",")):
        if name not in PRESETS:
            p.error(f"unknown preset {name!r}")
        variants[name] = PRESETS[name]
    for spec in args.variant:
        name, _, text = spec.partition("=")
        try:
            overrides = json.loads(text)
        except ValueError:
            overrides = None
        if not name or not isinstance(overrides, dict):
            p.error(f"--variant {spec!r}: NAME=JSON object")
        variants[name] = overrides
    if not variants:
        p.error("no variants")
    args.variants = variants
    args.sizes = [int(x) for x in args.sizes.split(",") if x]
    if not 1 <= args.rounds <= 20 or not 0 < args.duration <= 120:
        p.error("--rounds 1..20, --duration (0, 120]")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    info = machine()
    pinned = pin_cpus(args.pin)
    print(
        f"granian options A/B, {time.strftime('%Y-%m-%d %H:%M:%S')}, {info['nproc']} CPU(s), "
        f"Python {info['python']}, pinned: {pinned}, load average before: {_loadavg()}",
        flush=True,
    )
    for name, overrides in args.variants.items():
        print(f"  variant {name}: {json.dumps(overrides)}")
    shm = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    with (
        tempfile.TemporaryDirectory(prefix="edgeshield-granian-") as tmp,
        tempfile.TemporaryDirectory(prefix="edgeshield-granian-nginx-", dir=shm) as cache,
    ):
        bench = OptionsBench(args, Path(tmp), pinned)
        bench.write_objects()
        try:
            bench.start()
            if args.nginx:
                bench.start_nginx(Path(cache))
            bench.warm_and_check()
            series = bench.run()
        except RuntimeError:
            for server in bench.servers.values():  # the logs go with the temp folder
                if server.log_path.exists():
                    print(f"--- {server.name}:\n{server.log_path.read_text()[-2000:]}")
            raise
        finally:
            bench.stop()
    print("\n".join(report(series, args)))
    print(f"load average after: {_loadavg()}")
    return 0 if all(not math.isnan(s.median("rps")) for s in series) else 1


if __name__ == "__main__":
    sys.exit(main())
