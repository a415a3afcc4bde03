"""The pure parts of the Locust scenarios' shared code (loadtests/lib): Cache-Status
classification, the /metrics parser and offload, the manifest, Zipf, the options.

Nothing here imports locust: it monkey-patches the process with gevent on import, which
must not happen inside the test session (tests/e2e/test_locust_scenarios.py
runs Locust as a subprocess)."""

from __future__ import annotations

import math
import random
import sys
from argparse import Namespace
from collections import Counter

import pytest

from loadtests.lib import cache_status, metrics
from loadtests.lib.objects import ManifestError, MediaObject, Zipf, parse_manifest
from loadtests.lib.options import Options


def test_the_shared_code_does_not_patch_this_process() -> None:
    # Importing these modules must not pull in Locust (and with it gevent's monkey
    # patching of sockets and threads, which would change every other test here).
    if "gevent.monkey" in sys.modules:
        from gevent import monkey

        assert not monkey.is_module_patched("socket")


C = cache_status.CacheOutcome


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("edgeshield; hit; ttl=297; detail=memory", C("hit", "memory")),
        ("edgeshield; hit; ttl=-1; detail=memory", C("hit (stale)", "memory")),
        ("edgeshield; fwd=miss; fwd-status=200; stored",
         C("fwd=miss", stored=True, fwd_status=200)),
        (
            "edgeshield; fwd=miss; fwd-status=200; stored; collapsed; detail=source-miss",
            C("fwd=miss", "source-miss", collapsed=True, stored=True, fwd_status=200),
        ),
        ("edgeshield; fwd=stale; detail=stale-if-error", C("fwd=stale", "stale-if-error")),
        ("edgeshield; fwd=uri-miss", C("fwd=uri-miss")),
        # The member of the cache closest to the client is the last one; ours by name.
        ("cdn; hit, edgeshield; fwd=stale; fwd-status=304", C("fwd=stale", fwd_status=304)),
        ("edgeshield; fwd=miss, Other-CDN; hit", C("fwd=miss")),
        ("cdn; fwd=miss, shield; hit", C("hit")),
        # A quoted detail may hold commas and semicolons, and escapes.
        ('edgeshield; fwd=miss; detail="connect failed, 2; retried"',
         C("fwd=miss", "connect failed, 2; retried")),
        ('edgeshield; fwd=miss; detail="say \\"hi\\""', C("fwd=miss", 'say "hi"')),
        ("", C(cache_status.NO_STATUS)),
        (None, C(cache_status.NO_STATUS)),
        ("edgeshield", C(cache_status.NO_STATUS)),
    ],
)  # fmt: skip
def test_classify(value: str | None, expected: cache_status.CacheOutcome) -> None:
    outcome = cache_status.classify(value)
    assert outcome == expected
    assert outcome.is_hit == expected.status.startswith("hit")


METRICS_BEFORE = """\
# HELP edgeshield_requests Client requests.
# TYPE edgeshield_requests counter
edgeshield_requests_total{cache="hit",route="*/",status="200"} 10.0
edgeshield_requests_total{cache="miss",route="*/",status="200"} 5.0
edgeshield_requests_total{cache="ops",route="-",status="200"} 3.0
edgeshield_client_bytes_total{route="*/"} 1000.0
edgeshield_client_bytes_total{route="-"} 99999.0
edgeshield_origin_bytes_total{origin="objects"} 400.0
edgeshield_origin_requests_total{origin="objects",outcome="200"} 5.0
"""
METRICS_AFTER = """\
edgeshield_requests_total{cache="hit",route="*/",status="200"} 100.0
edgeshield_requests_total{cache="miss",route="*/",status="200"} 25.0
edgeshield_requests_total{cache="ops",route="-",status="200"} 9.0
edgeshield_requests_total{cache="miss",route="*/x",status="502"} 5.0
edgeshield_client_bytes_total{route="*/"} 11000.0
edgeshield_client_bytes_total{route="-"} 199999.0
edgeshield_origin_bytes_total{origin="objects"} 2400.0
edgeshield_origin_requests_total{origin="objects",outcome="200"} 20.0
edgeshield_origin_requests_total{origin="objects",outcome="error"} 5.0
edgeshield_group_failovers_total{group="g",reason="connect"} 2.0
edgeshield_request_duration_seconds_bucket{cache="hit",le="+Inf",route="*/"} 100.0
"""


