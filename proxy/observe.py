"""Recording a finished request: metrics and one JSON access-log line, for every request
(proxied, rejected before routing, and the operations endpoints alike).

`[server] access_log_fields` adds fields to every line (each present, null when not
known): `user_agent`, `referer` (token values redacted), `request_id` and `origin_ms`
(the origin's time to its response head, as the response's Server-Timing says)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from proxy.auth.redact import Redactor
from proxy.deliver import send_error
from proxy.exchange import Answer, Outcome
from proxy.http.authority import BadAuthority, parse_authority
from proxy.http.forwarding import REQUEST_ID
from proxy.serve.state import AppState

Send = Callable[[dict[str, Any]], Awaitable[None]]

# Long targets are cut in the log: the line stays bounded, the start is what identifies.
MAX_LOGGED_TARGET = 2048
# User-Agent and Referer are cut shorter: they are context, not the request.
MAX_LOGGED_FIELD = 512
_REQUEST_ID = REQUEST_ID.encode()
_ORIGIN_TIMING = b"origin;dur="


class Tracked:
    """The send of one proxied request, keeping what the access log needs of what went
    out: the status, the body bytes the server took (so a response cut off by a client
    that left, an origin that broke off or a shutdown logs what it really sent), and the
    origin time its Server-Timing states. It puts this request's id on error answers
    (status >= 400), edgeshield's own and relayed ones alike."""

    __slots__ = ("origin_ms", "request_id", "send", "sent", "status", "timing")

    def __init__(self, send: Send, *, timing: bool = False) -> None:
        self.send = send
        self.status = 0
        self.sent = 0
        self.request_id: str | None = None
        self.origin_ms: float | None = None
        self.timing = timing  # read Server-Timing only when the log shows it

    async def __call__(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            if self.timing:
                self.origin_ms = origin_time(message["headers"])
            if self.status >= 400 and self.request_id is not None:
                message = _with_request_id(message, self.request_id)
            await self.send(message)
        else:
            await self.send(message)
            self.sent += len(message.get("body", b""))

    async def cut_off(self) -> Answer:
        """The answer to log for a request the server cancelled (a shutdown that outwaited
        its grace period): what went out so far, or a 503 if its head had not."""
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()  # taken: the request ends here, with its line
        if not self.status:
            with contextlib.suppress(Exception):  # the connection may be gone already
                async with asyncio.timeout(1):
                    await send_error(self, 503, "shutting down", [(b"connection", b"close")])
        return Answer(self.status or 503, self.sent, Outcome.ERROR, "cut off by shutdown")


def _with_request_id(message: dict[str, Any], request_id: str) -> dict[str, Any]:
    """The head with this request's X-Request-Id, in place of any it had (an entry
    stored before origins' ids were dropped names the request that fetched it). A new
    list: heads are shared by the requests that collapsed on one fetch."""
    headers = [(name, value) for name, value in message["headers"] if name != _REQUEST_ID]
    return {**message, "headers": [*headers, (_REQUEST_ID, request_id.encode())]}


def origin_time(headers: list[tuple[bytes, bytes]]) -> float | None:
    """The `origin;dur=` of a Server-Timing field, in milliseconds (None without one)."""
    for name, value in headers:
        if name == b"server-timing":
            for metric in value.split(b","):
                metric = metric.strip()
                if metric.startswith(_ORIGIN_TIMING):
                    try:
                        return float(metric[len(_ORIGIN_TIMING) :])
                    except ValueError:
                        return None
    return None


def request_id_of(state: AppState, scope: dict[str, Any]) -> str:
    """The request id of a request known only by its scope (refused before parsing, the
    operations endpoints, fast-path hits): the one a trusted proxy sent, else a new one."""
    trusted = state.guards.trusted
    sent = None
    if trusted.networks:  # else whatever was sent is not kept: no need to look
        for name, value in scope.get("headers", ()):
            if name == _REQUEST_ID:
                sent = value.decode("latin-1")
    return state.request_ids.pick(sent, _peer(scope), trusted)


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
    request_id: str | None = None,
    origin_ms: float | None = None,
) -> None:
    """`client`: the address trusted proxies vouch for (Request.client), when known;
    `key`: the cache key the request looked up (proxy/cache/keys.py), when it got that far;
    `request_id`, `origin_ms`: for the optional fields (a new id when none is given)."""
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
        fields = state.settings.server.access_log_fields
        if fields:
            line.update(_extra_fields(state, scope, fields, request_id, origin_ms))
        log.write(line)


def _extra_fields(
    state: AppState,
    scope: dict[str, Any],
    fields: tuple[str, ...],
    request_id: str | None,
    origin_ms: float | None,
) -> dict[str, Any]:
    """The `[server] access_log_fields` of one line, in the order configured."""
    agent = referer = None
    if "user_agent" in fields or "referer" in fields:
        for name, value in scope.get("headers", ()):
            if name == b"user-agent":
                agent = _bounded(value.decode("latin-1"))
            elif name == b"referer":
                referer = _bounded(state.guards.redact.target(value.decode("latin-1")))
    known = {"user_agent": agent, "referer": referer, "origin_ms": origin_ms}
    if "request_id" in fields:
        known["request_id"] = request_id or request_id_of(state, scope)
    return {name: known[name] for name in fields}


def _bounded(text: str) -> str:
    return text if len(text) <= MAX_LOGGED_FIELD else text[:MAX_LOGGED_FIELD] + "..."


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
        fields = state.settings.server.access_log_fields
        if fields:  # off by default: nothing more per hit unless configured
            head += orjson.dumps(_extra_fields(state, scope, fields, None, None))[1:-1] + b","
        log.write_line(head + fragment)


def _peer(scope: dict[str, Any]) -> str:
    return str((scope.get("client") or ("",))[0])
