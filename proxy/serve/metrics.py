"""Metrics: plain counters on the hot path, Prometheus exposition at scrape time.

prometheus-client's own metric objects take a threading.Lock on every update; the hot
path must not, so requests bump plain ints here (one event loop per process owns them)
and a custom collector turns them into metric families when /metrics is scraped.

With `--workers N`, every worker writes its snapshot to `metrics_dir/<pid>.json` once a
second and right before it answers a scrape; /metrics in any worker merges all snapshots
the way prometheus-client's multiprocess mode merges its mmap files: counters and
histograms summed over every worker that ever ran, each gauge over the live ones by its
mode (`GAUGE_MODES`), and the `process_*` series of each live worker under a `pid` label
(a process's CPU time and memory are not summable across processes)."""

from __future__ import annotations

import operator
import os
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson
import psutil
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector, CollectorRegistry

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

Labels = tuple[str, ...]
Reader = Callable[[], dict[Labels, float]]


class Histogram:
    __slots__ = ("counts", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(LATENCY_BUCKETS, value)] += 1
        self.sum += value


# name -> (type, help, label names)
SPEC: dict[str, tuple[str, str, Labels]] = {
    "edgeshield_requests": ("counter", "Client requests.", ("route", "status", "cache")),
    "edgeshield_request_duration_seconds": (
        "histogram",
        "Time from request to the last byte sent to the client.",
        ("route", "cache"),
    ),
    "edgeshield_client_bytes": ("counter", "Body bytes sent to clients.", ("route",)),
    "edgeshield_origin_bytes": ("counter", "Body bytes received from origins.", ("origin",)),
    "edgeshield_origin_requests": (
        "counter",
        "Requests sent to origins, by outcome (HTTP status or error).",
        ("origin", "outcome"),
    ),
    "edgeshield_origin_duration_seconds": (
        "histogram",
        "Time until the origin's response head.",
        ("origin",),
    ),
    "edgeshield_collapsed_requests": (
        "counter",
        "Requests that shared another request's origin fetch.",
        (),
    ),
    "edgeshield_peer_fetches": ("counter", "Misses fetched from their owner peer.", ("peer",)),
    "edgeshield_peer_errors": (
        "counter",
        "Owner peers that failed a fetch (then asked the origin), by kind.",
        ("peer", "kind"),
    ),
    "edgeshield_peer_hops": ("counter", "Requests on the cluster listener.", ("result",)),
    "edgeshield_peer_owned_misses": ("counter", "Cache misses by the key's owner.", ("peer",)),
    "edgeshield_peer_share": ("gauge", "Expected share of the keys a peer owns.", ("peer",)),
    "edgeshield_peer_up": ("gauge", "1 while a peer is asked, 0 while skipped.", ("peer",)),
    "edgeshield_peer_workers": ("gauge", "Workers of this instance seen as peers.", ()),
    "edgeshield_prefetched_segments": (
        "counter",
        "Segments fetched into the cache ahead of a request.",
        (),
    ),
    "edgeshield_prefetch_used": ("counter", "Prefetched segments later requested.", ()),
    "edgeshield_prefetch_wasted_bytes": (
        "counter",
        "Bytes of prefetched segments never requested.",
        (),
    ),
    "edgeshield_cache_stores": ("counter", "Responses stored in the cache.", ("tier",)),
    "edgeshield_cache_evictions": ("counter", "Entries evicted for space.", ("tier",)),
    "edgeshield_cache_admission_rejections": (
        "counter",
        "New entries not kept: asked for less often than those they would push out.",
        ("tier",),
    ),
    "edgeshield_cache_bytes": ("gauge", "Bytes held by a cache tier.", ("tier",)),
    "edgeshield_cache_entries": ("gauge", "Entries held by a cache tier.", ("tier",)),
    "edgeshield_inflight_fetches": ("gauge", "Origin fetches under way.", ()),
    "edgeshield_cache_tier_hits": ("counter", "Lookups a lower tier answered.", ("tier",)),
    "edgeshield_cache_tier_misses": (
        "counter",
        "Lookups a lower tier could not answer.",
        ("tier",),
    ),
    "edgeshield_cache_tier_errors": (
        "counter",
        "Failed lower-tier operations (kind: error, timeout, corrupt, write).",
        ("tier", "kind"),
    ),
    "edgeshield_cache_tier_read_bytes": ("counter", "Bytes read from a lower tier.", ("tier",)),
    "edgeshield_cache_tier_written_bytes": ("counter", "Bytes written to a lower tier.", ("tier",)),
    "edgeshield_redis_circuit_state": (
        "gauge",
        "State of the Redis tier's circuit breaker: 0 closed, 1 open, 2 half-open.",
        (),
    ),
    "edgeshield_redis_circuit_opened": ("counter", "Times the Redis circuit opened.", ()),
    "edgeshield_purges": (
        "counter",
        "Purges carried out: accepted here (api) or heard from another instance or worker (bus).",
        ("source",),
    ),
    "edgeshield_purge_duration_seconds": (
        "histogram",
        "Time to carry out an accepted purge locally (memory, disk, Redis, bus).",
        (),
    ),
    "edgeshield_bans": ("gauge", "Bans (prefix purges) checked on lookup.", ()),
    "edgeshield_warm_jobs": (
        "counter",
        "Warm-up jobs started, by source (urls, sitemap, playlist, redis).",
        ("source",),
    ),
    "edgeshield_warm_urls": (
        "counter",
        "URLs (or keys) warm-up jobs finished, by result (warmed, hit, failed, refused).",
        ("result",),
    ),
    "edgeshield_access_log_dropped": (
        "counter",
        "Access-log lines dropped because writing fell behind.",
        (),
    ),
    "edgeshield_origin_up": (
        "gauge",
        "1 when the origin passes its health probes and no group has it ejected, else 0.",
        ("origin",),
    ),
    "edgeshield_origin_probes": (
        "counter",
        "Active health probes, by result (pass or fail).",
        ("origin", "result"),
    ),
    "edgeshield_origin_ejections": (
        "counter",
        "Times passive outlier detection ejected an origin from a group.",
        ("group", "origin"),
    ),
    "edgeshield_group_failovers": (
        "counter",
        "Further attempts made after a failed one, by the failure that caused them.",
        ("group", "reason"),
    ),
    "edgeshield_group_hedges": (
        "counter",
        "Hedged requests: sent (a second attempt started early) and won (it answered first).",
        ("group", "result"),
    ),
    "edgeshield_group_unavailable": (
        "counter",
        "Requests refused because no member of the group was available.",
        ("group",),
    ),
    "edgeshield_image_transforms": (
        "counter",
        "Image transforms run, by result: the output format, or rejected / overloaded.",
        ("result",),
    ),
    "edgeshield_image_transform_duration_seconds": (
        "histogram",
        "Time of one image transform, queueing on the worker pool included.",
        (),
    ),
    "edgeshield_image_workers_busy": (
        "gauge",
        "Image transforms running or queued on the worker pool.",
        (),
    ),
    "edgeshield_compressions": (
        "counter",
        "Stored entries made in another content coding (identity: an origin's undone).",
        ("encoding",),
    ),
    "edgeshield_compression_bytes": (
        "counter",
        "Body bytes into and out of those codings.",
        ("encoding", "direction"),
    ),
}


