"""proxy/serve/metrics.py with several workers: snapshots merged the way prometheus-client's
multiprocess mode merges its files (counters summed over every worker that ran, each
gauge over the live ones by its mode), and each live worker's process_* under its pid."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from proxy.serve.metrics import GAUGE_MODES, SPEC, Stats, build_registry, merge

DEAD_PID = 2**22 + 12345  # above Linux's pid_max: never a live process


def _snap(pid: int, gauges: dict[str, list[Any]], counters: dict[str, list[Any]] | None = None):
    return {"pid": pid, "counters": counters or {}, "histograms": {}, "gauges": gauges}


def test_every_gauge_says_how_workers_combine_and_only_gauges_do() -> None:
    gauges = {name for name, (kind, _, _) in SPEC.items() if kind == "gauge"}
    assert set(GAUGE_MODES) == gauges
    assert set(GAUGE_MODES.values()) <= {"livesum", "livemax", "livemin"}


def test_state_gauges_are_not_summed_over_workers() -> None:
    me = os.getpid()
    ppid = os.getppid()  # alive for as long as this test runs
    one = _snap(
        me,
        {
            "edgeshield_origin_up": [[["a"], 1], [["b"], 1]],
            "edgeshield_redis_circuit_state": [[[], 0]],
            "edgeshield_cache_bytes": [[["memory"], 100]],
            "edgeshield_bans": [[[], 3]],
        },
        {"edgeshield_requests": [[["r", "200", "hit"], 5]]},
    )
    two = _snap(
        ppid,
        {
            "edgeshield_origin_up": [[["a"], 1], [["b"], 0]],
            "edgeshield_redis_circuit_state": [[[], 1]],
            "edgeshield_cache_bytes": [[["memory"], 50]],
            "edgeshield_bans": [[[], 3]],
        },
        {"edgeshield_requests": [[["r", "200", "hit"], 2]]},
    )
    merged = merge([one, two])
    assert merged["edgeshield_origin_up"] == {("a",): 1, ("b",): 0}  # not 2 and 1
    assert merged["edgeshield_redis_circuit_state"] == {(): 1}
    assert merged["edgeshield_cache_bytes"] == {("memory",): 150}
    assert merged["edgeshield_bans"] == {(): 3}
    assert merged["edgeshield_requests"] == {("r", "200", "hit"): 7}


def test_a_dead_workers_gauges_drop_out_and_its_counters_stay() -> None:
    live = _snap(os.getpid(), {"edgeshield_origin_up": [[["a"], 1]]})
    dead = _snap(
        DEAD_PID,
        {"edgeshield_origin_up": [[["a"], 0]], "edgeshield_cache_bytes": [[["memory"], 9]]},
        {"edgeshield_requests": [[["r", "200", "hit"], 4]]},
    )
    merged = merge([live, dead])
    assert merged["edgeshield_origin_up"] == {("a",): 1}
    assert merged["edgeshield_cache_bytes"] == {}
    assert merged["edgeshield_requests"] == {("r", "200", "hit"): 4}


@given(st.lists(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=8))
def test_each_mode_combines_any_number_of_live_workers(values: list[int]) -> None:
    snaps = [
        _snap(
            os.getpid(),
            {
                "edgeshield_origin_up": [[["a"], v]],
                "edgeshield_bans": [[[], v]],
                "edgeshield_inflight_fetches": [[[], v]],
            },
        )
        for v in values
    ]
    merged = merge(snaps)
    assert merged["edgeshield_origin_up"] == {("a",): min(values)}
    assert merged["edgeshield_bans"] == {(): max(values)}
    assert merged["edgeshield_inflight_fetches"] == {(): sum(values)}


def _families(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_one_process_exposes_its_process_metrics_unlabelled() -> None:
    registry, _ = build_registry(Stats(), None)
    families = _families(generate_latest(registry).decode())
    for name in ("process_cpu_seconds", "process_resident_memory_bytes", "process_open_fds"):
        assert [s.labels for s in families[name].samples] == [{}]


def test_workers_expose_each_live_workers_process_metrics_by_pid(tmp_path: Path) -> None:
    registry, collector = build_registry(Stats(), tmp_path)
    collector.write_snapshot()
    mine = orjson.loads((tmp_path / f"{os.getpid()}.json").read_bytes())
    assert {row[0] for row in mine["process"]} >= {"process_cpu_seconds", "process_max_fds"}
    # Another live worker's snapshot, and one of a worker that is gone.
    other = {**mine, "pid": os.getppid()}
    (tmp_path / f"{os.getppid()}.json").write_bytes(orjson.dumps(other))
    (tmp_path / f"{DEAD_PID}.json").write_bytes(orjson.dumps({**mine, "pid": DEAD_PID}))
    families = _families(generate_latest(registry).decode())
    for name in (
        "process_cpu_seconds",
        "process_resident_memory_bytes",
        "process_start_time_seconds",
    ):
        pids = [s.labels["pid"] for s in families[name].samples]
        assert sorted(pids) == sorted([str(os.getpid()), str(os.getppid())])
    assert families["process_cpu_seconds"].type == "counter"
