"""edgeshield against nginx as a caching reverse proxy, same origin, same run.

    python loadtests/bench/nginx_bench.py [--duration 8] [--rounds 3] [--connections 32]
                                          [--sizes 10240,1048576] [--stream-size 104857600]
                                          [--server granian,uvicorn] [--http2 auto|off]
                                          [--pin auto|off] [--thumbor PATH] [--smoke]

Starts on 127.0.0.1, each as its own process:

- the origin: an nginx serving a temporary folder of objects as static files (sendfile).
  Both proxies fetch from this one process, so neither gets a faster origin; during the
  measurements every request is a hit and the origin is idle;
- nginx as a caching reverse proxy (`proxy_cache_path` on tmpfs when /dev/shm is one,
  `proxy_cache_valid 200 1h`, `proxy_cache_lock on`, keep-alive upstream, one worker,
  no access log), configured by this script from a template and run as the current user
  (`nginx -p PREFIX -c CONF`, pid and temp paths in the temporary folder);
- edgeshield (`edgeshield serve`, one worker, no access log) on each engine of --server
  (default: granian, the default engine; `--server granian,uvicorn` adds the same
  edgeshield under uvicorn to the run), an http origin on the same nginx,
  `override_ttl = 3600`, memory tier sized to hold the 100 MiB object
  (`memory_max_object_bytes` 128 MiB, `memory_bytes` 512 MiB);
- with --thumbor PATH (a thumbor executable, installed separately): thumbor, whose http
  loader fetches the source image from the same origin, for cold transforms.

Checks before measuring that both proxies answer the origin's exact bytes and that the
answer is a hit (edgeshield: Cache-Status; nginx: X-Cache-Status HIT). Then measures
memory hits (10 KiB and 1 MiB: req/s, p99, server CPU per request), streaming a cached
100 MiB object (4 connections: MiB/s) and, with thumbor, cold image transforms, in rounds,
alternating the servers (order reversed every other round), and prints the medians and
the ratios edgeshield / nginx (edgeshield / thumbor for transforms). With h2load
installed (Debian `nghttp2-client`) the hits and the stream are measured again over
HTTP/2 cleartext with prior knowledge: granian's h2c against an nginx `listen ... http2`
port of the same proxy (uvicorn has no HTTP/2).

Pinning (--pin auto, on Linux with 2 or more CPUs): every server runs under
`taskset -c <first CPU>` (its workers inherit it) and this process, with the load
generator it starts, on the second CPU, so the server measured has one core to itself
and never competes with its own load.

nginx has no memory-only cache: its cache is files (keys and metadata in shared memory),
served from the page cache, here on tmpfs. The script never installs anything: without
nginx it prints how to install it and exits 2. Load: `wrk` when installed, else the
bundled loadgen.py. Exit status 0 whatever the figures; non-zero only when the harness
could not measure.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import os
import random
import re
import resource
import shutil
import signal
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
if str(ROOT) not in sys.path:  # `python loadtests/bench/nginx_bench.py` from anywhere
    sys.path.insert(0, str(ROOT))

from loadtests.bench.common import (  # noqa: E402
    HOST,
    Response,
    free_port,
    get,
    parse_wrk,
    wrk_path,
)
from loadtests.bench.hit_bench import (  # noqa: E402
    TreeServer,
    machine,
    pin_cpus,
    pinned_argv,
    size_label,
    wrk_version,
)
from loadtests.bench.loadgen import LoadResult, run_in_process  # noqa: E402

MiB = 1024 * 1024
ES = "edgeshield"  # the default engine's row; another engine's is "edgeshield/<engine>"
ENGINES = ("granian", "uvicorn")
NGINX = "nginx"
# Engines that speak HTTP/2 cleartext with prior knowledge.
H2_ENGINES = frozenset({"granian"})
H2 = "h2:"  # prefix of the HTTP/2 kinds
H2LOAD_HINT = "h2load is not installed: apt-get install -y --no-install-recommends nghttp2-client"
# The targets, edgeshield / nginx: (kind without size or protocol, ratio).
TARGETS = {"hit:10240": 0.60, "hit:1048576": 1.0, "stream": 1.0}
THUMBOR = "thumbor"
MAX_ROUNDS = 20
MAX_DURATION = 120.0
MAX_STREAM = 1024 * MiB
INSTALL_HINT = (
    "nginx is not installed; this benchmark never installs anything. On Debian/Ubuntu:\n"
    "    apt-get install -y --no-install-recommends nginx\n"
    "(nginx-light on Debian 12 is the same binary), or pass --nginx /path/to/nginx."
)
# Non-root users often lack the sbin directories in PATH.
NGINX_PLACES = ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx")
IMAGE_PATH = "/images/photo.jpg"
IMAGE_FORMATS = {"jpeg": "image/jpeg", "webp": "image/webp"}
ES_FORMAT = {"jpeg": "jpg", "webp": "webp"}
# Width x quality pairs as in image_proxy_bench: each one asked once per server is a cold
# transform.
VARIANTS = tuple((w, q) for w in range(381, 421) for q in range(60, 96))

ES_CONFIG = """\
[server]
host = "{host}"
port = {port}
workers = 1
access_log = "off"
log_level = "warning"
http2_cleartext = {h2c}

[cache]
memory_bytes = {memory_bytes}
memory_max_object_bytes = {max_object}

[origins.origin]
kind = "http"
url = "http://{host}:{origin_port}"

[images]
threads = {image_threads}
queue_depth = 256

[[routes]]
host = "*"
path_prefix = "/images/"
origin = "origin"
images = true

[routes.cache]
override_ttl = 3600

[[routes]]
host = "*"
path_prefix = "/"
origin = "origin"

