"""The proxy's own counters, read from its Prometheus /metrics before and after a run.

Origin offload is what a shield is for: of the bytes (and requests) clients got, how
much did the origins not have to serve. From the counter deltas between two scrapes:

    byte offload    = 1 - edgeshield_origin_bytes_total / edgeshield_client_bytes_total
    request offload = 1 - edgeshield_origin_requests_total / edgeshield_requests_total

Requests to the operations endpoints (route "-": /metrics itself, /healthz, /_admin/*)
are left out. The counters are the whole deployment's (every worker), so other traffic
during the run counts too.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import requests

OPS_ROUTE = "-"
_LINE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')

Series = tuple[str, tuple[tuple[str, str], ...]]


@dataclass(frozen=True)
class Sample:
    """One scrape: every series' value, and when it was taken (time.time())."""

    taken_at: float
    values: dict[Series, float] = field(default_factory=dict)

    def sum(self, name: str, **match: str) -> float:
        """Sum over the series of a counter (`name` with or without `_total`) whose
        labels equal `match`; a label value starting with "!" excludes that value."""
        names = {name, name + "_total"} if not name.endswith("_total") else {name}
        total = 0.0
        for (series, labels), value in self.values.items():
            if series in names and _matches(dict(labels), match):
                total += value
        return total


def _matches(labels: dict[str, str], match: dict[str, str]) -> bool:
    for key, want in match.items():
        have = labels.get(key, "")
        if want.startswith("!"):
            if have == want[1:]:
                return False
        elif have != want:
            return False
    return True


def parse(text: str, taken_at: float | None = None) -> Sample:
    """Prometheus text exposition format, the parts a counter delta needs."""
    values: dict[Series, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _LINE.match(line)
        if m is None:
            continue
        name, raw_labels, raw_value = m.groups()
        try:
            value = float(raw_value)
        except ValueError:
            continue
        labels = tuple(sorted(_LABEL.findall(raw_labels or "")))
        values[(name, labels)] = value
    return Sample(time.time() if taken_at is None else taken_at, values)


def scrape(url: str, token: str | None = None, timeout: float = 5.0) -> Sample:
    """GET the metrics page; raises requests.RequestException or ValueError."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = requests.get(url, headers=headers, timeout=timeout)
    if response.status_code != 200:
        raise ValueError(f"{url} answered {response.status_code}")
    return parse(response.text)


@dataclass(frozen=True)
class Offload:
    """Counter deltas over one window of the run, and the ratios derived from them."""

    window: str
    source: str  # "metrics" or "cache-status (estimate)"
    seconds: float
    client_requests: float
    origin_requests: float
    client_bytes: float
    origin_bytes: float
    hits: float | None = None

    @property
    def byte_ratio(self) -> float:
        """Origin bytes per client byte (the brief's 'origin / client')."""
        return self.origin_bytes / self.client_bytes if self.client_bytes else math.nan

    @property
    def byte_offload(self) -> float:
        return 1 - self.byte_ratio if self.client_bytes else math.nan

    @property
    def request_offload(self) -> float:
        if not self.client_requests:
            return math.nan
        return 1 - self.origin_requests / self.client_requests

    @property
    def hit_ratio(self) -> float:
        if self.hits is None or not self.client_requests:
            return math.nan
        return self.hits / self.client_requests


def offload(window: str, start: Sample, end: Sample) -> Offload:
    def delta(name: str, **match: str) -> float:
        # A counter that went down means the proxy restarted in between: count from 0.
        before, after = start.sum(name, **match), end.sum(name, **match)
        return after - before if after >= before else after

    return Offload(
        window=window,
        source="metrics",
        seconds=end.taken_at - start.taken_at,
        client_requests=delta("edgeshield_requests", route="!" + OPS_ROUTE),
        origin_requests=delta("edgeshield_origin_requests"),
        client_bytes=delta("edgeshield_client_bytes", route="!" + OPS_ROUTE),
        origin_bytes=delta("edgeshield_origin_bytes"),
        hits=delta("edgeshield_requests", route="!" + OPS_ROUTE, cache="hit"),
    )


def deltas(start: Sample, end: Sample, names: Iterable[str]) -> dict[Series, float]:
    """Per-series deltas of the given counters (for failover and origin outcomes)."""
    wanted = set(names) | {n + "_total" for n in names}
    out: dict[Series, float] = {}
    for key, value in end.values.items():
        if key[0] in wanted:
            diff = value - start.values.get(key, 0.0)
            if diff:
                out[key] = diff
    return out
