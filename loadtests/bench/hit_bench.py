"""Memory-hit benchmark: edgeshield against a bare raw ASGI app on the same engine, same run.

    python loadtests/bench/hit_bench.py [--duration 10] [--connections 32]
                                        [--sizes 10240,1048576] [--rounds 3]
                                        [--server granian|uvicorn] [--pin auto|off]

Starts on 127.0.0.1, each as its own process with one worker on the same engine
(--server: granian, edgeshield's default, or uvicorn), with the options edgeshield gives
it (uvloop; on uvicorn httptools, no server/date header; no engine access log):

- edgeshield, access log on (to a file, as in production), fs origin on a temp folder,
  `override_ttl = 3600` so every measured request is a memory hit;
- edgeshield, access log off (with --access-log both, the default);
- bare ASGI (loadtests/bench/bare_asgi.py): the same bytes, similar headers, no work.

Warms the cache, checks the hit (Cache-Status) and the bytes, then measures each object
size in rounds, alternating the servers (order reversed every other round) so machine
drift hits all of them, and prints the medians and the ratios edgeshield / bare.
With --pin auto (Linux, 2+ CPUs) the servers run on the first CPU and the load generator
on the second. Server CPU counts the whole process tree (granian's worker is a child).
Load: `wrk` when installed (never installed by this script), else the bundled
loadtests/bench/loadgen.py in its own process. Exit status 0 whatever the figures (it is
a measurement); non-zero only when the harness itself could not measure.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `python loadtests/bench/hit_bench.py` from anywhere
    sys.path.insert(0, str(ROOT))

from loadtests.bench.common import (  # noqa: E402
    HOST,
    Server,
    free_port,
    get,
    run_wrk,
    wrk_path,
)
from loadtests.bench.loadgen import LoadResult, run_in_process  # noqa: E402

TARGET_SIZE = 10240
TARGET_RATIO = 0.85
BARE = "bare ASGI"
ES_LOG = "edgeshield (log on)"
ES_NOLOG = "edgeshield (log off)"
MAX_ROUNDS = 20
MAX_DURATION = 120.0

CONFIG = """\
[server]
host = "{host}"
port = {port}
workers = 1
access_log = "{access_log}"
log_level = "warning"

[cache]
memory_bytes = 268_435_456
memory_max_object_bytes = 16_777_216

[origins.bench]
kind = "fs"
root = "{root}"

[[routes]]
host = "*"
path_prefix = "/"
origin = "bench"

[routes.cache]
override_ttl = 3600
"""


@dataclass
class TreeServer(Server):
    """A Server whose CPU time includes its child processes (granian's and nginx's
    workers)."""

    def cpu_seconds(self) -> float:
        assert self.proc is not None
        total = 0.0
        parent = psutil.Process(self.proc.pid)
        for p in [parent, *parent.children(recursive=True)]:
            try:
                t = p.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += t.user + t.system
        return total


def pin_cpus(mode: str) -> tuple[int, int] | None:
    """(server CPU, load CPU) when pinning is possible and wanted: the first two CPUs this
    process may use. This process (and so the load generator it starts) moves to the
    second at once; servers go to the first with `pinned_argv`."""
    if mode == "off" or not hasattr(os, "sched_setaffinity") or not shutil.which("taskset"):
        return None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None
    os.sched_setaffinity(0, {cpus[1]})
    return cpus[0], cpus[1]


def pinned_argv(argv: list[str], pinned: tuple[int, int] | None) -> list[str]:
    """The server's command under taskset on the server CPU, when pinning."""
    return ["taskset", "-c", str(pinned[0]), *argv] if pinned else argv


@dataclass
class Sample:
    round: int
    rps: float
    p99_ms: float
    p50_ms: float
    cpu_us_per_req: float
    server_cpu: float  # server CPU seconds / wall seconds
    errors: int
    non_2xx: int


