"""An origin fails while visitors browse: what do clients see? (Locust scenario)

    locust -f loadtests/origin_failure.py --host http://127.0.0.1:8090 --headless \\
        -u 5 -r 5 -t 60s --kill-at 20 --restore-at 40 \\
        --origin-kill-cmd 'kill $(cat var/loadtest/origin.pid)' \\
        --origin-restore-cmd '.venv/bin/python -m http.server -b 127.0.0.1 8091 \\
            -d var/loadtest/objects >/dev/null 2>&1 & echo $! > var/loadtest/origin.pid' \\
        --csv var/reports/origin-failure

Gallery visitors (as in gallery.py) browse through `--failure-route` (a path prefix; in
loadtests/edgeshield-loadtest.toml `/failover` goes to a failover group of an HTTP
origin and the local folder as backup, `/direct` to the HTTP origin alone). At
`--kill-at` seconds the `--origin-kill-cmd` shell command stops the origin, at
`--restore-at` the `--origin-restore-cmd` starts it again (also run at the end of a
test stopped during the outage). Both can come from EDGESHIELD_ORIGIN_KILL_CMD and
EDGESHIELD_ORIGIN_RESTORE_CMD. The phases are "warm-up", "steady", "outage" (from the
kill) and "recovered" (from the restore).

Without a kill command nothing is stopped: stop the origin by hand (or with any
chaos tool) while this runs; the phases table then shows, per phase, how many requests
failed and the first and last failure time (seconds since the start), which is the
failover window as clients saw it.

While it runs, `/_admin/origins` is polled (`--admin-poll` seconds; loopback, or
`--purge-token` when the deployment has an admin token) and the proxy's view of each
origin (up/down, ejected from a group) goes into the timeline; at the end, the deltas of
the proxy's failover counters (/metrics) are printed as the "origin_counters" table.

Run this one in a single Locust process: the phases are switched where the drill runs.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import gevent
import requests
from locust import events
from locust.env import Environment
from locust.runners import WorkerRunner

try:
    from loadtests.lib import metrics
    from loadtests.lib.browsing import ImageBrowsing
    from loadtests.lib.report import RunStats, Table, run_stats
except ModuleNotFoundError:  # started from outside the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from loadtests.lib import metrics
    from loadtests.lib.browsing import ImageBrowsing
    from loadtests.lib.report import RunStats, Table, run_stats

OUTAGE, RECOVERED = "outage", "recovered"
COMMAND_TIMEOUT_S = 30.0
# The proxy's counters about origins and groups, shown as deltas at the end.
COUNTERS = (
    "edgeshield_origin_requests",
    "edgeshield_group_failovers",
    "edgeshield_group_unavailable",
    "edgeshield_origin_ejections",
    "edgeshield_group_hedges",
)


@events.init_command_line_parser.add_listener
def _arguments(parser: Any, **_: Any) -> None:
    parser.add_argument(
        "--failure-route",
        default="/failover",
        help="origin failure: path prefix of the route whose origin fails ('' for /)",
    )
    parser.add_argument(
        "--origin-kill-cmd",
        default="",
        env_var="EDGESHIELD_ORIGIN_KILL_CMD",
        help="origin failure: shell command that stops the origin (empty: stop it by hand)",
    )
    parser.add_argument(
        "--origin-restore-cmd",
        default="",
        env_var="EDGESHIELD_ORIGIN_RESTORE_CMD",
        help="origin failure: shell command that starts it again",
    )
    parser.add_argument(
        "--kill-at", type=float, default=20.0, help="origin failure: seconds before the kill"
    )
    parser.add_argument(
        "--restore-at",
        type=float,
        default=40.0,
        help="origin failure: seconds before the restore (<= --kill-at: never)",
    )
    parser.add_argument(
        "--admin-poll",
        type=float,
        default=0.5,
        help="origin failure: seconds between polls of /_admin/origins (0: off)",
    )


class FailoverVisitor(ImageBrowsing):
    scenario = "origin-failure"

    def on_start(self) -> None:
        super().on_start()
        route = str(getattr(self.environment.parsed_options, "failure_route", "/failover"))
        route = route.strip().rstrip("/")
        # --path-prefix, when given, wins (it is the common way to pick a route).
        self.prefix = self.opts.path_prefix or (
            route if not route or route.startswith("/") else "/" + route
        )


class Drill:
    """Kills and restores the origin on schedule and watches the proxy's view of it."""

    def __init__(self, environment: Environment, stats: RunStats) -> None:
        parsed = environment.parsed_options
        self.stats = stats
        self.kill_cmd = str(getattr(parsed, "origin_kill_cmd", "") or "")
        self.restore_cmd = str(getattr(parsed, "origin_restore_cmd", "") or "")
        self.kill_at = float(getattr(parsed, "kill_at", 20.0))
        self.restore_at = float(getattr(parsed, "restore_at", 40.0))
        self.poll_every = float(getattr(parsed, "admin_poll", 0.5))
        self.admin_url = stats.options.admin_base(environment.host) + "/_admin/origins"
        self.token = stats.options.purge_token
        self.killed = self.restored = False
        self.greenlets: list[gevent.Greenlet] = []
        self.seen: dict[str, str] = {}

    def start(self) -> None:
        self.greenlets.append(gevent.spawn(self.schedule))
        if self.poll_every > 0:
            self.greenlets.append(gevent.spawn(self.watch))

    def stop(self) -> None:
        for greenlet in self.greenlets:
            greenlet.kill(block=False)
        if self.killed and not self.restored and self.restore_cmd:
            # Never leave the origin dead because the test ended first.
            self.run(self.restore_cmd, "origin restored (test stopped during the outage)")

    def schedule(self) -> None:
        if not self.kill_cmd:
            self.stats.note(
                "no --origin-kill-cmd",
                "stop the origin by hand; the phases table shows when clients saw errors",
            )
            return
        gevent.sleep(max(self.kill_at - self.stats.elapsed(), 0))
        # The phase switches first: requests in flight while the origin dies count in it.
        self.stats.phase_override = OUTAGE
        self.killed = True
        self.run(self.kill_cmd, "origin killed")
        if self.restore_at <= self.kill_at or not self.restore_cmd:
            return
        gevent.sleep(max(self.restore_at - self.stats.elapsed(), 0))
        self.stats.phase_override = RECOVERED
        self.restored = True
        self.run(self.restore_cmd, "origin restored")

    def run(self, command: str, event: str) -> None:
        # Output goes to a file, not a pipe: a restore command that starts a server in
        # the background (`... &`) leaves it holding the output, and reading a pipe
        # would wait for that server to exit.
        with tempfile.TemporaryFile() as out:
            try:
                done = subprocess.run(
                    command,
                    shell=True,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    timeout=COMMAND_TIMEOUT_S,
                )
            except subprocess.TimeoutExpired:
                self.stats.note(event, f"`{command}` still running after {COMMAND_TIMEOUT_S:.0f}s")
                self.stats.check(f"{event}: command succeeded", False)
                return
            out.seek(0)
            output = out.read(400).decode(errors="replace").strip().replace("\n", " ")[:200]
        self.stats.note(
            event, f"`{command}` exit {done.returncode}" + (f": {output}" if output else "")
        )
        self.stats.check(f"{event}: command succeeded", done.returncode == 0)

    def watch(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        while True:
            try:
                response = requests.get(self.admin_url, headers=headers, timeout=2.0)
            except requests.RequestException as exc:
                self.changed("admin", f"unreachable ({type(exc).__name__})")
            else:
                if response.status_code != 200:
                    self.stats.note(
                        "origin states not tracked",
                        f"{self.admin_url} answered {response.status_code}",
                    )
                    return
                self.changed("admin", "ok")
                self.record(response.json())
            gevent.sleep(self.poll_every)

    def record(self, snapshot: dict[str, Any]) -> None:
        for name, origin in (snapshot.get("origins") or {}).items():
            self.changed(f"origin {name}", str(origin.get("state", "?")))
        for group, info in (snapshot.get("groups") or {}).items():
            if info.get("implicit"):
                continue
            for member in info.get("members") or ():
                self.changed(
                    f"group {group} member {member.get('origin')}", str(member.get("passive"))
                )

    def changed(self, what: str, state: str) -> None:
        before = self.seen.get(what)
        if before == state:
            return
        self.seen[what] = state
        if what == "admin" and before is None and state == "ok":
            return
        self.stats.note(f"proxy: {what} {state}", f"was {before}" if before else "")

    def report_outage(self) -> None:
        for phase in (OUTAGE, RECOVERED):
            counts = self.stats.phases.get((FailoverVisitor.scenario, phase))
            if counts is None:
                continue
            window = ""
            if counts.first_failure is not None:
                window = (
                    f", first at +{counts.first_failure:.2f}s, last at +{counts.last_failure:.2f}s"
                )
            self.stats.note(
                f"clients during {phase}",
                f"{counts.requests} requests, {counts.failures} failed{window}",
            )

    def counters(self) -> Table:
        start, end = self.stats.samples.get("start"), self.stats.samples.get("end")
        rows: list[list[Any]] = []
        if start is not None and end is not None:
            for (name, labels), value in sorted(metrics.deltas(start, end, COUNTERS).items()):
                rows.append([name, " ".join(f"{k}={v}" for k, v in labels), int(value)])
        return ["counter", "labels", "delta"], rows


@events.init.add_listener
def _on_init(environment: Environment, **_: Any) -> None:
    if isinstance(environment.runner, WorkerRunner):
        return
    stats = run_stats(environment)
    drills: list[Drill] = []

    def start(**_: Any) -> None:
        drill = Drill(environment, stats)
        drills[:] = [drill]
        stats.extra_tables["origin_counters"] = drill.counters
        stats.before_report[:] = [drill.report_outage]
        drill.start()

    def stopping(**_: Any) -> None:
        # test_stopping runs before the edgeshield tables are made (test_stop).
        for drill in drills:
            drill.stop()

    environment.events.test_start.add_listener(start)
    environment.events.test_stopping.add_listener(stopping)
