"""Per-run statistics of the edgeshield scenarios, beyond Locust's own.

Importing this module registers one `init` listener (and the shared command-line
options). At init it creates a `RunStats` for the Environment, stores it there
(`run_stats(environment)`), and hooks it into that Environment's events:

- `request`: every response is counted per (scenario, phase): status codes, failures,
  and its RFC 9211 Cache-Status class (hit, hit (stale), fwd=miss, fwd=stale, ...);
- `test_start` / `test_stop`: the proxy's /metrics is scraped at the start, at the end of
  the warm-up and at the end, for origin offload (from Cache-Status when /metrics is
  unreachable); at the end the tables are printed and written as CSVs next to Locust's
  (`--csv PREFIX` -> PREFIX_cache_status.csv, _phases.csv, _offload.csv, _checks.csv,
  _timeline.csv);
- `report_to_master` / `worker_report`: the counts travel from workers to the master
  in distributed runs (`--processes N`);
- the web UI gets four more tabs and CSV downloads.

The scenario is the `scenario` entry of the request context (see browsing.py); the phase
is "warm-up" for the first --warmup seconds, then "steady", unless a scenario sets its
own (origin_failure.py: "outage", "recovered").
"""

from __future__ import annotations

import csv
import json
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gevent
from locust import events
from locust.env import Environment
from locust.runners import WorkerRunner

from loadtests.lib import cache_status, metrics
from loadtests.lib.objects import ManifestError, ObjectSet, load_objects
from loadtests.lib.options import Options, add_arguments

log = logging.getLogger("edgeshield.loadtest")
# Locust prints its own summary through this logger (stdout, no prefix): ours goes along.
console = logging.getLogger("locust.stats_logger")

STATE_ATTR = "edgeshield_run_stats"
WARMUP, STEADY = "warm-up", "steady"
# Distinct Cache-Status details kept per row group: error reasons could otherwise grow
# the table without bound.
MAX_DETAILS = 40
# Image-variant details (proxy/variants.py) whose source did not come from the origin.
_NO_SOURCE_FETCH = frozenset({"source-hit", "source-stale", "source-collapsed"})
# Live offload in the web UI scrapes /metrics at most this often.
LIVE_SCRAPE_INTERVAL = 5.0

Table = tuple[list[str], list[list[Any]]]


@dataclass
class PhaseCounts:
    requests: int = 0
    failures: int = 0
    hits: int = 0
    classified: int = 0  # responses that took part in the Cache-Status table
    body_bytes: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    first_failure: float | None = None
    last_failure: float | None = None

    def merge(self, other: PhaseCounts) -> None:
        self.requests += other.requests
        self.failures += other.failures
        self.hits += other.hits
        self.classified += other.classified
        self.body_bytes += other.body_bytes
        self.statuses.update(other.statuses)
        self.errors.update(other.errors)
        for t in (other.first_failure, other.last_failure):
            if t is not None:
                self.failure_at(t)

    def failure_at(self, t: float) -> None:
        self.first_failure = t if self.first_failure is None else min(self.first_failure, t)
        self.last_failure = t if self.last_failure is None else max(self.last_failure, t)


@dataclass
class CacheCounts:
    requests: int = 0
    body_bytes: int = 0
    collapsed: int = 0
    stored: int = 0

    def merge(self, other: CacheCounts) -> None:
        self.requests += other.requests
        self.body_bytes += other.body_bytes
        self.collapsed += other.collapsed
        self.stored += other.stored


@dataclass
class OriginEstimate:
    """Origin traffic inferred from Cache-Status, for when /metrics is not reachable."""

    client_requests: int = 0
    client_bytes: int = 0
    origin_requests: int = 0
    origin_bytes: int = 0
    hits: int = 0

    def merge(self, other: OriginEstimate) -> None:
        self.client_requests += other.client_requests
        self.client_bytes += other.client_bytes
        self.origin_requests += other.origin_requests
        self.origin_bytes += other.origin_bytes
        self.hits += other.hits


