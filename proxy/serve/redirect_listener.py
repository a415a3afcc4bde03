"""The `[server.tls] redirect_port` listener: every request gets 308 to the same URL over
HTTPS, nothing else is served on it.

Each worker opens it beside the main one, as it opens the admin listener
(proxy/serve/admin_listener.py: SO_REUSEPORT, uvicorn's HTTP protocol on the worker's own
loop), so it works the same on either engine. The Host is validated as the main listener
validates it (proxy/http/authority.py): a Host that is not a plain host[:port] gets 400,
never a redirect to somewhere it spells.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from proxy.http.authority import BadAuthority, parse_authority
from proxy.serve.admin_listener import AdminListener, open_side_listener

Receive = Any
Send = Any
# RFC 3986 path and query characters kept as they are (letters and digits always are).
_SAFE = "/?:@!$&'()*+,;=%-._~"


def https_location(host: str, target: bytes, tls_port: int) -> str:
    """`https://host[:tls_port]<target>`: the request's host without its port, the HTTPS
    port unless it is 443, and the request target (path and query) as it was sent.
    Raises BadAuthority for a Host that is not a valid authority."""
    authority = parse_authority(host)
    port = "" if tls_port == 443 else f":{tls_port}"
    # Whatever a lenient parser let through leaves percent-encoded, never as raw bytes.
    path = quote(target, safe=_SAFE) if target.startswith(b"/") else "/"
    return f"https://{authority.host}{port}{path}"


class RedirectApp:
    """The ASGI app of the redirect listener."""

    def __init__(self, tls_port: int) -> None:
        self.tls_port = tls_port

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        hosts = [value for name, value in scope["headers"] if name == b"host"]
        target = scope.get("raw_path") or scope["path"].encode()
        if scope.get("query_string"):
            target += b"?" + scope["query_string"]
        try:
            if len(hosts) != 1:
                raise BadAuthority("one Host field required")
            location = https_location(hosts[0].decode("latin-1"), target, self.tls_port)
        except BadAuthority as exc:
            await _answer(send, 400, [], f"bad request: {exc.reason}\n".encode())
            return
        await _answer(send, 308, [(b"location", location.encode())], b"")


async def _answer(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                *headers,
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def open_redirect_listener(
    host: str, port: int, tls_port: int, log_level: str
) -> AdminListener:
    return await open_side_listener(RedirectApp(tls_port), host, port, "redirect", log_level)
