"""The metric names the docs use are the ones a running edgeshield exposes, both ways:
every `edgeshield_*` name written in docs/ (and the README) is scraped from a real
`/metrics`, and every `edgeshield_*` family scraped is named somewhere in the docs."""

from __future__ import annotations

import re

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.origin_server import OriginServer
from tests.support.proxy_server import REPO_ROOT, proxy_config, running_proxy

DOCS = [*sorted((REPO_ROOT / "docs").rglob("*.md")), *sorted((REPO_ROOT / "docs").rglob("*.json"))]
DOCS.append(REPO_ROOT / "README.md")
# Names with the prefix that are not metrics, listed on purpose.
NOT_METRICS = {"edgeshield_token"}  # the native token's default cookie (docs/auth.md)
NAME = re.compile(r"edgeshield_[a-z0-9_]*\*?")
SUFFIXES = ("", "_total", "_bucket", "_sum", "_count")


def _written() -> dict[str, set[str]]:
    """Name (a trailing * for a prefix pattern) -> the files that use it."""
    names: dict[str, set[str]] = {}
    for path in DOCS:
        for name in NAME.findall(path.read_text()):
            if name not in NOT_METRICS:
                names.setdefault(name, set()).add(str(path.relative_to(REPO_ROOT)))
    return names


def _scraped(proxy_url: str) -> set[str]:
    text = httpx.get(proxy_url + "/metrics", timeout=10).text
    return {
        f.name for f in text_string_to_metric_families(text) if f.name.startswith("edgeshield_")
    }


def _matches(name: str, family: str) -> bool:
    if name.endswith("*"):
        return family.startswith(name[:-1])
    return any(name == family + suffix for suffix in SUFFIXES)


def test_docs_and_metrics_name_the_same_series(origin_server: OriginServer) -> None:
    written = _written()
    with running_proxy(proxy_config(origin_server.url)) as proxy:
        families = _scraped(proxy.url)
    assert len(families) > 20  # every family is rendered, with or without samples
    unknown = {
        n: sorted(f) for n, f in written.items() if not any(_matches(n, x) for x in families)
    }
    assert not unknown, f"named in the docs, not exposed: {unknown}"
    exact = [n for n in written if not n.endswith("*")]
    undocumented = sorted(f for f in families if not any(_matches(n, f) for n in exact))
    assert not undocumented, f"exposed, named nowhere in the docs: {undocumented}"