class RunStats:
    """Everything the edgeshield tables need about one run; lives on the Environment."""

    def __init__(self, environment: Environment) -> None:
        self.environment = environment
        self.started_at: float | None = None
        self.phase_override: str | None = None
        self.objects: ObjectSet | None = None
        self._objects_spec = ""
        self.samples: dict[str, metrics.Sample] = {}
        self.offload_rows: list[metrics.Offload] = []
        self.extra_tables: dict[str, Callable[[], Table]] = {}
        # Scenario hooks run at test_stop before the tables are made (e.g. timeline notes).
        self.before_report: list[Callable[[], None]] = []
        self._live: tuple[float, metrics.Offload] | None = None
        self._greenlets: list[gevent.Greenlet] = []
        self._users = 0
        self.refresh_options()
        self.reset()

    # ------------------------------------------------------------------ state

    def reset(self) -> None:
        self.phases: dict[tuple[str, str], PhaseCounts] = {}
        self.cache: dict[tuple[str, str, str, str], CacheCounts] = {}
        self.estimate = OriginEstimate()
        self.checks: dict[str, list[int]] = {}
        self.timeline: list[tuple[float, str, str]] = []

    def refresh_options(self) -> None:
        """Read the options again (the web UI may have changed them for this run); read
        once, not per request, because the request listener is the hot path."""
        self.options = Options.from_parsed(self.environment.parsed_options)

    def next_user(self) -> int:
        self._users += 1
        return self._users

    @property
    def is_worker(self) -> bool:
        return isinstance(self.environment.runner, WorkerRunner)

    @property
    def reports(self) -> bool:
        """This process prints and writes the tables (not a worker of a distributed run)."""
        return not self.is_worker

    def elapsed(self, now: float | None = None) -> float:
        if self.started_at is None:
            return 0.0
        return (time.time() if now is None else now) - self.started_at

    def phase_at(self, now: float) -> str:
        if self.phase_override is not None:
            return self.phase_override
        if self.started_at is not None and now - self.started_at < self.options.warmup:
            return WARMUP
        return STEADY

    def load_objects(self) -> ObjectSet:
        spec = self.options.objects
        if self.objects is None or spec != self._objects_spec:
            self.objects = load_objects(spec)
            self._objects_spec = spec
        return self.objects

    def note(self, event: str, detail: str = "") -> None:
        """A timeline entry (and a log line, so it shows while the test runs)."""
        t = self.elapsed()
        self.timeline.append((t, event, detail))
        log.info("+%.2fs %s%s", t, event, f": {detail}" if detail else "")

    def check(self, name: str, ok: bool) -> None:
        counts = self.checks.setdefault(name, [0, 0])
        counts[0 if ok else 1] += 1

    # ------------------------------------------------------------------ events

    def on_request(
        self,
        request_type: str,
        name: str,
        response_time: float,
        response_length: int,
        response: Any = None,
        context: dict[str, Any] | None = None,
        exception: BaseException | None = None,
        **_: Any,
    ) -> None:
        now = time.time()
        ctx = context or {}
        scenario = str(ctx.get("scenario", "-"))
        phase = self.phase_at(now)
        counts = self.phases.get((scenario, phase))
        if counts is None:
            counts = self.phases[(scenario, phase)] = PhaseCounts()
        size = response_length or 0
        counts.requests += 1
        counts.body_bytes += size
        status = getattr(response, "status_code", None) or 0
        counts.statuses[str(status) if status else "no response"] += 1
        if exception is not None:
            counts.failures += 1
            counts.errors[_error_text(exception)] += 1
            counts.failure_at(self.elapsed(now))
        # Purges and other admin calls (context cache=False) are not cache traffic.
        if not ctx.get("cache", True) or not status:
            return
        headers = getattr(response, "headers", None)
        outcome = cache_status.classify(headers.get("cache-status") if headers else None)
        counts.classified += 1
        counts.hits += outcome.is_hit
        self._count_cache(scenario, phase, outcome, size)
        self._estimate(outcome, size, ctx, headers)

    def _count_cache(
        self, scenario: str, phase: str, outcome: cache_status.CacheOutcome, size: int
    ) -> None:
        detail = outcome.detail
        key = (scenario, phase, outcome.status, detail)
        if key not in self.cache:
            same = sum(1 for k in self.cache if k[:3] == key[:3])
            if same >= MAX_DETAILS:
                key = (scenario, phase, outcome.status, "(other)")
        row = self.cache.get(key)
        if row is None:
            row = self.cache[key] = CacheCounts()
        row.requests += 1
        row.body_bytes += size
        row.collapsed += outcome.collapsed
        row.stored += outcome.stored

    def _estimate(
        self, outcome: cache_status.CacheOutcome, size: int, ctx: dict[str, Any], headers: Any
    ) -> None:
        est = self.estimate
        est.client_requests += 1
        est.client_bytes += size
        if outcome.is_hit:
            est.hits += 1
            return
        # A forwarded response cost an origin fetch unless it shared another's
        # (collapsed) or an image variant was made from a source that was cached
        # (source-hit, source-stale) or being fetched for another variant.
        if not outcome.forwarded or outcome.collapsed or outcome.detail in _NO_SOURCE_FETCH:
            return
        est.origin_requests += 1
        if outcome.fwd_status == 304 or outcome.detail == "stale-if-error":
            return  # revalidated or failed: no body came from the origin
        # Misses fetch the whole object (a range miss too): the manifest's size of the
        # source when the user said which object it was, else the Content-Range total.
        source = ctx.get("object_bytes")
        if isinstance(source, int) and source > 0:
            est.origin_bytes += source
            return
        total = _content_range_total(headers.get("content-range") if headers else None)
        est.origin_bytes += total if total is not None else size

    def on_test_start(self, environment: Environment, **_: Any) -> None:
        self.refresh_options()
        self.reset()
        self.started_at = time.time()
        self.phase_override = None
        self.samples = {}
        self.offload_rows = []
        self._live = None
        if not self.reports:
            return
        try:
            self.load_objects()
        except ManifestError as exc:
            log.error("%s", exc)
        if self.options.metrics:
            self._scrape("start")
            if self.options.warmup > 0:
                self._greenlets.append(
                    gevent.spawn_later(self.options.warmup, self._scrape, "warm-up end")
                )

    def on_test_stop(self, environment: Environment, **_: Any) -> None:
        for greenlet in self._greenlets:
            greenlet.kill(block=False)
        self._greenlets.clear()
        if not self.reports:
            return
        if self.options.metrics and "start" in self.samples:
            self._scrape("end")
        for hook in self.before_report:
            hook()
        self.offload_rows = self.compute_offload()
        self.print_summary()
        prefix = getattr(environment.parsed_options, "csv_prefix", None)
        if prefix:
            self.write_csvs(prefix)

    def on_reset_stats(self, **_: Any) -> None:
        self.reset()

    def _scrape(self, label: str) -> metrics.Sample | None:
        url = self.metrics_url()
        try:
            sample = metrics.scrape(url, self.options.purge_token or None)
        except Exception as exc:  # any failure here must not stop the load test
            if not any(event == "metrics unavailable" for _, event, _ in self.timeline):
                self.note(
                    "metrics unavailable",
                    f"{url}: {_error_text(exc)}; offload is estimated from Cache-Status",
                )
            return None
        self.samples[label] = sample
        return sample

    def metrics_url(self) -> str:
        return self.options.admin_base(self.environment.host) + "/metrics"

    # ------------------------------------------------------------------ distributed runs

    def export(self) -> dict[str, Any]:
        """The counts since the last export, as msgpack-friendly data (then reset)."""
        data = {
            "phases": [
                [
                    s,
                    p,
                    c.requests,
                    c.failures,
                    c.hits,
                    c.classified,
                    c.body_bytes,
                    dict(c.statuses),
                    dict(c.errors),
                    c.first_failure,
                    c.last_failure,
                ]
                for (s, p), c in self.phases.items()
            ],
            "cache": [
                [*key, c.requests, c.body_bytes, c.collapsed, c.stored]
                for key, c in self.cache.items()
            ],
            "estimate": list(vars(self.estimate).values()),
            "checks": self.checks,
        }
        timeline = self.timeline
        self.reset()
        self.timeline = timeline  # workers' notes stay local (they are logged there)
        return data

    def merge(self, data: dict[str, Any]) -> None:
        for s, p, req, fail, hits, classified, nbytes, statuses, errors, first, last in data.get(
            "phases", ()
        ):
            other = PhaseCounts(req, fail, hits, classified, nbytes, Counter(statuses))
            other.errors.update(errors)
            other.first_failure, other.last_failure = first, last
            self.phases.setdefault((s, p), PhaseCounts()).merge(other)
        for s, p, status, detail, req, nbytes, collapsed, stored in data.get("cache", ()):
            row = CacheCounts(req, nbytes, collapsed, stored)
            self.cache.setdefault((s, p, status, detail), CacheCounts()).merge(row)
        if data.get("estimate"):
            self.estimate.merge(OriginEstimate(*data["estimate"]))
        for name, (passed, failed) in data.get("checks", {}).items():
            counts = self.checks.setdefault(name, [0, 0])
            counts[0] += passed
            counts[1] += failed

    # ------------------------------------------------------------------ tables

    def compute_offload(self, window: str = "whole run") -> list[metrics.Offload]:
        rows: list[metrics.Offload] = []
        start, warm, end = (self.samples.get(k) for k in ("start", "warm-up end", "end"))
        if start is not None and end is not None:
            rows.append(metrics.offload(window, start, end))
            if warm is not None:
                rows.append(metrics.offload("after warm-up", warm, end))
        est = self.estimate
        rows.append(
            metrics.Offload(
                window=window,
                source="cache-status (estimate)",
                seconds=self.elapsed(),
                client_requests=est.client_requests,
                origin_requests=est.origin_requests,
                client_bytes=est.client_bytes,
                origin_bytes=est.origin_bytes,
                hits=est.hits,
            )
        )
        return rows

    def live_offload(self) -> list[metrics.Offload]:
        """Offload so far, for the web UI while a test runs (scrapes now and then)."""
        if self.offload_rows:
            return self.offload_rows
        start = self.samples.get("start")
        now = time.time()
        if start is not None and (self._live is None or now - self._live[0] > LIVE_SCRAPE_INTERVAL):
            sample = self._scrape("latest")
            if sample is not None:
                self._live = (now, metrics.offload("so far", start, sample))
        rows = [self._live[1]] if self._live is not None else []
        return rows + self.compute_offload("so far")[-1:]

    def tables(self, offload: list[metrics.Offload] | None = None) -> dict[str, Table]:
        out = {
            "cache_status": self.cache_table(),
            "phases": self.phase_table(),
            "offload": offload_table(self.offload_rows if offload is None else offload),
            "checks": (
                ["check", "passed", "failed"],
                [[name, p, f] for name, (p, f) in sorted(self.checks.items())],
            ),
            "timeline": (
                ["t_s", "event", "detail"],
                [[round(t, 3), event, detail] for t, event, detail in self.timeline],
            ),
        }
        for name, make in self.extra_tables.items():
            out[name] = make()
        return out

    def cache_table(self) -> Table:
        header = [
            "scenario",
            "phase",
            "cache_status",
            "detail",
            "requests",
            "share",
            "collapsed",
            "stored",
            "body_bytes",
        ]
        groups: Counter[tuple[str, str]] = Counter()
        for (s, p, _, _), row in self.cache.items():
            groups[(s, p)] += row.requests
        rows = []
        for key in sorted(self.cache, key=lambda k: (k[0], _phase_rank(k[1]), k[2], k[3])):
            row = self.cache[key]
            share = row.requests / groups[key[:2]] if groups[key[:2]] else 0.0
            rows.append(
                [*key, row.requests, round(share, 4), row.collapsed, row.stored, row.body_bytes]
            )
        return header, rows

    def phase_table(self) -> Table:
        header = [
            "scenario",
            "phase",
            "requests",
            "failures",
            "failure_ratio",
            "hit_ratio",
            "statuses",
            "first_failure_s",
            "last_failure_s",
            "errors",
        ]
        rows = []
        for s, p in sorted(self.phases, key=lambda k: (k[0], _phase_rank(k[1]))):
            c = self.phases[(s, p)]
            statuses = " ".join(f"{k}:{v}" for k, v in sorted(c.statuses.items()))
            errors = "; ".join(f"{n}x {msg}" for msg, n in c.errors.most_common(3))
            rows.append(
                [
                    s,
                    p,
                    c.requests,
                    c.failures,
                    round(c.failures / c.requests, 4) if c.requests else 0.0,
                    round(c.hits / c.classified, 4) if c.classified else "",
                    statuses,
                    _round(c.first_failure),
                    _round(c.last_failure),
                    errors,
                ]
            )
        return header, rows

    def print_summary(self) -> None:
        tables = self.tables()
        console.info("")
        console.info("edgeshield: requests per scenario and phase")
        _print_table(*tables["phases"], skip=("errors",))
        console.info("")
        console.info("edgeshield: Cache-Status (RFC 9211) per scenario and phase")
        _print_table(*tables["cache_status"])
        console.info("")
        console.info("edgeshield: origin offload (1 - origin/client)")
        _print_table(*tables["offload"])
        for name in ("checks", "timeline", *self.extra_tables):
            header, rows = tables[name]
            if rows:
                console.info("")
                console.info(f"edgeshield: {name}")
                _print_table(header, rows)
        errors = [
            f"  {s}/{p}: {n}x {msg}"
            for (s, p), c in sorted(self.phases.items())
            for msg, n in c.errors.most_common(3)
        ]
        if errors:
            console.info("")
            console.info("edgeshield: most frequent failures per scenario and phase")
            for line in errors:
                console.info(line)
        console.info("")

    def write_csvs(self, prefix: str) -> list[Path]:
        written = []
        for name, (header, rows) in self.tables().items():
            path = Path(f"{prefix}_{name}.csv")
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("w", newline="") as fh:
                writer = csv.writer(fh)
                writer.writerow(header)
                writer.writerows(rows)
            written.append(path)
        return written


