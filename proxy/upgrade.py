"""WebSocket upgrades: refused with a 501 and an access-log record.

edgeshield caches and relays HTTP; it does not tunnel WebSocket connections. uvicorn
hands an `Upgrade: websocket` request to the app as an ASGI "websocket" scope (its
websockets library parses the handshake; a malformed one it answers 400 itself). An app
that returned without answering it made uvicorn send a 500 and log an error. This answers
through the ASGI "websocket.http.response" extension (granian offers it, and uvicorn
with both of its WebSocket implementations), so the client gets an ordinary 501 (uvicorn
then closes the connection, granian keeps it for further requests); without the
extension, closing before accept makes the server send a 403. The server log gets one
line, edgeshield's "refused websocket upgrade".
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from proxy.auth.access import forwarding
from proxy.deliver import send_error
from proxy.observe import record, scope_host
from proxy.serve.state import AppState

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

REASON = "websocket not supported"


async def refuse_websocket(
    state: AppState | None, scope: dict[str, Any], receive: Receive, send: Send
) -> None:
    started = time.perf_counter()
    message = await receive()
    if message["type"] != "websocket.connect":
        return  # the client already left
    if "websocket.http.response" not in (scope.get("extensions") or {}):
        status, sent = 403, 0
        await send({"type": "websocket.close", "code": 1000})
    else:
        status, sent = 501, await send_error(_as_websocket_response(send), 501, REASON)
    if state is None:
        return  # still starting: nothing to record into
    # One line on either engine (uvicorn's own is filtered: proxy/serve/logs.py); the
    # path only, a query may carry a token.
    state.log.info("refused websocket upgrade: %s", scope["path"])
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
    peer = str((scope.get("client") or ("",))[0])
    record(
        state,
        {**scope, "method": "GET"},  # the handshake is a GET (RFC 6455 4.1)
        host=scope_host(scope),
        status=status,
        outcome="deny",
        route="-",
        origin=None,
        sent=sent,
        started=started,
        now=time.time(),
        reason=REASON,
        client=forwarding(peer, headers, state.guards.trusted).client,
    )


def _as_websocket_response(send: Send) -> Send:
    """`send` taking http.response.* messages, sent as websocket.http.response.*."""

    async def websocket_send(message: dict[str, Any]) -> None:
        await send({**message, "type": "websocket." + message["type"]})

    return websocket_send