# How the live workers' values of each gauge combine, named as prometheus-client's
# multiprocess modes: what the value means decides it.
GAUGE_MODES: dict[str, str] = {
    # Each worker has its own memory tier, disk share, fetches and image pool: the
    # server holds the sum.
    "edgeshield_cache_bytes": "livesum",
    "edgeshield_cache_entries": "livesum",
    "edgeshield_inflight_fetches": "livesum",
    "edgeshield_image_workers_busy": "livesum",
    # Each worker probes and ejects on its own: the origin is up when no worker has it
    # down (1 with every worker agreeing, never 2).
    "edgeshield_origin_up": "livemin",
    # Each worker has its own breaker: non-zero when any of them is not closed.
    "edgeshield_redis_circuit_state": "livemax",
    # Every worker checks the bans it heard of: the most any worker checks.
    "edgeshield_bans": "livemax",
    # Every worker holds the same membership; a peer is up while no worker skips it.
    "edgeshield_peer_share": "livemax",
    "edgeshield_peer_up": "livemin",
    # The fewest workers any worker sees: every worker sees them all once it equals N.
    "edgeshield_peer_workers": "livemin",
}
_COMBINE: dict[str, Callable[[float, float], float]] = {
    "livesum": operator.add,
    "livemax": max,
    "livemin": min,
}