def offload_table(rows: Iterable[metrics.Offload]) -> Table:
    header = [
        "window",
        "source",
        "seconds",
        "client_requests",
        "origin_requests",
        "request_offload",
        "client_bytes",
        "origin_bytes",
        "origin_per_client_byte",
        "byte_offload",
        "hit_ratio",
    ]
    out = []
    for r in rows:
        out.append(
            [
                r.window,
                r.source,
                round(r.seconds, 2),
                int(r.client_requests),
                int(r.origin_requests),
                _ratio(r.request_offload),
                int(r.client_bytes),
                int(r.origin_bytes),
                _ratio(r.byte_ratio),
                _ratio(r.byte_offload),
                _ratio(r.hit_ratio),
            ]
        )
    return header, out


def _ratio(value: float) -> float | str:
    return "" if math.isnan(value) else round(value, 4)


def _round(value: float | None) -> float | str:
    return "" if value is None else round(value, 2)


def _phase_rank(phase: str) -> tuple[int, str]:
    order = {WARMUP: 0, STEADY: 1, "outage": 2, "recovered": 3}
    return order.get(phase, 9), phase


def _content_range_total(value: str | None) -> int | None:
    if not value or "/" not in value:
        return None
    total = value.rsplit("/", 1)[1].strip()
    return int(total) if total.isdigit() else None