@dataclass
class Series:
    server: str
    size: int
    samples: list[Sample] = field(default_factory=list)

    def median(self, attr: str) -> float:
        values = [getattr(s, attr) for s in self.samples]
        values = [v for v in values if not math.isnan(v)]
        return statistics.median(values) if values else math.nan


def size_label(n: int) -> str:
    if n >= 1024 * 1024 and n % (1024 * 1024) == 0:
        return f"{n // (1024 * 1024)} MiB"
    if n >= 1024 and n % 1024 == 0:
        return f"{n // 1024} KiB"
    return f"{n} B"


def machine() -> dict[str, str]:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def _loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def wrk_version() -> str:
    try:
        out = subprocess.run(["wrk", "-v"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "wrk"
    m = re.search(r"wrk (\S+)", out.stdout + out.stderr)
    return f"wrk {m.group(1)}" if m else "wrk"


class Bench:
    def __init__(
        self, args: argparse.Namespace, tmp: Path, pinned: tuple[int, int] | None = None
    ) -> None:
        self.args = args
        self.tmp = tmp
        self.pinned = pinned
        self.objects = tmp / "objects"
        self.servers: dict[str, Server] = {}
        self.bodies: dict[int, bytes] = {}
        if args.generator == "auto":
            self.generator = "wrk" if wrk_path() else "loadgen"
        else:
            self.generator = args.generator
        if self.generator == "wrk" and not wrk_path():
            raise SystemExit("--generator wrk: wrk is not installed (apt-get install wrk)")

    # set-up -----------------------------------------------------------------------

    def write_objects(self) -> None:
        self.objects.mkdir()
        rng = random.Random(20261122)  # same bytes every run
        for size in self.args.sizes:
            body = rng.randbytes(size)
            (self.objects / f"obj-{size}.bin").write_bytes(body)
            self.bodies[size] = body

    def edgeshield(self, name: str, access_log: str, source: Path = ROOT) -> Server:
        port = free_port()
        config = self.tmp / f"edgeshield-{port}.toml"
        config.write_text(
            CONFIG.format(host=HOST, port=port, access_log=access_log, root=self.objects)
        )
        # A baseline from before proxy/serve/ existed has its command line at proxy/cli.py.
        cli = "proxy.serve.cli" if (source / "proxy/serve/cli.py").exists() else "proxy.cli"
        argv = [sys.executable, "-m", cli, "serve", "--config", str(config)]
        if (source / "proxy/serve/engines.py").exists():  # older revisions: uvicorn only
            argv += ["--server", self.args.server]
        env = {"PYTHONPATH": str(source)} if source != ROOT else {}
        log = self.tmp / f"edgeshield-{port}.log"
        argv = pinned_argv(argv, self.pinned)
        return TreeServer(name, argv, port, log, env=env, cwd=source)

    def checkout(self, rev: str) -> Path:
        """`rev`'s tree, extracted beside the bench files (no worktree left behind)."""
        where = self.tmp / "baseline"
        where.mkdir()
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", rev], capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(where)], input=archive, check=True)
        return where

    def bare(self) -> Server:
        port = free_port()
        env = {"EDGESHIELD_BENCH_DIR": str(self.objects)}
        log = self.tmp / f"bare-{port}.log"
        if self.args.server == "granian":
            argv = [sys.executable, "-m", "granian", "--interface", "asgi", "--host", HOST]
            argv += ["--port", str(port), "--workers", "1", "--loop", "uvloop"]
            argv += ["--log-level", "warning", "loadtests.bench.bare_asgi:app"]
            return TreeServer(BARE, pinned_argv(argv, self.pinned), port, log, env=env)
        argv = [
            sys.executable,
            "-m",
            "uvicorn",
            "loadtests.bench.bare_asgi:app",
            "--host",
            HOST,
            "--port",
            str(port),
            "--workers",
            "1",
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--lifespan",
            "on",
            "--no-access-log",
            "--no-server-header",
            "--no-date-header",
            "--log-level",
            "warning",
        ]
        return TreeServer(BARE, pinned_argv(argv, self.pinned), port, log, env=env)

    def start(self) -> None:
        self.servers[BARE] = self.bare()
        if self.args.access_log in ("on", "both"):
            self.servers[ES_LOG] = self.edgeshield(ES_LOG, str(self.tmp / "access.log"))
        if self.args.access_log in ("off", "both"):
            self.servers[ES_NOLOG] = self.edgeshield(ES_NOLOG, "off")
        if self.args.baseline:
            name = f"edgeshield@{self.args.baseline[:10]}"
            self.servers[name] = self.edgeshield(name, "off", self.checkout(self.args.baseline))
        first = f"/obj-{self.args.sizes[0]}.bin"
        for server in self.servers.values():
            server.start(first if server.name == BARE else "/healthz")

    def warm_and_check(self) -> None:
        """One GET per object fills the cache; the next must be a memory hit with the
        same bytes as the file (and as the bare app)."""
        for size, body in self.bodies.items():
            path = f"/obj-{size}.bin"
            for server in self.servers.values():
                if server.name != BARE:
                    get(server.port, path)
                resp = get(server.port, path)
                if resp.status != 200 or resp.body != body:
                    raise RuntimeError(f"{server.name} {path}: wrong answer ({resp.status})")
                status = resp.headers.get("cache-status", "")
                if server.name != BARE and "; hit" not in status:
                    raise RuntimeError(f"{server.name} {path}: not a hit: {status!r}")

    # measuring --------------------------------------------------------------------

    def load(self, port: int, size: int, duration: float) -> LoadResult:
        url = f"http://{HOST}:{port}/obj-{size}.bin"
        a = self.args
        if self.generator == "wrk":
            return run_wrk(url, a.connections, duration, a.wrk_threads)
        return run_in_process(url, a.connections, duration)

    def measure(self, server: Server, size: int, round_: int) -> Sample:
        if self.args.warmup > 0:
            self.load(server.port, size, self.args.warmup)
        cpu0 = server.cpu_seconds()
        result = self.load(server.port, size, self.args.duration)
        cpu = server.cpu_seconds() - cpu0
        return Sample(
            round=round_,
            rps=result.rps,
            p99_ms=result.p99_ms,
            p50_ms=result.p50_ms,
            cpu_us_per_req=cpu / result.requests * 1e6 if result.requests else math.nan,
            server_cpu=cpu / result.duration if result.duration else math.nan,
            errors=result.errors,
            non_2xx=result.non_2xx,
        )

    def run(self) -> list[Series]:
        all_series: list[Series] = []
        names = list(self.servers)
        for size in self.args.sizes:
            series = {name: Series(name, size) for name in names}
            for r in range(self.args.rounds):
                order = names if r % 2 == 0 else names[::-1]
                for name in order:
                    sample = self.measure(self.servers[name], size, r)
                    series[name].samples.append(sample)
                    print(
                        f"  {size_label(size):>7} round {r + 1}/{self.args.rounds} "
                        f"{name:<21} {sample.rps:>10,.0f} req/s  p99 {sample.p99_ms:7.2f} ms  "
                        f"server CPU {sample.server_cpu:4.0%}",
                        flush=True,
                    )
            all_series.extend(series.values())
        return all_series

    def outcomes(self) -> dict[str, dict[str, float]]:
        """edgeshield_requests by cache outcome, per edgeshield server (from /metrics)."""
        found: dict[str, dict[str, float]] = {}
        for server in self.servers.values():
            if server.name == BARE:
                continue
            text = get(server.port, "/metrics").body.decode()
            counts: dict[str, float] = {}
            for m in re.finditer(r"^edgeshield_requests_total\{([^}]*)\} (\S+)$", text, re.M):
                cache = re.search(r'cache="([^"]*)"', m.group(1))
                key = cache.group(1) if cache else "?"
                counts[key] = counts.get(key, 0) + float(m.group(2))
            found[server.name] = counts
        return found

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()


def _ratio(a: float, b: float) -> float:
    return a / b if b and not math.isnan(b) else math.nan


def report(
    series: list[Series], args: argparse.Namespace, generator: str
) -> tuple[list[str], dict[str, Any]]:
    lines: list[str] = []
    verdicts: dict[str, Any] = {}
    for size in args.sizes:
        rows = {s.server: s for s in series if s.size == size}
        bare = rows[BARE]
        lines.append("")
        lines.append(
            f"== {size_label(size)} memory hit ({size} bytes): {args.connections} connections, "
            f"{args.duration:g} s x {args.rounds} rounds, {generator}, medians =="
        )
        lines.append(
            f"{'server':<21} {'req/s':>10} {'p99 ms':>8} {'p50 ms':>8} {'CPU us/req':>10} "
            f"{'srv CPU':>7}  {'req/s per round'}"
        )
        for name, s in rows.items():
            per_round = " ".join(f"{x.rps:,.0f}" for x in s.samples)
            errors = sum(x.errors + x.non_2xx for x in s.samples)
            lines.append(
                f"{name:<21} {s.median('rps'):>10,.0f} {s.median('p99_ms'):>8.2f} "
                f"{s.median('p50_ms'):>8.2f} {s.median('cpu_us_per_req'):>10.1f} "
                f"{s.median('server_cpu'):>7.0%}  {per_round}"
                + (f"  ERRORS {errors}" if errors else "")
            )
        for name, s in rows.items():
            if name == BARE:
                continue
            rps_ratio = _ratio(s.median("rps"), bare.median("rps"))
            p99_ratio = _ratio(s.median("p99_ms"), bare.median("p99_ms"))
            cpu_ratio = _ratio(s.median("cpu_us_per_req"), bare.median("cpu_us_per_req"))
            # Same round = measured back to back: the per-round ratios show the spread.
            paired = " ".join(
                f"{_ratio(x.rps, y.rps):.2f}" for x, y in zip(s.samples, bare.samples, strict=True)
            )
            lines.append(
                f"ratio {name} / bare: req/s {rps_ratio:.2f}  p99 {p99_ratio:.2f}  "
                f"CPU per request {cpu_ratio:.2f}  (req/s per round: {paired})"
            )
            verdicts[f"{size}:{name}"] = {
                "rps_ratio": rps_ratio,
                "p99_ratio": p99_ratio,
                "cpu_ratio": cpu_ratio,
            }
    baseline = [name for name in {s.server for s in series} if name.startswith("edgeshield@")]
    for size in args.sizes:
        rows = {s.server: s for s in series if s.size == size}
        for name in baseline:
            if ES_NOLOG in rows:
                lines.append(
                    f"ratio {ES_NOLOG} / {name} at {size_label(size)}: req/s "
                    f"{_ratio(rows[ES_NOLOG].median('rps'), rows[name].median('rps')):.3f}"
                )
    lines.append("")
    for name in (ES_LOG, ES_NOLOG):
        v = verdicts.get(f"{TARGET_SIZE}:{name}")
        if v is None:
            continue
        met = v["rps_ratio"] >= TARGET_RATIO
        lines.append(
            f"{'TARGET MET' if met else 'TARGET MISSED'}: {size_label(TARGET_SIZE)} hits, "
            f"{name} / bare ASGI = {v['rps_ratio']:.2f} (target >= {TARGET_RATIO})"
        )
    return lines, verdicts


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Memory-hit throughput and p99 of edgeshield vs a bare ASGI app."
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--sizes",
        type=lambda text: [int(x) for x in text.split(",") if x.strip()],
        default=[10240, 1048576],
        help="object sizes in bytes, comma-separated",
    )
    parser.add_argument("--rounds", type=int, default=3, help="measurements per server and size")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before each one")
    parser.add_argument("--generator", choices=("auto", "wrk", "loadgen"), default="auto")
    parser.add_argument("--wrk-threads", type=int, default=1)
    parser.add_argument("--access-log", choices=("on", "off", "both"), default="both")
    parser.add_argument(
        "--server",
        choices=("granian", "uvicorn"),
        default="granian",
        help="the engine of every server in the run (edgeshield's default: granian)",
    )
    parser.add_argument(
        "--pin",
        choices=("auto", "off"),
        default="auto",
        help="servers on the first CPU, load generator on the second (auto: when 2+ CPUs)",
    )
    parser.add_argument("--json", type=Path, help="also write all samples to this file")
    parser.add_argument(
        "--baseline",
        metavar="REV",
        help="also measure edgeshield at this git revision (access log off), same run",
    )
    args = parser.parse_args(argv)
    if not 0 < args.duration <= MAX_DURATION:
        parser.error(f"--duration must be in (0, {MAX_DURATION:g}]")
    if not 0 <= args.warmup <= MAX_DURATION:
        parser.error("--warmup out of range")
    if not 1 <= args.rounds <= MAX_ROUNDS:
        parser.error(f"--rounds must be 1..{MAX_ROUNDS}")
    if not 1 <= args.connections <= 1024:
        parser.error("--connections must be 1..1024")
    if not args.sizes or any(not 0 < s <= 16 * 1024 * 1024 for s in args.sizes):
        parser.error("--sizes: 1 byte .. 16 MiB each")
    args.sizes = list(dict.fromkeys(args.sizes))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    info = machine()
    pinned = pin_cpus(args.pin)
    with tempfile.TemporaryDirectory(prefix="edgeshield-bench-") as tmp_name:
        bench = Bench(args, Path(tmp_name), pinned)
        generator = (
            f"{wrk_version()} ({args.wrk_threads} thread)"
            if bench.generator == "wrk"
            else "bundled loadgen (asyncio, 1 process)"
        )
        print(
            f"edgeshield memory-hit benchmark, {time.strftime('%Y-%m-%d %H:%M:%S')}\n"
            f"machine: {info['nproc']} CPU(s), {info['cpu']}, Python {info['python']}\n"
            f"engine: {args.server}, one worker per server; load generator: {generator}; "
            + (
                f"servers pinned to CPU {pinned[0]}, load generator to CPU {pinned[1]}\n"
                if pinned
                else "servers and load generator share these CPUs\n"
            )
            + f"load average before: {_loadavg()}",
            flush=True,
        )
        bench.write_objects()
        try:
            bench.start()
            bench.warm_and_check()
            series = bench.run()
            outcomes = bench.outcomes()
        finally:
            bench.stop()
        log = Path(tmp_name) / "access.log"
        log_lines = log.read_bytes().count(b"\n") if log.exists() else None
    lines, verdicts = report(series, args, generator)
    print("\n".join(lines))
    print(f"load average after: {_loadavg()} (other processes on the machine add noise)")
    for name, counts in outcomes.items():
        summary = ", ".join(f"{k}={v:,.0f}" for k, v in sorted(counts.items()))
        print(f"{name} requests by cache outcome: {summary}")
        if name == ES_LOG and log_lines is not None:
            total = sum(counts.values())
            # Lines also cover requests the counter has not seen yet (the /metrics scrape).
            lost = max(0.0, 1 - log_lines / total) if total else 0.0
            note = f" ({lost:.0%} of the requests have no log line)" if lost >= 0.01 else ""
            print(
                f"{name}: {log_lines:,} access log lines written for {total:,.0f} requests" + note
            )
    if args.json:
        record = {
            "date": time.strftime("%Y-%m-%d"),
            "machine": info,
            "generator": generator,
            "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "series": [
                {"server": s.server, "size": s.size, "samples": [asdict(x) for x in s.samples]}
                for s in series
            ],
            "ratios": verdicts,
            "outcomes": outcomes,
            "access_log_lines": log_lines,
        }
        args.json.write_text(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
