"""docs/deploy/grafana/edgeshield.json: every query names only metrics and labels that
edgeshield exposes (proxy/serve/metrics.py, and a running proxy's /metrics), or that issue 4 is
adding (COMING, listed here on purpose), so a typo cannot hide in a panel that would
just stay empty."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from proxy.serve.metrics import SPEC
from tests.support.proxy_server import REPO_ROOT, running_proxy

DASHBOARD = REPO_ROOT / "docs" / "deploy" / "grafana" / "edgeshield.json"
DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}

# Sample names (with their labels) that work in progress is adding, listed on purpose;
# once they are in proxy/serve/metrics.py they count as existing. Empty: nothing is pending.
COMING: dict[str, frozenset[str]] = {}
# Labels Prometheus adds to every scraped series (the dashboard's variables use them).
TARGET_LABELS = frozenset({"job", "instance"})
PROMQL_WORDS = frozenset(
    {
        "sum",
        "min",
        "max",
        "avg",
        "count",
        "rate",
        "increase",
        "histogram_quantile",
        "vector",
        "or",
        "and",
        "unless",
        "by",
        "without",
    }
)


def _sample_names(kind: str, name: str) -> list[str]:
    if kind == "counter":
        return [f"{name}_total"]
    if kind == "histogram":
        return [f"{name}_bucket", f"{name}_sum", f"{name}_count"]
    return [name]


def _existing() -> dict[str, frozenset[str]]:
    """Sample name -> its labels, as proxy/serve/metrics.py's collector renders them."""
    out: dict[str, frozenset[str]] = {}
    for name, (kind, _, labels) in SPEC.items():
        for sample in _sample_names(kind, name):
            extra = {"le"} if sample.endswith("_bucket") else set()
            out[sample] = frozenset(labels) | extra
    return out


def _dashboard() -> dict[str, Any]:
    data = json.loads(DASHBOARD.read_text())
    assert isinstance(data, dict)
    return data


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))  # a collapsed row holds its panels


def _queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    """(where, PromQL, legend) for every panel target and template variable."""
    for panel in _panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"], target.get("legendFormat", "")
    for variable in dashboard["templating"]["list"]:
        match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", variable["query"]["query"])
        assert match, variable["name"]
        # The label it lists must be one of the metric's labels (checked like a `by`).
        yield f"${variable['name']}", f"count by ({match[2]}) ({match[1]})", ""


def _parse(expr: str) -> tuple[set[str], set[str], set[str]]:
    """(metric names, label names used, labels kept by `by`) of one PromQL expression:
    string literals and range durations removed, selectors' matchers and grouping
    clauses read for their labels; the identifiers left over are functions, operators
    or metric names."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\[[^\]]*\]", "", text)
    labels: set[str] = set()
    for matchers in re.findall(r"\{([^}]*)\}", text):
        labels |= set(re.findall(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)", matchers))
    text = re.sub(r"\{[^}]*\}", " ", text)
    kept: set[str] = set()
    for grouping in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", text):
        kept |= {label.strip() for label in grouping.split(",") if label.strip()}
    labels |= kept
    text = re.sub(r"\b(?:by|without)\s*\([^)]*\)", " ", text)
    identifiers = set(re.findall(r"[A-Za-z_:][\w:]*", text))
    return identifiers - PROMQL_WORDS, labels, kept


def _referenced(dashboard: dict[str, Any]) -> set[str]:
    return {name for _, expr, _ in _queries(dashboard) for name in _parse(expr)[0]}


def test_every_query_names_known_metrics_and_labels() -> None:
    known = {**_existing(), **COMING}
    for where, expr, legend in _queries(_dashboard()):
        metrics, labels, kept = _parse(expr)
        assert metrics, f"{where}: no metric in {expr!r}"
        unknown = metrics - set(known)
        assert not unknown, f"{where}: unknown metric(s) {sorted(unknown)} in {expr!r}"
        allowed = TARGET_LABELS.union(*(known[m] for m in metrics))
        assert labels <= allowed, f"{where}: unknown label(s) {sorted(labels - allowed)}"
        shown = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", legend))
        assert shown <= kept, f"{where}: legend uses {sorted(shown - kept)}, lost by sum"


def test_dashboard_covers_the_issue_panels() -> None:
    referenced = _referenced(_dashboard())
    for needed in (
        "edgeshield_cache_tier_hits_total",  # hit ratio by tier
        "edgeshield_origin_bytes_total",  # offload
        "edgeshield_client_bytes_total",  # offload, bytes served
        "edgeshield_origin_up",  # origin health
        "edgeshield_origin_duration_seconds_bucket",  # origin latency
        "edgeshield_request_duration_seconds_bucket",  # client latency
        "edgeshield_purge_duration_seconds_bucket",  # purge latency
        "edgeshield_image_workers_busy",  # transform queue
    ):
        assert needed in referenced, needed


def test_dashboard_model_is_importable() -> None:
    dashboard = _dashboard()
    assert dashboard["schemaVersion"] >= 36 and dashboard["uid"] and dashboard["title"]
    assert dashboard["id"] is None  # Grafana assigns it on import
    (source,) = dashboard["__inputs"]
    assert (source["name"], source["type"], source["pluginId"]) == (
        "DS_PROMETHEUS",
        "datasource",
        "prometheus",
    )
    panels = list(_panels(dashboard["panels"]))
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    cells: dict[tuple[int, int], str] = {}
    for panel in panels:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        for y in range(pos["y"], pos["y"] + pos["h"]):
            for x in range(pos["x"], pos["x"] + pos["w"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel.get("description"), panel["title"]
        refs = [target["refId"] for target in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]
            expr = target["expr"]
            assert expr.count("(") == expr.count(")") and expr.count("{") == expr.count("}")
            # Every series selector is narrowed by the dashboard's variables.
            for selector in re.findall(r"edgeshield_\w+(\{[^}]*\})?", expr):
                assert 'job=~"$job"' in selector and 'instance=~"$instance"' in selector, expr
    for variable in dashboard["templating"]["list"]:
        assert variable["datasource"] == DATASOURCE


def test_existing_metrics_are_exposed_by_a_running_proxy(tmp_path: Path) -> None:
    media = tmp_path / "media"
    media.mkdir()
    (media / "a.txt").write_text("a")
    config = (
        '[server]\naccess_log = "off"\n'
        f'[origins.files]\nkind = "fs"\nroot = "{media}"\n'
        '[[routes]]\norigin = "files"\nimages = true\n'
    )
    with running_proxy(config) as proxy, httpx.Client(base_url=proxy.url) as client:
        assert client.get("/a.txt").status_code == 200
        text = client.get("/metrics").text
    exposed: set[str] = set()
    for family in text_string_to_metric_families(text):
        # Families without samples yet still announce their type; the samples follow it.
        exposed.update(_sample_names(family.type, family.name))
        exposed.update(sample.name for sample in family.samples)
    referenced = _referenced(_dashboard())
    existing = referenced & set(_existing())
    assert existing <= exposed, sorted(existing - exposed)
    # Everything else is announced as coming, and not exposed under another spelling.
    assert referenced - existing <= set(COMING)