def _error_text(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:200] + "..."


def _print_table(header: list[str], rows: list[list[Any]], skip: tuple[str, ...] = ()) -> None:
    keep = [i for i, h in enumerate(header) if h not in skip]
    cells = [[header[i] for i in keep]] + [[_cell(row[i]) for i in keep] for row in rows]
    if len(cells) == 1:
        console.info("  (no requests)")
        return
    widths = [max(len(r[i]) for r in cells) for i in range(len(keep))]
    for r in cells:
        console.info(
            "  "
            + "  ".join(
                v.rjust(w) if _numeric(v) else v.ljust(w) for v, w in zip(r, widths, strict=True)
            ).rstrip()
        )


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}".rstrip("0").rstrip(".") if value else "0"
    return str(value)


def _numeric(text: str) -> bool:
    return text.replace(".", "", 1).replace("-", "", 1).isdigit()


# ---------------------------------------------------------------------- Locust wiring


def run_stats(environment: Environment) -> RunStats:
    """The RunStats of this Environment (created at init)."""
    stats = getattr(environment, STATE_ATTR, None)
    if not isinstance(stats, RunStats):
        stats = RunStats(environment)
        setattr(environment, STATE_ATTR, stats)
    return stats


@events.init_command_line_parser.add_listener
def _on_parser(parser: Any, **_: Any) -> None:
    add_arguments(parser)