class Stats:
    """Per-process counters. Owned by the app state; no module-level instance."""

    def __init__(self) -> None:
        self.counters: dict[str, dict[Labels, float]] = {
            name: {} for name, (kind, _, _) in SPEC.items() if kind == "counter"
        }
        self.histograms: dict[str, dict[Labels, Histogram]] = {
            name: {} for name, (kind, _, _) in SPEC.items() if kind == "histogram"
        }
        # Series read when scraped (gauges, and counters another object keeps, such as
        # the LRU's evictions): each component registers its rows where it is created
        # (`sample`), and `sampled` reads every source of a series.
        self.sampled: dict[str, Reader] = {}
        self.sources: dict[str, dict[str, Reader]] = {}

    def sample(self, name: str, source: str, read: Reader) -> None:
        """`source`'s rows of the sampled series `name`. Once: a second registration
        of the same source would be a component wired twice."""
        readers = self.sources.setdefault(name, {})
        if source in readers:
            raise ValueError(f"{name}: {source} is registered already")
        readers[source] = read
        merged = tuple(readers.values())
        self.sampled[name] = read if len(merged) == 1 else lambda: _merge_rows(merged)

    def sample_sizes(self, tier: str, read: Callable[[], Mapping[str, Any]]) -> None:
        """A cache tier's rows of the size, entry and eviction series, from its stats()."""
        for field in ("bytes", "entries", "evictions"):
            self.sample(f"edgeshield_cache_{field}", tier, _field_row(tier, read, field))

    def sample_lower_tier(self, tier: str, read: Callable[[], Mapping[str, Any]]) -> None:
        """A lower tier's hit, miss, byte and error counters, from its stats()."""
        self.sample("edgeshield_cache_tier_hits", tier, _field_row(tier, read, "hits"))
        self.sample("edgeshield_cache_tier_misses", tier, _field_row(tier, read, "misses"))
        self.sample("edgeshield_cache_tier_read_bytes", tier, _field_row(tier, read, "bytes_read"))
        written = _field_row(tier, read, "bytes_written")
        self.sample("edgeshield_cache_tier_written_bytes", tier, written)

        def errors() -> dict[Labels, float]:
            st = read()
            return {
                (tier, "error"): st.get("errors", 0),
                (tier, "timeout"): st.get("timeouts", 0),
                (tier, "corrupt"): st.get("corrupt", 0) + st.get("corrupt_dropped", 0),
                (tier, "write"): st.get("write_errors", 0),
            }

        self.sample("edgeshield_cache_tier_errors", tier, errors)

    def inc(self, name: str, labels: Labels, amount: float = 1) -> None:
        series = self.counters[name]
        series[labels] = series.get(labels, 0) + amount

    def observe(self, name: str, labels: Labels, value: float) -> None:
        series = self.histograms[name]
        hist = series.get(labels)
        if hist is None:
            hist = series[labels] = Histogram()
        hist.observe(value)

    def snapshot(self) -> dict[str, Any]:
        counters = {n: [[list(k), v] for k, v in s.items()] for n, s in self.counters.items()}
        gauges: dict[str, list[Any]] = {}
        for name, read in self.sampled.items():
            rows = [[list(k), v] for k, v in read().items()]
            if SPEC[name][0] == "counter":
                counters[name] = counters.get(name, []) + rows
            else:
                gauges[name] = rows
        return {
            "pid": os.getpid(),
            "counters": counters,
            "histograms": {
                n: [[list(k), h.counts, h.sum] for k, h in s.items()]
                for n, s in self.histograms.items()
            },
            "gauges": gauges,
        }


def _field_row(tier: str, read: Callable[[], Mapping[str, Any]], field: str) -> Reader:
    return lambda: {(tier,): read().get(field, 0)}


def _merge_rows(readers: Iterable[Reader]) -> dict[Labels, float]:
    rows: dict[Labels, float] = {}
    for read in readers:
        rows.update(read())
    return rows


def _alive(snap: dict[str, Any]) -> bool:
    pid = snap.get("pid", -1)
    return bool(pid == os.getpid() or psutil.pid_exists(pid))