def test_offload_from_two_scrapes_leaves_out_the_operations_endpoints() -> None:
    before = metrics.parse(METRICS_BEFORE, taken_at=100.0)
    after = metrics.parse(METRICS_AFTER, taken_at=110.0)
    off = metrics.offload("whole run", before, after)
    assert off.seconds == 10.0
    assert off.client_requests == 90 + 20 + 5  # route "-" (/metrics itself) left out
    assert off.hits == 90
    assert off.client_bytes == 10_000
    assert off.origin_bytes == 2000
    assert off.origin_requests == 20
    assert off.byte_ratio == pytest.approx(0.2)
    assert off.byte_offload == pytest.approx(0.8)
    assert off.request_offload == pytest.approx(1 - 20 / 115)
    assert off.hit_ratio == pytest.approx(90 / 115)
    changed = metrics.deltas(before, after, ["edgeshield_group_failovers"])
    assert changed == {
        ("edgeshield_group_failovers_total", (("group", "g"), ("reason", "connect"))): 2.0
    }


def test_offload_counts_from_zero_after_a_restart_and_is_nan_without_traffic() -> None:
    before = metrics.parse(METRICS_AFTER)
    after = metrics.parse(METRICS_BEFORE)  # counters went down: the proxy restarted
    assert metrics.offload("w", before, after).client_bytes == 1000
    empty = metrics.offload("w", metrics.parse(""), metrics.parse(""))
    assert math.isnan(empty.byte_offload) and math.isnan(empty.request_offload)


def test_metrics_parser_reads_escaped_labels_and_skips_garbage() -> None:
    sample = metrics.parse(
        'a_total{x="q\\"uote",y="1"} 3\nnot a metric line\nb_total 2.5e+03\nc_total{} NaN\n'
    )
    assert sample.sum("a", x='q\\"uote') == 3
    assert sample.sum("b") == 2500
    assert math.isnan(sample.sum("c"))


def test_manifest_parsing() -> None:
    objects = parse_manifest(
        {
            "format": "edgeshield-loadtest-objects",
            "root": "/does/not/exist",
            "objects": [
                {"path": "images/a/1.jpg", "type": "image", "bytes": 10, "tags": ["a"]},
                {"path": "/video/v.mp4", "type": "video", "bytes": 99, "duration": 2},
            ],
        }
    )
    assert [o.path for o in objects.images] == ["/images/a/1.jpg"]
    assert objects.videos[0].bytes == 99 and objects.videos[0].duration == 2.0
    assert objects.root is None  # not on this machine: no byte comparison
    assert objects.albums == ("/images/a/",)
    assert objects.tags == ("a",)
    assert parse_manifest([{"path": "/x.png", "type": "image"}]).images[0].bytes is None
    bad_manifests: tuple[object, ...] = (
        {"objects": [{"type": "image"}]},
        {"objects": []},
        {"format": "x", "objects": []},
        3,
    )
    for bad in bad_manifests:
        with pytest.raises(ManifestError):
            parse_manifest(bad)


def test_zipf_prefers_low_ranks() -> None:
    items = [MediaObject(f"/{i}.jpg", "image") for i in range(50)]
    zipf = Zipf(items, 1.0)
    rng = random.Random(3)
    counts = Counter(zipf.pick(rng).path for _ in range(20_000))
    # P(rank 1) / P(rank 2) = 2 and rank 1 holds 1/H(50) = 22 % of the picks.
    assert counts["/0.jpg"] / counts["/1.jpg"] == pytest.approx(2.0, rel=0.15)
    assert counts["/0.jpg"] / 20_000 == pytest.approx(1 / sum(1 / k for k in range(1, 51)), rel=0.1)
    assert len(counts) > 40


def test_options_from_parsed_values() -> None:
    opts = Options.from_parsed(
        Namespace(
            objects="m.json",
            warmup=-3,
            path_prefix="failover/",
            think_time="2,1",
            seeks="3",
            browsers="Chrome, curl",
            devices="all",
            admin_url="http://127.0.0.1:9/",
            metrics="off",
        )
    )
    assert opts.objects == "m.json"
    assert opts.warmup == 0.0
    assert opts.path_prefix == "/failover"
    assert opts.think_time == (1.0, 2.0)
    assert opts.seeks == (3, 3)
    assert opts.browsers == ("chrome", "curl") and opts.devices == ()
    assert opts.admin_base("http://proxy") == "http://127.0.0.1:9"
    assert Options().admin_base("http://proxy/") == "http://proxy"
    assert opts.metrics is False
    assert Options.from_parsed(Namespace(think_time="x,y")).think_time == (1.0, 3.0)