[routes.cache]
override_ttl = 3600
"""

# Shared by both nginx instances. Temp paths point into the prefix so nginx never
# touches /var/lib/nginx; `user` only when root (workers would otherwise run as nobody,
# who cannot enter the private temporary folder).
NGINX_MAIN = """\
{user}worker_processes 1;
daemon off;
master_process on;
pid {prefix}/{name}.pid;
error_log {prefix}/{name}-error.log warn;

events {{
    worker_connections 1024;
}}

http {{
    access_log off;
    types {{ }}
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 65;
    # nginx closes a keep-alive connection after 1000 requests by default; uvicorn never
    # does. Raised so neither pays for reconnections.
    keepalive_requests 1000000;
    open_file_cache max=1000 inactive=60s;
{temp_paths}
{body}
}}
"""

NGINX_ORIGIN = """\
    server {{
        listen {host}:{port};
        root {root};
        location = /healthz {{ return 200 "ok\\n"; }}
    }}
"""

NGINX_PROXY = """\
    proxy_cache_path {cache} levels=1:2 keys_zone=bench:16m max_size=4g inactive=1h
                     use_temp_path=off;
    upstream origin {{
        server {host}:{origin_port};
        keepalive 16;
    }}
    server {{
        listen {host}:{port};
{locations}
    }}
{h2_server}"""

# The same cache behind a second, HTTP/2-only port: h2c with prior knowledge (nginx takes
# no HTTP/1.1 upgrade to h2c, and before 1.25.1 a port speaks one or the other).
NGINX_H2_SERVER = """\
    server {{
        listen {host}:{port}{listen_h2};
{h2_on}{locations}
    }}
