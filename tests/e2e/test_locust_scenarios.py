"""The Locust scenarios in loadtests/, run for real and briefly.

A small object set (six images, one two-second MP4) is generated with
loadtests/make_objects.py, served by a real `edgeshield serve` with the shipped
loadtests/edgeshield-loadtest.toml (paths and the HTTP origin's port substituted), the
HTTP origin being `python -m http.server` over the same folder, started and killed with
the same shell commands loadtests/README.md documents. Each scenario runs headless as a
Locust subprocess for a few seconds with a few users; the assertions read the CSVs it
writes (Locust's and the edgeshield ones). Locust is never imported into this process:
it monkey-patches sockets and threads with gevent on import.
"""

from __future__ import annotations

import contextlib
import csv
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from config.loader import load_settings
from loadtests.make_objects import Plan, generate
from tests.support.ports import free_port, port_open, wait_for_port
from tests.support.proxy_server import REPO_ROOT, ProxyServer, running_proxy

LOADTEST_CONFIG = REPO_ROOT / "loadtests" / "edgeshield-loadtest.toml"
SHIPPED_ROOT = 'root = "var/loadtest/objects"'
SHIPPED_HTTP_ORIGIN = 'url = "http://127.0.0.1:8091"'


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def objects(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The generated set: <out>/objects (served) and <out>/manifest.json."""
    out = tmp_path_factory.mktemp("loadtest")
    plan = Plan(
        images=6,
        videos=1,
        album_size=3,
        max_side=800,
        video_seconds=2,
        video_kbps=600,
        seed=7,
    )
    generate(out, plan)
    return out


@dataclass
class HttpOrigin:
    """`python -m http.server` over the objects, with a pid file, so that the scenario's
    kill and restore commands are plain shell commands (as in loadtests/README.md)."""

    root: Path
    port: int
    pidfile: Path

    @property
    def start_command(self) -> str:
        return (
            f"{shlex.quote(sys.executable)} -m http.server -b 127.0.0.1 {self.port} "
            f"-d {shlex.quote(str(self.root))} >/dev/null 2>&1 & "
            f"echo $! > {shlex.quote(str(self.pidfile))}"
        )

    @property
    def kill_command(self) -> str:
        return f"kill $(cat {shlex.quote(str(self.pidfile))})"

    def pid(self) -> int | None:
        try:
            return int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None

    def running(self) -> bool:
        pid = self.pid()
        if pid is None:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return port_open(self.port)


@pytest.fixture(scope="module")
def http_origin(objects: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpOrigin]:
    origin = HttpOrigin(
        objects / "objects", free_port(), tmp_path_factory.mktemp("origin") / "origin.pid"
    )
    subprocess.run(origin.start_command, shell=True, check=True, timeout=10)
    try:
        wait_for_port(origin.port, 10)
        yield origin
    finally:
        # The pid file names whichever process is current: the first one, or the one
        # the origin-failure scenario's restore command started.
        pid = origin.pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)


def loadtest_config(objects: Path, origin: HttpOrigin) -> str:
    text = LOADTEST_CONFIG.read_text()
    assert SHIPPED_ROOT in text and SHIPPED_HTTP_ORIGIN in text
    text = text.replace(SHIPPED_ROOT, f'root = "{objects / "objects"}"')
    return text.replace(SHIPPED_HTTP_ORIGIN, f'url = "http://127.0.0.1:{origin.port}"')


@pytest.fixture(scope="module")
def proxy(objects: Path, http_origin: HttpOrigin) -> Iterator[ProxyServer]:
    with running_proxy(loadtest_config(objects, http_origin)) as server:
        yield server


# --------------------------------------------------------------------------- running Locust


@dataclass
class LocustRun:
    proc: subprocess.CompletedProcess[str]
    prefix: Path

    @property
    def code(self) -> int:
        return self.proc.returncode

    @property
    def output(self) -> str:
        out, err = self.proc.stdout[-6000:], self.proc.stderr[-6000:]
        return f"exit {self.code}\n--- stdout\n{out}\n--- stderr\n{err}"

    def csv(self, table: str) -> list[dict[str, str]]:
        path = Path(f"{self.prefix}_{table}.csv")
        assert path.exists(), f"{path.name} missing\n{self.output}"
        with path.open(newline="") as fh:
            return list(csv.DictReader(fh))

    def requests(self) -> dict[str, tuple[int, int]]:
        """Locust's own stats: name -> (requests, failures), "Aggregated" included."""
        return {
            row["Name"]: (int(row["Request Count"]), int(row["Failure Count"]))
            for row in self.csv("stats")
        }

    def checks(self) -> dict[str, tuple[int, int]]:
        return {
            row["check"]: (int(row["passed"]), int(row["failed"])) for row in self.csv("checks")
        }

    def cache(self, phase: str, status: str) -> int:
        return sum(
            int(row["requests"])
            for row in self.csv("cache_status")
            if row["phase"] == phase and row["cache_status"] == status
        )

    def timeline(self) -> list[tuple[str, str]]:
        return [(row["event"], row["detail"]) for row in self.csv("timeline")]


def run_locust(
    locustfile: str,
    proxy: ProxyServer,
    objects: Path,
    tmp_path: Path,
    *args: str,
    users: int = 5,
    seconds: float = 5,
) -> LocustRun:
    prefix = tmp_path / "report"
    cmd = [
        sys.executable,
        "-m",
        "locust",
        *("-f", str(REPO_ROOT / "loadtests" / locustfile)),
        *("--host", proxy.url, "--headless", "-u", str(users), "-r", str(users)),
        *("-t", f"{seconds}s", "--csv", str(prefix), "--only-summary"),
        *("--objects", str(objects / "manifest.json"), "--seed", "1"),
        *args,
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOCUST_", "EDGESHIELD_"))}
    env["PYTHONPATH"] = str(REPO_ROOT)
    proc = subprocess.run(
        cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=seconds + 45
    )
    return LocustRun(proc, prefix)


def assert_no_failures(run: LocustRun) -> None:
    assert run.code == 0, run.output
    requests, failures = run.requests()["Aggregated"]
    assert requests > 0 and failures == 0, run.output
    for phase in run.csv("phases"):
        assert int(phase["failures"]) == 0, phase


def assert_offload_from_metrics(run: LocustRun) -> None:
    rows = {(r["window"], r["source"]): r for r in run.csv("offload")}
    whole = rows[("whole run", "metrics")]
    assert int(whole["client_requests"]) > 0 and int(whole["client_bytes"]) > 0
    assert float(whole["byte_offload"]) == pytest.approx(1 - float(whole["origin_per_client_byte"]))
    assert ("after warm-up", "metrics") in rows
    assert int(rows[("whole run", "cache-status (estimate)")]["client_requests"]) > 0


# --------------------------------------------------------------------------- scenarios


def test_the_shipped_config_is_valid() -> None:
    settings = load_settings(LOADTEST_CONFIG, {})
    assert [r.path_prefix for r in settings.routes] == ["/failover", "/direct", "/"]
    assert all(r.images for r in settings.routes)


def test_gallery(proxy: ProxyServer, objects: Path, tmp_path: Path) -> None:
    run = run_locust(
        "gallery.py",
        proxy,
        objects,
        tmp_path,
        *("--think-time", "0.1,0.3", "--warmup", "2"),
        seconds=10,
    )
    assert_no_failures(run)
    names = run.requests()
    assert any(name.startswith("image thumbnail") for name in names), names
    # Popular variants are hits once made (every user repeats its device's variants); on a
    # busy machine a transform can take seconds, so the hits may all fall in one phase.
    assert run.cache("warm-up", "hit") + run.cache("steady", "hit") > 0, run.output
    assert run.cache("warm-up", "fwd=miss") > 0, run.output
    checks = run.checks()
    passed, failed = checks["image: format the browser accepts"]
    assert passed > 0 and failed == 0
    assert_offload_from_metrics(run)
    assert Path(f"{run.prefix}_stats_history.csv").exists()


def test_video_ranges(proxy: ProxyServer, objects: Path, tmp_path: Path) -> None:
    run = run_locust(
        "video.py",
        proxy,
        objects,
        tmp_path,
        *("--think-time", "0.1,0.3", "--watch-time", "0.05,0.2", "--warmup", "1"),
        *("--initial-range", "4096", "--read-bytes", "32768"),
        seconds=4,
    )
    assert_no_failures(run)
    requests = run.requests()
    assert requests["video first range"][0] > 0 and requests["video seek"][0] > 0
    checks = run.checks()
    for check in (
        "range: status 206",
        "range: Content-Range",
        "range: body length",
        "range: bytes match the file",  # the manifest's folder is on this machine
    ):
        passed, failed = checks[check]
        assert passed > 0 and failed == 0, (check, checks)
    assert run.cache("steady", "hit") > 0, run.output
    assert_offload_from_metrics(run)


def test_origin_failure_through_a_failover_group(
    proxy: ProxyServer, objects: Path, http_origin: HttpOrigin, tmp_path: Path
) -> None:
    assert http_origin.running()
    run = run_locust(
        "origin_failure.py",
        proxy,
        objects,
        tmp_path,
        *("--think-time", "0.05,0.2", "--warmup", "1", "--kill-at", "2", "--restore-at", "4"),
        *("--origin-kill-cmd", http_origin.kill_command),
        *("--origin-restore-cmd", http_origin.start_command),
        *("--admin-poll", "0.2"),
        seconds=6,
    )
    events = run.timeline()
    names = [event for event, _ in events]
    assert "origin killed" in names and "origin restored" in names, run.output
    assert names.index("origin killed") < names.index("proxy: origin http down"), events
    assert run.checks()["origin killed: command succeeded"] == (1, 0)
    assert run.checks()["origin restored: command succeeded"] == (1, 0)
    phases = {row["phase"]: row for row in run.csv("phases")}
    assert int(phases["outage"]["requests"]) > 0 and int(phases["recovered"]["requests"]) > 0
    # The local folder backs the HTTP origin up in the /failover group: clients see no
    # errors while it is down.
    assert_no_failures(run)
    assert run.csv("origin_counters") is not None
    deadline = time.monotonic() + 5
    while not http_origin.running() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert http_origin.running(), "the restore command did not bring the origin back"


def test_purge_storm_purges_while_browsing_goes_on(
    proxy: ProxyServer, objects: Path, tmp_path: Path
) -> None:
    # The proxy has no admin token: loopback clients may purge (proxy/ops/access.py).
    run = run_locust(
        "purge_storm.py",
        proxy,
        objects,
        tmp_path,
        *("--think-time", "0.1,0.3", "--watch-time", "0.05,0.2", "--purge-rate", "5"),
        *("--exit-code-on-error", "3", "--warmup", "1"),
        users=3,
        seconds=4,
    )
    assert run.code == 0, run.output
    requests = run.requests()
    assert requests["purge (POST /_purge)"][0] >= 5
    for name, (_, failed) in requests.items():
        assert failed == 0, (name, run.output)
    assert run.checks()["purge: accepted (2xx)"][0] >= 5
    assert run.csv("exceptions") == [], run.output


def test_web_ui_shows_the_edgeshield_tables(
    proxy: ProxyServer, objects: Path, tmp_path: Path
) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOCUST_", "EDGESHIELD_"))}
    env["PYTHONPATH"] = str(REPO_ROOT)
    cmd = [
        sys.executable,
        "-m",
        "locust",
        *("-f", str(REPO_ROOT / "loadtests" / "video.py"), "--host", proxy.url),
        *("--autostart", "-u", "2", "-r", "2", "-t", "4s", "--autoquit", "0"),
        *("--web-host", "127.0.0.1", "--web-port", str(port)),
        *("--objects", str(objects / "manifest.json"), "--think-time", "0.1,0.2"),
        *("--watch-time", "0.05,0.1", "--warmup", "1"),
    ]
    proc = subprocess.Popen(
        cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        wait_for_port(port, 20)
        tables: dict[str, list[dict[str, object]]] = {}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                body = client.get("/stats/requests").json()
                tables = {t["key"]: t["data"] for t in body.get("extended_stats", [])}
                if any(row["requests"] for row in tables.get("edgeshield-cache-status", [])):
                    break
                time.sleep(0.2)
            assert set(tables) == {
                "edgeshield-cache-status",
                "edgeshield-phases",
                "edgeshield-offload",
                "edgeshield-checks",
            }
            assert {row["scenario"] for row in tables["edgeshield-cache-status"]} == {"video"}
            assert "extendedTabs" in client.get("/").text
            csv_text = client.get("/edgeshield/cache_status.csv").text
            assert csv_text.startswith("scenario,phase,cache_status,detail,requests")
            assert client.get("/edgeshield/nope.csv").status_code == 404
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        output = proc.communicate()[0]
    assert "edgeshield: Cache-Status" in output, output[-4000:]


def test_back_pressure_is_reported_apart_from_failures(
    objects: Path, http_origin: HttpOrigin, tmp_path: Path
) -> None:
    """A transform pool of one slot and no queue: most cold variants get the pool's 503,
    which Locust counts under its own name, not as a failure."""
    config = loadtest_config(objects, http_origin) + "\n[images]\nthreads = 1\nqueue_depth = 0\n"
    with running_proxy(config) as tiny_pool:
        run = run_locust(
            "gallery.py", tiny_pool, objects, tmp_path, "--think-time", "0.1,0.3", "--warmup", "1"
        )
    assert_no_failures(run)
    requests = run.requests()
    assert requests["image back-pressure (503)"][0] > 0, run.output
    assert any("503:" in phase["statuses"] for phase in run.csv("phases")), run.output