@events.init.add_listener
def _on_init(environment: Environment, **_: Any) -> None:
    stats = run_stats(environment)
    ev = environment.events
    ev.request.add_listener(stats.on_request)
    ev.test_start.add_listener(stats.on_test_start)
    ev.test_stop.add_listener(stats.on_test_stop)
    ev.reset_stats.add_listener(stats.on_reset_stats)

    def to_master(client_id: str, data: dict[str, Any], **_: Any) -> None:
        data[STATE_ATTR] = stats.export()

    def from_worker(client_id: str, data: dict[str, Any], **_: Any) -> None:
        if STATE_ATTR in data:
            stats.merge(data[STATE_ATTR])

    ev.report_to_master.add_listener(to_master)
    ev.worker_report.add_listener(from_worker)

    if not isinstance(environment.runner, WorkerRunner):
        # Fail before any load when the object set is missing, with the message that
        # says how to make one (a traceback from a user's on_start would say less).
        try:
            stats.load_objects()
        except ManifestError as exc:
            log.error("%s", exc)
            if environment.web_ui is None:
                raise SystemExit(2) from None
    if environment.web_ui is not None:
        _extend_web_ui(environment, stats)


_TABS = (
    ("edgeshield-cache-status", "Cache-Status", "cache_status"),
    ("edgeshield-phases", "Phases", "phases"),
    ("edgeshield-offload", "Offload", "offload"),
    ("edgeshield-checks", "Checks", "checks"),
)