"""

NGINX_LOCATIONS = """\
        location = /healthz {{ return 200 "ok\\n"; }}
        location / {{
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache bench;
            proxy_cache_valid 200 1h;
            proxy_cache_lock on;
            add_header X-Cache-Status $upstream_cache_status always;
{extra}
        }}"""

THUMBOR_CONFIG = """\
LOADER = "thumbor.loaders.http_loader"
STORAGE = "thumbor.storages.file_storage"
FILE_STORAGE_ROOT_PATH = "{storage}"
RESULT_STORAGE = None
ENGINE_THREADPOOL_SIZE = {threads}
ALLOW_UNSAFE_URL = True
"""


# servers ----------------------------------------------------------------------------


@dataclass
class Proc(TreeServer):
    """A server process tree (CPU time includes nginx's and granian's workers) that
    stops with the given signal."""

    stop_signal: int = signal.SIGINT
    h2_port: int | None = None  # where it speaks h2c with prior knowledge, if anywhere

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(self.stop_signal)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        super().stop()


def find_nginx(explicit: str | None = None) -> str | None:
    if explicit:  # a name on PATH or a path; absolute, as the servers run in the repo root
        given = shutil.which(explicit)
        return os.path.abspath(given) if given else None
    found = shutil.which("nginx")
    if found:
        return found
    return next((p for p in NGINX_PLACES if os.access(p, os.X_OK)), None)


def nginx_version(binary: str) -> tuple[str, str]:
    """(version, `nginx -V` output)."""
    done = subprocess.run([binary, "-V"], capture_output=True, text=True, timeout=10)
    text = done.stdout + done.stderr
    m = re.search(r"nginx/(\S+)", text)
    return (m.group(1) if m else "?"), text


def fs_type(path: Path) -> str:
    """The file system type of the mount holding `path` (tmpfs, ext4, ...)."""
    target = str(path.resolve())
    mounts = [
        (len(part.mountpoint), part.fstype)
        for part in psutil.disk_partitions(all=True)
        if target == part.mountpoint or target.startswith(part.mountpoint.rstrip("/") + "/")
    ]
    return max(mounts)[1] if mounts else "?"


def _children_cpu() -> float:
    """CPU seconds of this process's finished children: wrk or the loadgen process, so
    a saturated load generator shows."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _no_nan(value: Any) -> Any:
    """NaN (no latency for transforms) is not JSON: null instead."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_no_nan(v) for v in value]
    return value


def _loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# load -------------------------------------------------------------------------------


@dataclass
class Measured:
    result: LoadResult
    bytes_per_s: float  # body (and for wrk header) bytes read per second


def run_wrk_bytes(url: str, connections: int, duration: float, threads: int) -> Measured:
    """wrk as in common.run_wrk, plus its Transfer/sec (which counts the bytes of
    responses still in flight at the end, unlike requests x size)."""
    seconds = max(1, round(duration))
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "30s"]
    argv += ["--latency", url]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 90, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    result = parse_wrk(done.stdout, url, connections, seconds)
    m = re.search(r"^Transfer/sec:\s+([\d.]+)([KMGT]?B)", done.stdout, re.M)
    scale = {"B": 1, "KB": 1024, "MB": MiB, "GB": 1024 * MiB, "TB": MiB * MiB}
    rate = float(m.group(1)) * scale[m.group(2)] if m else math.nan
    return Measured(result, rate)


def h2load_path() -> str | None:
    return shutil.which("h2load")


def run_h2load(
    url: str, connections: int, streams: int, duration: float, log: Path, requests: int = 0
) -> Measured:
    """h2load (nghttp2) over h2c with prior knowledge, one thread, for `duration` seconds
    or `requests` requests: req/s and bytes/s from its summary, p50/p99 from its
    per-request log (it prints no percentiles)."""
    seconds = max(1, round(duration))
    argv = ["h2load", "-t1", f"-c{connections}", f"-m{streams}"]
    argv.append(f"-n{requests}" if requests else f"-D{seconds}")
    argv += [f"--log-file={log}", url]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 90, check=False)
    return parse_h2load(done.stdout, done.returncode, url, connections, seconds, log)


def parse_h2load(
    output: str, returncode: int, url: str, connections: int, seconds: int, log: Path
) -> Measured:
    finished = re.search(r"^finished in ([\d.]+)(us|ms|s), ([\d.]+) req/s", output, re.M)
    counts = re.search(
        r"^requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, "
        r"(\d+) errored, (\d+) timeout",
        output,
        re.M,
    )
    traffic = re.search(r"^traffic: \S+ \((\d+)\) total", output, re.M)
    codes = re.search(r"^status codes: \d+ 2xx, \d+ 3xx, (\d+) 4xx, (\d+) 5xx", output, re.M)
    if returncode != 0 or not (finished and counts and traffic and codes):
        raise RuntimeError(f"h2load failed ({returncode}): {output[-2000:]}")
    elapsed = float(finished.group(1)) / {"us": 1e6, "ms": 1e3, "s": 1}[finished.group(2)]
    done = int(counts.group(2))
    micros = sorted(
        int(parts[2])
        for line in log.read_text(errors="replace").splitlines()
        if len(parts := line.split("\t")) == 3 and parts[2].isascii() and parts[2].isdigit()
    )
    log.unlink(missing_ok=True)

    def pct(q: float) -> float:
        return micros[min(len(micros) - 1, int(q * len(micros)))] / 1000 if micros else math.nan

    result = LoadResult(
        generator="h2load",
        url=url,
        connections=connections,
        duration=elapsed or seconds,
        requests=done,
        errors=int(counts.group(4)) + int(counts.group(5)) + int(counts.group(6)),
        non_2xx=int(codes.group(1)) + int(codes.group(2)),
        body_bytes=0,
        rps=float(finished.group(3)),
        p50_ms=pct(0.50),
        p90_ms=pct(0.90),
        p99_ms=pct(0.99),
        max_ms=micros[-1] / 1000 if micros else math.nan,
        mean_ms=statistics.fmean(micros) / 1000 if micros else math.nan,
    )
    return Measured(result, int(traffic.group(1)) / (elapsed or seconds))


@dataclass
class Sample:
    round: int
    rps: float
    p99_ms: float
    p50_ms: float
    mib_s: float
    cpu_us_per_req: float
    server_cpu: float  # server CPU seconds / wall seconds
    errors: int
    client_cpu: float = math.nan  # load generator CPU seconds / wall seconds


@dataclass
class Series:
    server: str
    kind: str  # "hit:<size>", "stream", "image:<format>"
    samples: list[Sample] = field(default_factory=list)

    def median(self, attr: str) -> float:
        values = [getattr(s, attr) for s in self.samples]
        values = [v for v in values if not math.isnan(v)]
        return statistics.median(values) if values else math.nan


def _ratio(a: float, b: float) -> float:
    return a / b if b and not math.isnan(a) and not math.isnan(b) else math.nan


# image transforms (thumbor) -----------------------------------------------------------


async def _fetch(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, target: str
) -> tuple[int, dict[str, str], bytes]:
    writer.write(f"GET {target} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name:
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return int(lines[0].split()[1]), headers, body


async def get_all(
    port: int, targets: list[str], content_type: str, concurrency: int, expect_miss: bool
) -> tuple[float, list[int]]:
    """Seconds to get every target over `concurrency` keep-alive connections, and the
    body sizes. Every answer must be a 200 of the right type (and for edgeshield a cold
    transform, fwd=miss)."""
    pending = iter(targets)
    problems: list[str] = []
    sizes: list[int] = []

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            for target in pending:
                status, headers, body = await _fetch(reader, writer, target)
                cache = headers.get("cache-status", "")
                if status != 200 or headers.get("content-type") != content_type:
                    problems.append(f"{target}: {status} {headers.get('content-type')}")
                elif expect_miss and "fwd=miss" not in cache:
                    problems.append(f"{target}: not a cold transform ({cache})")
                sizes.append(len(body))
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    if problems:
        raise RuntimeError(f"{len(problems)} bad answers, e.g. {problems[:3]}")
    return elapsed, sizes


# the bench --------------------------------------------------------------------------


class Bench:
    def __init__(
        self,
        args: argparse.Namespace,
        tmp: Path,
        cache_dir: Path,
        nginx: str,
        pinned: tuple[int, int] | None = None,
    ) -> None:
        self.args = args
        self.pinned = pinned
        # One edgeshield per engine; the first one also does the image transforms.
        self.es_names = {engine: es_name(engine) for engine in args.server}
        # Row name -> the process measured over h2c (edgeshield's own h2c instance).
        self.h2_procs: dict[str, Proc] = {}
        self.h2 = args.http2 != "off" and h2load_path() is not None
        self.tmp = tmp
        self.cache_dir = cache_dir
        self.nginx = nginx
        self.objects = tmp / "objects"
        self.servers: dict[str, Proc] = {}
        self.origin: Proc | None = None
        self.digests: dict[str, str] = {}  # path -> sha256 of the file
        self.image_sizes: dict[str, dict[str, list[int]]] = {}
        self.generator = "wrk" if wrk_path() and args.generator != "loadgen" else "loadgen"
        if args.generator == "wrk" and not wrk_path():
            raise SystemExit("--generator wrk: wrk is not installed (apt-get install wrk)")
        self.nginx_temp_modules = self._temp_modules()

    def _temp_modules(self) -> list[str]:
        """The *_temp_path directives this nginx knows (a module built --without-X
        rejects its directive)."""
        _, text = nginx_version(self.nginx)
        names = ["client_body", "proxy"]
        for module in ("fastcgi", "uwsgi", "scgi"):
            if f"--without-http_{module}_module" not in text:
                names.append(module)
        return names

    # set-up -------------------------------------------------------------------------

    def write_objects(self) -> None:
        self.objects.mkdir()
        rng = random.Random(20261122)  # same bytes every run
        for size in [*self.args.sizes, self.args.stream_size]:
            if size <= 0:
                continue
            path = self.objects / f"obj-{size}.bin"
            with path.open("wb") as f:
                digest = hashlib.sha256()
                left = size
                while left:  # in 8 MiB pieces: the stream object need not sit in memory
                    chunk = rng.randbytes(min(left, 8 * MiB))
                    f.write(chunk)
                    digest.update(chunk)
                    left -= len(chunk)
            self.digests[f"/obj-{size}.bin"] = digest.hexdigest()
        if self.args.thumbor:
            from loadtests.bench.image_bench import source_jpeg  # pyvips: only when needed

            (self.objects / "images").mkdir()
            (self.objects / IMAGE_PATH.lstrip("/")).write_bytes(source_jpeg())

    def nginx_conf(self, name: str, body: str) -> Path:
        prefix = self.tmp / name
        prefix.mkdir()
        temp = "\n".join(f"    {m}_temp_path {prefix}/{m}_temp;" for m in self.nginx_temp_modules)
        conf = prefix / "nginx.conf"
        conf.write_text(
            NGINX_MAIN.format(
                user="user root;\n" if os.geteuid() == 0 else "",
                prefix=prefix,
                name=name,
                temp_paths=temp,
                body=body,
            )
        )
        return conf

    def pin(self, argv: list[str]) -> list[str]:
        return pinned_argv(argv, self.pinned)

    def nginx_server(self, name: str, port: int, body: str) -> Proc:
        conf = self.nginx_conf(name, body)
        argv = [self.nginx, "-p", str(conf.parent), "-c", str(conf)]
        if self._version_at_least(1, 19, 5):  # -e: no attempt at the built-in error log
            argv += ["-e", str(conf.parent / f"{name}-error.log")]
        done = subprocess.run([*argv, "-t"], capture_output=True, text=True, timeout=30)
        if done.returncode != 0:
            raise RuntimeError(f"nginx -t rejected {conf}:\n{done.stderr}")
        # SIGQUIT: graceful, workers finish their requests (SIGINT is nginx's fast stop).
        argv = self.pin(argv)
        return Proc(name, argv, port, self.tmp / f"{name}.log", stop_signal=signal.SIGQUIT)

    def _version_at_least(self, *want: int) -> bool:
        version, _ = nginx_version(self.nginx)
        try:
            have = tuple(int(x) for x in version.split(".")[:3])
        except ValueError:
            return False
        return have >= want

    def start(self) -> None:
        origin_port = free_port()
        self.origin = self.nginx_server(
            "origin",
            origin_port,
            NGINX_ORIGIN.format(host=HOST, port=origin_port, root=self.objects),
        )
        self.origin.start("/healthz")
        self.servers[NGINX] = self.nginx_proxy(origin_port)
        for engine, name in self.es_names.items():
            self.servers[name] = self.edgeshield(engine, name, origin_port)
            if self.h2 and engine in H2_ENGINES:
                # h2c on a second edgeshield: granian sniffing for it costs HTTP/1.1 ~9 %
                # CPU per hit, so the HTTP/1.1 rows keep the default (HTTP/1.1-only) listener.
                h2c = self.servers[f"{name} h2c"] = self.edgeshield(
                    engine, f"{name} h2c", origin_port, h2c=True
                )
                self.h2_procs[name] = h2c
        if NGINX in self.servers and self.h2:
            self.h2_procs[NGINX] = self.servers[NGINX]
        if self.args.thumbor:
            port = free_port()
            conf = self.tmp / "thumbor.conf"
            conf.write_text(
                THUMBOR_CONFIG.format(
                    storage=self.tmp / "thumbor-storage", threads=self.args.image_threads
                )
            )
            argv = [self.args.thumbor, "-i", HOST, "-p", str(port), "-c", str(conf)]
            argv = self.pin([*argv, "-l", "warning"])
            # Tornado stops on SIGTERM at once; SIGINT may wait for the loop.
            self.servers[THUMBOR] = Proc(
                THUMBOR, argv, port, self.tmp / "thumbor.log", stop_signal=signal.SIGTERM
            )
        for server in self.servers.values():
            server.start("/healthcheck" if server.name == THUMBOR else "/healthz")

    def nginx_proxy(self, origin_port: int) -> Proc:
        port = free_port()
        extra = "".join(f"            {d}\n" for d in self.args.nginx_directive)
        locations = NGINX_LOCATIONS.format(extra=extra)
        h2_server = ""
        h2_port = None
        if self.h2:
            h2_port = free_port()
            new = self._version_at_least(1, 25, 1)  # `http2 on;` replaced `listen ... http2`
            h2_server = NGINX_H2_SERVER.format(
                host=HOST,
                port=h2_port,
                listen_h2="" if new else " http2",
                h2_on="        http2 on;\n" if new else "",
                locations=locations,
            )
        body = NGINX_PROXY.format(
            host=HOST,
            port=port,
            origin_port=origin_port,
            cache=self.cache_dir,
            locations=locations,
            h2_server=h2_server,
        )
        proc = self.nginx_server("nginx-proxy", port, body)
        proc.h2_port = h2_port
        return proc

    def edgeshield(self, engine: str, name: str, origin_port: int, h2c: bool = False) -> Proc:
        port = free_port()
        config = self.tmp / f"edgeshield-{port}.toml"
        config.write_text(
            ES_CONFIG.format(
                host=HOST,
                port=port,
                origin_port=origin_port,
                memory_bytes=self.args.es_memory_bytes,
                max_object=self.args.es_max_object_bytes,
                image_threads=self.args.image_threads,
                # granian's plain listener takes h2c by prior knowledge only when asked
                h2c="true" if h2c else "false",
            )
        )
        argv = [sys.executable, "-m", "proxy.serve.cli", "serve", "--config", str(config)]
        argv += ["--server", engine]
        proc = Proc(name, self.pin(argv), port, self.tmp / f"edgeshield-{port}.log")
        if h2c:
            proc.h2_port = port  # HTTP/1.1 and h2c on one port
        return proc

    def is_es(self, name: str) -> bool:
        return name.startswith(ES)

    @property
    def image_es(self) -> str:
        return next(iter(self.es_names.values()))

    def _check(self, name: str, path: str) -> Response:
        """GET until a hit (at most 3 times) and compare the bytes with the file."""
        server = self.servers[name]
        for _ in range(3):
            resp = get(server.port, path, timeout=120)
            if resp.status != 200:
                raise RuntimeError(f"{name} {path}: status {resp.status}")
            if hashlib.sha256(resp.body).hexdigest() != self.digests[path]:
                raise RuntimeError(f"{name} {path}: not the origin's bytes")
            if self.is_es(name) and "; hit" in resp.headers.get("cache-status", ""):
                return resp
            if name == NGINX and resp.headers.get("x-cache-status") == "HIT":
                return resp
        raise RuntimeError(f"{name} {path}: not a hit after 3 GETs: {resp.headers}")

    def warm_and_check(self) -> list[str]:
        notes = []
        for path in self.digests:
            for name in self.servers:
                if name == THUMBOR:
                    continue
                hit = self._check(name, path)
                status = hit.headers.get("cache-status") or hit.headers.get("x-cache-status")
                notes.append(f"{name} {path}: {len(hit.body):,} bytes, hit ({status})")
        if self.h2:
            notes += self.check_h2()
        if self.args.thumbor:
            self.warm_images()
        return notes

    def check_h2(self) -> list[str]:
        """One request per server over h2c: HTTP/2 answered, and every response a 200."""
        path = min(self.digests, key=lambda p: int(p.removeprefix("/obj-").split(".")[0]))
        notes = []
        for server in self.servers.values():
            if server.h2_port is None:
                continue
            log = self.tmp / "h2check.log"
            m = run_h2load(f"http://{HOST}:{server.h2_port}{path}", 1, 1, 60, log, requests=1)
            r = m.result
            if r.requests == 0 or r.errors or r.non_2xx:
                raise RuntimeError(f"{server.name}: h2c check failed ({r})")
            notes.append(f"{server.name} {path}: HTTP/2 (h2c, prior knowledge) answered 200")
        return notes

    # measuring ----------------------------------------------------------------------

    def load(
        self, port: int, path: str, connections: int, duration: float, streams: int = 0
    ) -> Measured:
        """HTTP/1.1 load, or with `streams` HTTP/2 load of that many streams per connection."""
        url = f"http://{HOST}:{port}{path}"
        if streams:
            return run_h2load(url, connections, streams, duration, self.tmp / "h2load.log")
        if self.generator == "wrk":
            return run_wrk_bytes(url, connections, duration, self.args.wrk_threads)
        result = run_in_process(url, connections, duration)
        return Measured(result, result.body_bytes / result.duration)

    def measure(
        self, server: Proc, path: str, connections: int, round_: int, streams: int = 0
    ) -> Sample:
        port = server.h2_port if streams else server.port
        assert port is not None
        if self.args.warmup > 0:
            self.load(port, path, connections, self.args.warmup, streams)
        cpu0 = server.cpu_seconds()
        client0 = _children_cpu()
        m = self.load(port, path, connections, self.args.duration, streams)
        cpu = server.cpu_seconds() - cpu0
        client = _children_cpu() - client0
        r = m.result
        return Sample(
            round=round_,
            rps=r.rps,
            p99_ms=r.p99_ms,
            p50_ms=r.p50_ms,
            mib_s=m.bytes_per_s / MiB,
            cpu_us_per_req=cpu / r.requests * 1e6 if r.requests else math.nan,
            server_cpu=cpu / r.duration if r.duration else math.nan,
            errors=r.errors + r.non_2xx,
            client_cpu=client / r.duration if r.duration else math.nan,
        )

    def run_load(
        self, kind: str, path: str, connections: int, label: str, streams: int = 0
    ) -> list[Series]:
        names = [*self.es_names.values(), NGINX]
        procs = self.h2_procs if streams else self.servers
        names = [n for n in names if n in procs]
        label += " h2" if streams else ""
        series = {name: Series(name, kind) for name in names}
        for r in range(self.args.rounds):
            for name in names if r % 2 == 0 else names[::-1]:
                s = self.measure(procs[name], path, connections, r, streams)
                series[name].samples.append(s)
                print(
                    f"  {label:>12} round {r + 1}/{self.args.rounds} {name:<18} "
                    f"{s.rps:>9,.0f} req/s {s.mib_s:>8,.0f} MiB/s  p99 {s.p99_ms:8.2f} ms  "
                    f"server CPU {s.server_cpu:4.0%}  client CPU {s.client_cpu:4.0%}"
                    + (f"  ERRORS {s.errors}" if s.errors else ""),
                    flush=True,
                )
        return list(series.values())

    def run(self) -> list[Series]:
        a = self.args
        out: list[Series] = []
        for size in a.sizes:
            out += self.run_load(f"hit:{size}", f"/obj-{size}.bin", a.connections, size_label(size))
        if a.stream_size > 0:
            size = a.stream_size
            out += self.run_load(
                "stream", f"/obj-{size}.bin", a.stream_connections, size_label(size)
            )
        if self.h2:
            for size in a.sizes:
                out += self.run_load(
                    f"{H2}hit:{size}",
                    f"/obj-{size}.bin",
                    a.h2_connections,
                    size_label(size),
                    a.h2_streams,
                )
            if a.stream_size > 0:
                size = a.stream_size
                out += self.run_load(
                    f"{H2}stream", f"/obj-{size}.bin", a.stream_connections, size_label(size), 1
                )
        if a.thumbor:
            out += self.run_images()
        return out

    # image transforms ---------------------------------------------------------------

    def image_targets(self, name: str, fmt: str, pairs: list[tuple[int, int]]) -> list[str]:
        if self.is_es(name):
            return [f"{IMAGE_PATH}?w={w}&q={q}&fm={ES_FORMAT[fmt]}" for w, q in pairs]
        assert self.origin is not None
        source = f"{HOST}:{self.origin.port}{IMAGE_PATH}"
        return [f"/unsafe/{w}x0/filters:quality({q}):format({fmt})/{source}" for w, q in pairs]

    def warm_images(self) -> None:
        """The source into each cache (edgeshield's memory tier, thumbor's file storage)
        and the codecs loaded, with variants the measurement never asks for."""
        for name in (self.image_es, THUMBOR):
            for fmt, ctype in IMAGE_FORMATS.items():
                targets = self.image_targets(name, fmt, [(300, 50), (301, 51)])
                asyncio.run(get_all(self.servers[name].port, targets, ctype, 1, False))

    def variant_pairs(self) -> list[tuple[int, int]]:
        pairs = list(VARIANTS)
        random.Random(20261122).shuffle(pairs)  # same order every run
        return pairs

    def run_images(self) -> list[Series]:
        a = self.args
        pairs = self.variant_pairs()
        names = [self.image_es, THUMBOR]
        out: list[Series] = []
        for fmt, ctype in IMAGE_FORMATS.items():
            series = {name: Series(name, f"image:{fmt}") for name in names}
            sizes: dict[str, list[int]] = {name: [] for name in names}
            for r in range(a.rounds):
                # Unique variants per round; each server sees each one once, so always cold.
                chunk = pairs[r * a.image_ops : (r + 1) * a.image_ops]
                for name in names if r % 2 == 0 else names[::-1]:
                    server = self.servers[name]
                    targets = self.image_targets(name, fmt, chunk)
                    cpu0 = server.cpu_seconds()
                    elapsed, got = asyncio.run(
                        get_all(server.port, targets, ctype, a.image_concurrency, self.is_es(name))
                    )
                    cpu = server.cpu_seconds() - cpu0
                    sizes[name] += got
                    rate = len(targets) / elapsed
                    nan = math.nan
                    s = Sample(
                        round=r,
                        rps=rate,
                        p99_ms=nan,
                        p50_ms=nan,
                        mib_s=nan,
                        cpu_us_per_req=cpu / len(targets) * 1e6,
                        server_cpu=cpu / elapsed,
                        errors=0,
                    )
                    series[name].samples.append(s)
                    print(
                        f"  {fmt:>9} round {r + 1}/{a.rounds} {name:<10} {rate:9.1f} "
                        f"transforms/s  {s.cpu_us_per_req / 1000:6.2f} CPU ms each",
                        flush=True,
                    )
            self.image_sizes[fmt] = sizes
            out += series.values()
        return out

    def edgeshield_cache(self) -> dict[str, str]:
        """What each edgeshield's memory tier holds, from its /metrics."""
        out = {}
        for es in filter(self.is_es, self.servers):
            text = get(self.servers[es].port, "/metrics").body.decode()
            found = []
            for name in ("edgeshield_cache_entries", "edgeshield_cache_bytes"):
                for m in re.finditer(rf"^{name}(\{{[^}}]*\}})? (\S+)$", text, re.M):
                    found.append(f"{name}{m.group(1) or ''} {float(m.group(2)):,.0f}")
            out[es] = "; ".join(found) or "(no cache gauges in /metrics)"
        return out

    def nginx_cache(self) -> str:
        files = [p for p in self.cache_dir.rglob("*") if p.is_file()]
        total = sum(p.stat().st_size for p in files)
        return (
            f"{len(files)} files, {total:,} bytes in {self.cache_dir} ({fs_type(self.cache_dir)})"
        )

    def stop(self) -> None:
        for server in [*self.servers.values(), *([self.origin] if self.origin else [])]:
            server.stop()