def merge(snapshots: Iterable[dict[str, Any]]) -> dict[str, dict[Labels, Any]]:
    """Counters and histograms summed; gauges only from processes still alive, combined
    by their GAUGE_MODES."""
    out: dict[str, dict[Labels, Any]] = {name: {} for name in SPEC}
    for snap in snapshots:
        for name, rows in snap.get("counters", {}).items():
            for labels, value in rows:
                key = tuple(labels)
                out[name][key] = out[name].get(key, 0) + value
        for name, rows in snap.get("histograms", {}).items():
            for labels, counts, total in rows:
                key = tuple(labels)
                prev = out[name].get(key)
                if prev is None:
                    out[name][key] = (list(counts), total)
                else:
                    out[name][key] = (
                        [a + b for a, b in zip(prev[0], counts, strict=True)],
                        prev[1] + total,
                    )
        if _alive(snap):
            for name, rows in snap.get("gauges", {}).items():
                combine = _COMBINE[GAUGE_MODES[name]]
                for labels, value in rows:
                    key = tuple(labels)
                    prev = out[name].get(key)
                    out[name][key] = value if prev is None else combine(prev, value)
    return out


def process_rows(process: Collector) -> list[list[Any]]:
    """This process's `process_*` families, for its snapshot."""
    return [
        [
            family.name,
            family.type,
            family.documentation,
            [[s.name, s.value] for s in family.samples],
        ]
        for family in process.collect()
    ]


def process_families(snapshots: Iterable[dict[str, Any]]) -> Iterator[Metric]:
    """Every live worker's `process_*` series under its `pid` label, as prometheus-client's
    `liveall` gauges: CPU time, memory and descriptors belong to one process each."""
    families: dict[str, Metric] = {}
    live = sorted((s for s in snapshots if _alive(s)), key=lambda s: int(s.get("pid", 0)))
    for snap in live:
        pid = str(snap["pid"])
        for name, kind, doc, samples in snap.get("process", ()):
            family = families.get(name)
            if family is None:
                family = families[name] = Metric(name, doc, kind)
            for sample_name, value in samples:
                family.add_sample(sample_name, {"pid": pid}, value)
    yield from families.values()


class StatsCollector(Collector):
    def __init__(self, stats: Stats, metrics_dir: Path | None) -> None:
        self.stats = stats
        self.metrics_dir = metrics_dir
        self.process = ProcessCollector(registry=None)

    def write_snapshot(self) -> None:
        if self.metrics_dir is None:
            return
        snap = self.stats.snapshot()
        snap["process"] = process_rows(self.process)
        tmp = self.metrics_dir / f".{os.getpid()}.tmp"
        tmp.write_bytes(orjson.dumps(snap))
        os.replace(tmp, self.metrics_dir / f"{os.getpid()}.json")

    def _snapshots(self) -> list[dict[str, Any]]:
        if self.metrics_dir is None:
            return [self.stats.snapshot()]
        self.write_snapshot()
        snaps = []
        for path in self.metrics_dir.glob("*.json"):
            try:
                snaps.append(orjson.loads(path.read_bytes()))
            except (OSError, orjson.JSONDecodeError):
                continue  # a worker mid-write or gone: its next snapshot will count
        return snaps

    def collect(self) -> Iterator[Metric]:
        snapshots = self._snapshots()
        merged = merge(snapshots)
        for name, (kind, doc, label_names) in SPEC.items():
            series = merged[name]
            family: Metric
            if kind == "counter":
                family = CounterMetricFamily(name, doc, labels=label_names)
                for labels, value in sorted(series.items()):
                    family.add_metric(list(labels), value)
            elif kind == "gauge":
                family = GaugeMetricFamily(name, doc, labels=label_names)
                for labels, value in sorted(series.items()):
                    family.add_metric(list(labels), value)
            else:
                family = HistogramMetricFamily(name, doc, labels=label_names)
                for labels, (counts, total) in sorted(series.items()):
                    cumulative, buckets = 0, []
                    for bound, count in zip((*LATENCY_BUCKETS, float("inf")), counts, strict=True):
                        cumulative += count
                        buckets.append((_bound(bound), cumulative))
                    family.add_metric(list(labels), buckets, total)
            yield family
        if self.metrics_dir is None:
            yield from self.process.collect()  # the one process that serves
        else:
            yield from process_families(snapshots)


def _bound(value: float) -> str:
    return "+Inf" if value == float("inf") else repr(float(value))


def build_registry(
    stats: Stats, metrics_dir: Path | None
) -> tuple[CollectorRegistry, StatsCollector]:
    registry = CollectorRegistry(auto_describe=False)
    collector = StatsCollector(stats, metrics_dir)
    registry.register(collector)
    return registry, collector
