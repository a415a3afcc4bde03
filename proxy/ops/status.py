"""`GET /_admin/status.json`: what the admin page (`proxy/ops/page.py`) shows; and
`GET /_admin/origins`, the router's own snapshot.

Everything is read from state the proxy keeps anyway (the `Stats` counters, the router's
snapshot, the tiers' own stats, `recent_purges`, the top-objects table), when the page
asks: nothing here runs per request. The numbers are this process's: with
`--workers N`, each worker answers for itself (`pid` says which one answered).

Hit ratio, as Varnish and Fastly count it: requests answered from a stored copy
(`hit`, `stale`) over those that looked one up (`hit`, `stale`, `miss`, `collapsed`). A
collapsed request waited on another request's origin fetch, so it counts as a miss here;
its saving shows in the offload (origin bytes over client bytes) instead. `pass`,
`deny`, `error`, `steer` and the operations endpoints are not lookups."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from proxy.auth.redact import Redactor
from proxy.ops.responses import answer

if TYPE_CHECKING:
    from proxy.fastpath import HitFastPath
    from proxy.serve.state import AppState

HIT_OUTCOMES = frozenset({"hit", "stale"})
LOOKUP_OUTCOMES = frozenset({"hit", "stale", "miss", "collapsed"})
TOP_OBJECTS = 20
# Requests that are not traffic: the operations endpoints (this page's own polling).
NOT_TRAFFIC = frozenset({"ops"})
NO_ROUTE = "-"


def status(
    state: AppState, now: float, fast: Iterator[tuple[str, int]] | None = None
) -> dict[str, Any]:
    """The page's data. `fast` yields the fast path's (cache key, hits) per plan."""
    redact = state.guards.redact  # no token in what the page shows (proxy/auth/redact.py)
    counters = state.stats.counters
    requests = counters["edgeshield_requests"]  # (route, status, cache)
    client_bytes = counters["edgeshield_client_bytes"]  # (route,)
    origin_bytes = counters["edgeshield_origin_bytes"]  # (origin,)

    outcomes: dict[str, float] = {}
    routes: dict[str, dict[str, float]] = {}
    for (route, _status, outcome), n in requests.items():
        if outcome in NOT_TRAFFIC:
            continue
        outcomes[outcome] = outcomes.get(outcome, 0) + n
        if route != NO_ROUTE:
            row = routes.setdefault(route, {"requests": 0, "hits": 0, "lookups": 0})
            row["requests"] += n
            if outcome in LOOKUP_OUTCOMES:
                row["lookups"] += n
                if outcome in HIT_OUTCOMES:
                    row["hits"] += n

    route_rows = []
    for route in [r.name for r in state.routes.routes]:  # configuration order
        row = routes.get(route, {"requests": 0, "hits": 0, "lookups": 0})
        route_rows.append(
            {
                "route": route,
                "requests": row["requests"],
                "hits": row["hits"],
                "lookups": row["lookups"],
                "hit_ratio": _ratio(row["hits"], row["lookups"]),
                "client_bytes": client_bytes.get((route,), 0),
            }
        )
    hits = sum(n for o, n in outcomes.items() if o in HIT_OUTCOMES)
    lookups = sum(n for o, n in outcomes.items() if o in LOOKUP_OUTCOMES)
    # Content bytes only: route "-" is error pages and the operations endpoints.
    served = sum(n for (route,), n in client_bytes.items() if route != NO_ROUTE)
    fetched = sum(origin_bytes.values())

    return {
        "generated": now,
        "pid": os.getpid(),
        "workers": state.settings.server.workers,
        "ready": state.ready,
        "requests": sum(outcomes.values()),
        "outcomes": dict(sorted(outcomes.items())),
        "hit_ratio": _ratio(hits, lookups),
        "hits": hits,
        "lookups": lookups,
        "routes": route_rows,
        "bytes": {
            "client": served,
            "origin": fetched,
            # 1 - origin/client: the share of bytes served that the origins did not send.
            "offload": 1 - fetched / served if served else None,
        },
        "origins": _origins(state),
        "tiers": _tiers(state),
        "top_objects": [
            {"object": key, "requests": n}
            for key, n in state.top_objects.top(TOP_OBJECTS, fast or iter(()), redact.target)
        ],
        "top_objects_pruned": state.top_objects.pruned,
        "recent_purges": [_purge(p, redact) for p in reversed(state.recent_purges)],  # newest first
    }


def _purge(purge: dict[str, Any], redact: Redactor) -> dict[str, Any]:
    """A recent purge as shown: its prefix URLs redacted like every other target."""
    shown = dict(purge)
    prefixes = shown.get("prefixes")
    if isinstance(prefixes, list):
        shown["prefixes"] = [redact.target(p) if isinstance(p, str) else p for p in prefixes]
    return shown


def _ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def _origins(state: AppState) -> list[dict[str, Any]]:
    snap = state.router.snapshot()
    counters = state.stats.counters
    by_origin: dict[str, dict[str, float]] = {}
    for (origin, outcome), n in counters["edgeshield_origin_requests"].items():
        row = by_origin.setdefault(origin, {})
        row[outcome] = row.get(outcome, 0) + n
    member_of: dict[str, list[dict[str, Any]]] = {}
    for group, gsnap in snap["groups"].items():
        for member in gsnap["members"]:
            member_of.setdefault(member["origin"], []).append(
                {
                    "group": group,
                    "implicit": gsnap["implicit"],
                    "passive": member["passive"],
                    "ejected_for_s": member["ejected_for_s"],
                    "ejections": member["ejections"],
                }
            )
    rows = []
    for name, health in snap["origins"].items():
        spec = state.settings.origins.get(name)
        groups = member_of.get(name, [])
        probe = health.get("probe")
        latency = health.get("latency") or {}
        rows.append(
            {
                "name": name,
                "kind": spec.kind if spec is not None else None,
                "state": health["state"],
                # Ejected by passive outlier detection in some group (it still probes up).
                "ejected": any(g["passive"] == "ejected" for g in groups),
                "ejections": sum(g["ejections"] for g in groups),
                "groups": groups,
                "ewma_ms": latency.get("ewma_ms"),
                "p95_ms": latency.get("p95_ms"),
                "inflight": health.get("inflight", 0),
                "probe": probe,
                "requests": by_origin.get(name, {}),
                "bytes": counters["edgeshield_origin_bytes"].get((name,), 0),
            }
        )
    return rows


def _tiers(state: AppState) -> list[dict[str, Any]]:
    memory = state.cache.memory.stats()
    rows: list[dict[str, Any]] = [{"name": "memory", **memory}]
    for tier in state.cache.lower:
        rows.append({"name": tier.name, **tier.stats()})
    return rows


def fast_hits(fast: HitFastPath | None) -> Iterator[tuple[str, int]]:
    """(cache key, hits) of every fast-path plan (read when the page asks)."""
    if fast is None:
        return
    for plan in fast.plans.values():
        if plan is not None and plan.hits:
            yield plan.key, plan.hits


def response(state: AppState, fast: HitFastPath | None, now: float) -> tuple[int, bytes, bytes]:
    """(status, body, content type) of status.json."""
    body = orjson.dumps(
        status(state, now, fast_hits(fast)),
        # recent_purges are dicts other code fills: tolerate whatever they hold.
        option=orjson.OPT_NON_STR_KEYS,
        default=str,
    )
    return 200, body, b"application/json"


async def status_json(state: AppState, fast: HitFastPath, request: Request) -> Response:
    code, body, content_type = response(state, fast, time.time())
    return answer(request, body, content_type, code)


async def origins(state: AppState, request: Request) -> Response:
    return answer(request, orjson.dumps(state.router.snapshot()), b"application/json")