# report -----------------------------------------------------------------------------


def report(series: list[Series], bench: Bench, generator: str) -> list[str]:
    a = bench.args
    lines: list[str] = []
    verdicts: dict[tuple[str, str], float] = {}  # (kind, server) -> req/s or MiB/s ratio
    kinds = list(dict.fromkeys(s.kind for s in series))
    for kind in kinds:
        rows = {s.server: s for s in series if s.kind == kind}
        lines.append("")
        if kind.startswith("image:"):
            fmt = kind.split(":", 1)[1]
            es = rows[bench.image_es]
            other = rows[THUMBOR]
            lines.append(
                f"== cold transforms 2000x1500 JPEG -> 381-420 px {fmt}: {a.image_ops} unique "
                f"variants x {a.rounds} rounds, {a.image_concurrency} connections, medians =="
            )
            lines.append(
                f"{'server':<18} {'transforms/s':>12} {'CPU ms each':>11} {'median bytes':>12}"
            )
            for name, s in rows.items():
                sizes = bench.image_sizes.get(fmt, {}).get(name) or [0]
                cpu_ms = s.median("cpu_us_per_req") / 1000
                lines.append(
                    f"{name:<18} {s.median('rps'):>12.1f} {cpu_ms:>11.2f} "
                    f"{statistics.median(sizes):>12,.0f}  "
                    + " ".join(f"{x.rps:.1f}" for x in s.samples)
                )
            paired = " ".join(
                f"{_ratio(x.rps, y.rps):.2f}"
                for x, y in zip(es.samples, other.samples, strict=True)
            )
            lines.append(
                f"ratio edgeshield / thumbor {fmt}: transforms/s "
                f"{_ratio(es.median('rps'), other.median('rps')):.2f}  CPU per transform "
                f"{_ratio(es.median('cpu_us_per_req'), other.median('cpu_us_per_req')):.2f}  "
                f"(per round: {paired})"
            )
            continue
        lines += hit_report(kind, rows, a, generator, verdicts)
    lines += target_lines(verdicts)
    return lines


