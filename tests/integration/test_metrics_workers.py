"""/metrics of a real edgeshield with two workers: state gauges read what they mean for
the whole server (an origin every worker has up is 1, not 2), and each live worker's
process_* series are exposed under its pid."""

from __future__ import annotations

import time
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.origin_server import OriginServer
from tests.support.proxy_server import proxy_config, running_proxy


def _families(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_two_workers_report_origin_up_once_and_their_own_process_series(
    origin_server: OriginServer,
) -> None:
    with (
        running_proxy(proxy_config(origin_server.url), workers=2) as proxy,
        httpx.Client(base_url=proxy.url, timeout=10) as client,
    ):
        end = time.monotonic() + 60  # a hang guard: each worker writes a snapshot a second
        while True:
            families = _families(client.get("/metrics").text)
            started = families["process_start_time_seconds"].samples
            if len({s.labels["pid"] for s in started}) == 2:
                break
            assert time.monotonic() < end, "the second worker's snapshot never appeared"
            time.sleep(0.1)
    up = [(s.labels, s.value) for s in families["edgeshield_origin_up"].samples]
    assert up == [({"origin": "main"}, 1.0)]
    for name in ("process_cpu_seconds", "process_resident_memory_bytes", "process_open_fds"):
        samples = families[name].samples
        assert len({s.labels["pid"] for s in samples}) == 2 and all(s.value > 0 for s in samples)


def test_one_worker_reports_its_process_series_unlabelled(origin_server: OriginServer) -> None:
    with running_proxy(proxy_config(origin_server.url)) as proxy:
        families = _families(httpx.get(proxy.url + "/metrics", timeout=10).text)
    assert [s.labels for s in families["process_resident_memory_bytes"].samples] == [{}]
    assert [s.value for s in families["edgeshield_origin_up"].samples] == [1.0]
