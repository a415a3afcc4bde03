"""The `[admin] port` listener, opened by each worker process beside the main one.

Neither engine serves two addresses from one app the same way (granian binds one), so
every worker opens the admin port itself, with SO_REUSEPORT so that several workers
share it, and serves it with uvicorn's HTTP protocol on the worker's own event loop. The
app is the same EdgeShield; it tells the two listeners apart by the local port of each
request (proxy/ops/access.py on_admin_listener). Admin traffic is light: what matters
is that it is apart from the public port, not how fast it is.
"""

from __future__ import annotations

import socket
from typing import Any

from config.admin import AdminSettings


class AdminListenerError(RuntimeError):
    pass


class AdminListener:
    def __init__(self, server: Any, sock: socket.socket) -> None:
        self._server = server
        self._sock = sock

    async def close(self) -> None:
        await self._server.shutdown(sockets=[self._sock])
        self._sock.close()


async def open_admin_listener(
    app: Any, admin: AdminSettings, default_host: str, log_level: str
) -> AdminListener:
    assert admin.port is not None
    return await open_side_listener(app, admin.host or default_host, admin.port, "admin", log_level)


async def open_side_listener(
    app: Any, host: str, port: int, what: str, log_level: str
) -> AdminListener:
    """A listener served beside the main one in this worker (admin, https redirect)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise AdminListenerError(
            f"cannot listen on the {what} address {host}:{port}: {exc.strerror}"
        ) from None
    sock.listen(128)
    return await serve_socket(app, sock, log_level)


async def serve_socket(app: Any, sock: socket.socket, log_level: str) -> AdminListener:
    """Serve `app` on a bound, listening socket with uvicorn on this worker's loop."""
    import uvicorn

    from proxy.serve.server_protocol import AuthorityKeepingProtocol

    config = uvicorn.Config(
        app,
        lifespan="off",  # the worker's engine ran the app's lifespan already
        http=AuthorityKeepingProtocol,
        ws="none",
        proxy_headers=False,
        access_log=False,
        server_header=False,
        date_header=False,
        log_level=log_level,
    )
    config.load()
    server = uvicorn.Server(config)
    # startup/shutdown, not serve(): serve() would take over the worker's signals.
    server.lifespan = config.lifespan_class(config)
    await server.startup(sockets=[sock])
    return AdminListener(server, sock)