def hit_report(
    kind: str,
    rows: dict[str, Series],
    a: argparse.Namespace,
    generator: str,
    verdicts: dict[tuple[str, str], float],
) -> list[str]:
    """The table of one hit or stream case and a ratio line per edgeshield."""
    h2 = kind.startswith(H2)
    what = kind.removeprefix(H2)
    proto = ", HTTP/2" if h2 else ""
    if what == "stream":
        label = f"streaming a cached {size_label(a.stream_size)} object{proto}"
        conns = f"{a.stream_connections} connections"
    else:
        size = int(what.split(":", 1)[1])
        label = f"{size_label(size)} hit{proto} ({size} bytes)"
        conns = f"{a.connections} connections"
        if h2:
            conns = f"{a.h2_connections} connections x {a.h2_streams} streams"
    load = "h2load 1 thread, h2c (edgeshield: its http2_cleartext instance)" if h2 else generator
    lines = [
        f"== {label}: {conns}, {a.duration:g} s x {a.rounds} rounds, {load}, medians ==",
        f"{'server':<18} {'req/s':>10} {'MiB/s':>8} {'p99 ms':>9} {'p50 ms':>9} "
        f"{'CPU us/req':>11} {'srv CPU':>7} {'cli CPU':>7}  req/s per round",
    ]
    for name, s in rows.items():
        errors = sum(x.errors for x in s.samples)
        lines.append(
            f"{name:<18} {s.median('rps'):>10,.0f} {s.median('mib_s'):>8,.0f} "
            f"{s.median('p99_ms'):>9.2f} {s.median('p50_ms'):>9.2f} "
            f"{s.median('cpu_us_per_req'):>11.1f} {s.median('server_cpu'):>7.0%} "
            f"{s.median('client_cpu'):>7.0%}  "
            + " ".join(f"{x.rps:,.0f}" for x in s.samples)
            + (f"  ERRORS {errors}" if errors else "")
        )
    other = rows[NGINX]
    unit, attr = ("MiB/s", "mib_s") if what == "stream" else ("req/s", "rps")
    for name, es in rows.items():
        if name == NGINX:
            continue
        paired = " ".join(
            f"{_ratio(x.rps, y.rps):.2f}" for x, y in zip(es.samples, other.samples, strict=True)
        )
        ratio = _ratio(es.median(attr), other.median(attr))
        verdicts[(kind, name)] = ratio
        lines.append(
            f"ratio {name} / nginx {label.split(' (')[0]}: {unit} {ratio:.2f}  p99 "
            f"{_ratio(es.median('p99_ms'), other.median('p99_ms')):.2f}  CPU per request "
            f"{_ratio(es.median('cpu_us_per_req'), other.median('cpu_us_per_req')):.2f}  "
            f"(req/s per round: {paired})"
        )
    return lines