def _extend_web_ui(environment: Environment, stats: RunStats) -> None:
    """Tabs with the edgeshield tables and CSV downloads, the way Locust's
    examples/extend_web_ui.py does it (template args + an after_request hook that adds
    `extended_stats` to /stats/requests)."""
    from flask import Response, request

    web_ui = environment.web_ui
    assert web_ui is not None and web_ui.app is not None
    header_of = {table: stats.tables()[table][0] for _, _, table in _TABS}
    web_ui.template_args["extendedTabs"] = [{"title": title, "key": key} for key, title, _ in _TABS]
    web_ui.template_args["extendedTables"] = [
        {"key": key, "structure": [{"key": h, "title": h.replace("_", " ")} for h in header_of[t]]}
        for key, _, t in _TABS
    ]
    web_ui.template_args["extendedCsvFiles"] = [
        {"href": f"/edgeshield/{t}.csv", "title": f"edgeshield {title} CSV"}
        for _, title, t in _TABS
    ]

    def current_tables() -> dict[str, Table]:
        return stats.tables(offload=stats.live_offload())

    @web_ui.app.after_request
    def add_extended_stats(response: Response) -> Response:
        if request.path.rstrip("/").endswith("/stats/requests") and response.is_json:
            body = response.get_json()
            tables = current_tables()
            body["extended_stats"] = [
                {
                    "key": key,
                    "data": [dict(zip(tables[t][0], row, strict=True)) for row in tables[t][1]],
                }
                for key, _, t in _TABS
            ]
            response.set_data(json.dumps(body))
        return response

    @web_ui.app.route("/edgeshield/<name>.csv")
    def edgeshield_csv(name: str) -> Response:
        tables = current_tables()
        if name not in tables:
            return Response("unknown table\n", status=404, mimetype="text/plain")
        header, rows = tables[name]
        lines = [",".join(header)] + [",".join(_csv_cell(v) for v in row) for row in rows]
        return Response("\n".join(lines) + "\n", mimetype="text/csv")


def _csv_cell(value: Any) -> str:
    text = str(value)
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\n') else text
