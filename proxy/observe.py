"""Recording a finished request: metrics and one JSON access-log line, for every request
(proxied, rejected before routing, and the operations endpoints alike)."""

from __future__ import annotations

import time
from typing import Any

import orjson

from proxy.auth.redact import Redactor
from proxy.http.authority import BadAuthority, parse_authority
from proxy.serve.state import AppState

# Long targets are cut in the log: the line stays bounded, the start is what identifies.
MAX_LOGGED_TARGET = 2048


def raw_target(scope: dict[str, Any], redact: Redactor) -> str:
    """The request target as the client sent it (not the normalised cache-key form),
    token values redacted: the log must not hand a reader a replayable URL."""
    path: bytes = scope.get("raw_path") or scope.get("path", "").encode()
    query: bytes = scope.get("query_string", b"")
    target = redact.target((path + b"?" + query if query else path).decode("latin-1"))
    return target if len(target) <= MAX_LOGGED_TARGET else target[:MAX_LOGGED_TARGET] + "..."


def scope_host(scope: dict[str, Any]) -> str:
    """The host for the log of a request refused before parsing ("" when it named none
    that is valid: the line's reason says why)."""
    for name, value in scope.get("headers", ()):
        if name == b"host":
            try:
                return parse_authority(value.decode("latin-1")).host
            except BadAuthority:
                return ""
    return ""


def record(
    state: AppState,
    scope: dict[str, Any],
    *,
    host: str,
    status: int,
    outcome: str,
    route: str,
    origin: str | None,
    sent: int,
    started: float,
    now: float,
    reason: str = "",
    client: str | None = None,
    key: str | None = None,
) -> None:
    """`client`: the address trusted proxies vouch for (Request.client), when known;
    `key`: the cache key the request looked up (proxy/cache/keys.py), when it got that far."""
    method = scope.get("method", "")
    if method == "HEAD":
        sent = 0  # the server never sends a body for HEAD, whatever was passed to send
    duration = time.perf_counter() - started
    stats = state.stats
    stats.inc("edgeshield_requests", (route, str(status), outcome))
    stats.observe("edgeshield_request_duration_seconds", (route, outcome), duration)
    if sent:
        stats.inc("edgeshield_client_bytes", (route,), sent)
    state.top_objects.note(key, method, outcome)  # fast-path hits: Plan.hits
    log = state.access_log
    if log.enabled:
        line: dict[str, Any] = {
            "ts": now,
            "client": client if client is not None else _peer(scope),
            "method": method,
            "host": host,
            "path": raw_target(scope, state.guards.redact),
            "status": status,
            "cache": outcome,
            "route": route,
            "origin": origin,
            "bytes": sent,
            "ms": round(duration * 1000, 3),
        }
        if reason:
            line["reason"] = reason
        log.write(line)


def hit_fragment(
    scope: dict[str, Any],
    *,
    host: str,
    status: int,
    route: str,
    origin: str,
    sent: int,
    redact: Redactor,
) -> bytes:
    """The part of a fast-path hit's log line that is the same for every hit on one URL
    and entry: serialised once (proxy/fastpath.py memoises it), without the opening brace,
    so redacting its target costs nothing per hit."""
    line = {
        "method": "GET",
        "host": host,
        "path": raw_target(scope, redact),
        "status": status,
        "cache": "hit",
        "route": route,
        "origin": origin,
        "bytes": sent,
    }
    return orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE)[1:]


def record_hit(
    state: AppState,
    scope: dict[str, Any],
    *,
    labels: tuple[tuple[str, str, str], tuple[str, str], tuple[str]],
    fragment: bytes,
    sent: int,
    started: float,
    now: float,
    client: str | None = None,
) -> None:
    """record() for a fast-path GET hit: the same series and the same log fields, with
    the labels and the constant part of the line prepared once per URL."""
    duration = time.perf_counter() - started
    requests, durations, client_bytes = labels
    stats = state.stats
    stats.inc("edgeshield_requests", requests)
    stats.observe("edgeshield_request_duration_seconds", durations, duration)
    stats.inc("edgeshield_client_bytes", client_bytes, sent)
    log = state.access_log
    if log.enabled:
        head = b'{"ts":%.7f,"client":%b,"ms":%.3f,' % (
            now,
            orjson.dumps(client if client is not None else _peer(scope)),
            duration * 1000,
        )
        log.write_line(head + fragment)


def _peer(scope: dict[str, Any]) -> str:
    return str((scope.get("client") or ("",))[0])