def target_lines(verdicts: dict[tuple[str, str], float]) -> list[str]:
    """TARGET MET / MISSED per case that has a target, for every edgeshield row."""
    lines = []
    for (kind, name), ratio in verdicts.items():
        want = TARGETS.get(kind.removeprefix(H2))
        if want is None or math.isnan(ratio):
            continue
        proto = "HTTP/2" if kind.startswith(H2) else "HTTP/1.1"
        lines.append(
            f"{'TARGET MET' if ratio >= want else 'TARGET MISSED'}: {name} / nginx "
            f"{kind.removeprefix(H2)} {proto} = {ratio:.2f} (target >= {want:.2f})"
        )
    return ["", *lines] if lines else []


# main -------------------------------------------------------------------------------


def _sizes(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _engines(text: str) -> list[str]:
    names = list(dict.fromkeys(x.strip() for x in text.split(",") if x.strip()))
    if not names or any(n not in ENGINES for n in names):
        raise argparse.ArgumentTypeError(f"one or more of {', '.join(ENGINES)}")
    return names


def es_name(engine: str) -> str:
    return ES if engine == ENGINES[0] else f"{ES}/{engine}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="edgeshield vs nginx (caching reverse proxy) on the same origin."
    )
    p.add_argument("--duration", type=float, default=8.0, help="seconds per measurement")
    p.add_argument("--rounds", type=int, default=3, help="measurements per server and case")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds of load before each one")
    p.add_argument("--connections", type=int, default=32, help="for the hit measurements")
    p.add_argument(
        "--sizes", type=_sizes, default=[10240, MiB], help="hit object sizes, bytes ('': none)"
    )
    p.add_argument(
        "--stream-size", type=int, default=100 * MiB, help="streamed object, bytes (0: skip)"
    )
    p.add_argument("--stream-connections", type=int, default=4)
    p.add_argument("--generator", choices=("auto", "wrk", "loadgen"), default="auto")
    p.add_argument("--wrk-threads", type=int, default=1)
    p.add_argument(
        "--server",
        type=_engines,
        default=[ENGINES[0]],
        help="edgeshield's engines, comma-separated, each its own server in the same run "
        "(default granian; granian,uvicorn compares them)",
    )
    p.add_argument(
        "--http2",
        choices=("auto", "off"),
        default="auto",
        help="also measure over h2c with h2load (auto: when h2load is installed)",
    )
    p.add_argument("--h2-connections", type=int, default=8, help="h2load connections (hits)")
    p.add_argument("--h2-streams", type=int, default=4, help="h2load streams per connection")
    p.add_argument(
        "--pin",
        choices=("auto", "off"),
        default="auto",
        help="servers on the first CPU, load generator on the second (auto: when 2+ CPUs)",
    )
    p.add_argument("--nginx", help="the nginx binary (default: PATH, then the sbin dirs)")
    p.add_argument(
        "--nginx-cache",
        choices=("tmpfs", "disk"),
        default="tmpfs",
        help="nginx's cache folder on /dev/shm (when it is a tmpfs) or in the temp folder",
    )
    p.add_argument(
        "--nginx-directive",
        action="append",
        default=[],
        help="extra directive for the proxy's `location /`, e.g. 'sendfile off;' (repeatable)",
    )
    p.add_argument("--es-memory-bytes", type=int, default=512 * MiB)
    p.add_argument("--es-max-object-bytes", type=int, default=128 * MiB)
    p.add_argument("--thumbor", help="a thumbor executable: adds cold image transforms")
    p.add_argument("--image-ops", type=int, default=40, help="unique variants per round")
    p.add_argument("--image-threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--image-concurrency", type=int, default=0, help="default: 2 x threads")
    p.add_argument("--json", type=Path, help="also write all samples to this file")
    p.add_argument(
        "--smoke",
        action="store_true",
        help="a few seconds: 10 KiB hits only, 1 s x 1 round, 8 connections, no streaming",
    )
    a = p.parse_args(argv)
    if a.smoke:
        a.duration, a.rounds, a.warmup, a.connections = 1.0, 1, 0.0, 8
        a.sizes, a.stream_size, a.thumbor = [10240], 0, None
    if not 0 < a.duration <= MAX_DURATION:
        p.error(f"--duration must be in (0, {MAX_DURATION:g}]")
    if not 0 <= a.warmup <= MAX_DURATION:
        p.error("--warmup out of range")
    if not 1 <= a.rounds <= MAX_ROUNDS:
        p.error(f"--rounds must be 1..{MAX_ROUNDS}")
    if not 1 <= a.connections <= 512 or not 1 <= a.stream_connections <= 64:
        p.error("--connections must be 1..512, --stream-connections 1..64")
    if not 1 <= a.h2_connections <= 512 or not 1 <= a.h2_streams <= 100:
        p.error("--h2-connections must be 1..512, --h2-streams 1..100")
    if any(not 0 < s <= 16 * MiB for s in a.sizes):
        p.error("--sizes: 1 byte .. 16 MiB each")
    if not a.sizes and not a.stream_size and not a.thumbor:
        p.error("nothing to measure: --sizes '' needs --stream-size or --thumbor")
    if not 0 <= a.stream_size <= MAX_STREAM:
        p.error(f"--stream-size: 0 .. {MAX_STREAM} bytes")
    if a.stream_size > a.es_max_object_bytes:
        p.error("--stream-size above --es-max-object-bytes: edgeshield would not cache it")
    if not 1 <= a.image_ops * a.rounds <= len(VARIANTS):
        p.error(f"--image-ops x --rounds must be 1..{len(VARIANTS)} (unique variants)")
    a.image_concurrency = a.image_concurrency or 2 * a.image_threads
    a.sizes = list(dict.fromkeys(a.sizes))
    return a


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    nginx = find_nginx(args.nginx)
    if nginx is None:
        print(INSTALL_HINT, file=sys.stderr)
        return 2
    if args.thumbor:
        thumbor = shutil.which(args.thumbor)
        if thumbor is None:
            print(f"--thumbor {args.thumbor}: not an executable", file=sys.stderr)
            return 2
        args.thumbor = os.path.abspath(thumbor)
    info = machine()
    version, _ = nginx_version(nginx)
    pinned = pin_cpus(args.pin)
    shm = Path("/dev/shm")
    on_tmpfs = args.nginx_cache == "tmpfs" and shm.is_dir() and fs_type(shm) == "tmpfs"
    with (
        tempfile.TemporaryDirectory(prefix="edgeshield-nginx-bench-") as tmp_name,
        tempfile.TemporaryDirectory(
            prefix="edgeshield-nginx-cache-", dir=str(shm) if on_tmpfs else None
        ) as cache_name,
    ):
        bench = Bench(args, Path(tmp_name), Path(cache_name), nginx, pinned)
        generator = (
            f"{wrk_version()} ({args.wrk_threads} thread)"
            if bench.generator == "wrk"
            else "bundled loadgen (asyncio, 1 process)"
        )
        print(
            f"edgeshield vs nginx {version} (caching reverse proxy), "
            f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n"
            f"machine: {info['nproc']} CPU(s), {info['cpu']}, Python {info['python']}\n"
            f"load generator: {generator}"
            + (", h2load (HTTP/2)" if bench.h2 else "")
            + "; "
            + (
                f"servers pinned to CPU {pinned[0]}, load generator to CPU {pinned[1]}\n"
                if pinned
                else "servers and load generator share these CPUs\n"
            )
            + f"edgeshield on {', '.join(args.server)}"
            + (" (HTTP/2: a granian instance with http2_cleartext)" if bench.h2 else "")
            + "; one worker each; same origin "
            f"(nginx, static files); no access logs\n"
            f"nginx cache: files on {fs_type(Path(cache_name))} (nginx has no memory-only "
            f"cache: hits are read from the page cache); edgeshield: memory tier "
            f"({args.es_memory_bytes // MiB} MiB, objects up to "
            f"{args.es_max_object_bytes // MiB} MiB)\n"
            f"load average before: {_loadavg()}",
            flush=True,
        )
        if args.http2 == "auto" and not bench.h2:
            print(f"no HTTP/2 measurements: {H2LOAD_HINT}", flush=True)
        try:
            bench.write_objects()
            bench.start()
            for note in bench.warm_and_check():
                print(f"  {note}")
            series = bench.run()
            es_cache = bench.edgeshield_cache()
            nginx_cache = bench.nginx_cache()
        except RuntimeError as exc:
            print(f"cannot measure: {exc}", file=sys.stderr)
            return 1
        finally:
            bench.stop()
    print("\n".join(report(series, bench, generator)))
    print("")
    for name, cached in es_cache.items():
        print(f"cached by {name} (memory tier): {cached}")
    print(f"cached by nginx: {nginx_cache}")
    print(f"load average after: {_loadavg()} (other processes on the machine add noise)")
    if args.json:
        record = {
            "date": time.strftime("%Y-%m-%d"),
            "machine": info,
            "nginx": version,
            "generator": generator,
            "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "series": [
                {"server": s.server, "kind": s.kind, "samples": [asdict(x) for x in s.samples]}
                for s in series
            ],
            "image_sizes": bench.image_sizes,
            "pinned": pinned,
            "cached": {**es_cache, "nginx": nginx_cache},
        }
        args.json.write_text(json.dumps(_no_nan(record), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
