"""The HTTP server engines `edgeshield serve` runs the ASGI app on.

granian (Rust, hyper) is the default: measured on a 2-core machine it answers the same
raw-ASGI app at about 1.4x uvicorn's rate, and it brings HTTP/2, TLS, a header-read
timeout and a bound on the requests each worker takes at once. uvicorn (uvloop +
httptools), the design card's server, stays supported with `--server uvicorn`.

Both start worker processes that import `proxy.serve.app:app_from_environment`, which
loads the configuration handed over in the environment (config/handoff.py), so the app,
its lifespan and its admin listener (proxy/serve/admin_listener.py) are the same on
both. What each engine can and cannot enforce is listed in docs/deployment.md.
"""

from __future__ import annotations

import multiprocessing
from typing import Any

from config.schema import Settings

TARGET = "proxy.serve.app:app_from_environment"
# Seconds a worker finishes in-flight requests after SIGTERM before it is stopped.
DRAIN_SECONDS = 5


def run_granian(settings: Settings) -> None:
    from granian.constants import HTTPModes, Interfaces, Loops
    from granian.http import HTTP1Settings, HTTP2Settings
    from granian.server import Server

    # Workers start fresh interpreters, not forks: the parent has libvips loaded (the
    # config checks import it), and its threads do not survive a fork.
    multiprocessing.set_start_method("spawn", force=True)
    server = settings.server
    Server(
        TARGET,
        factory=True,
        address=server.host,
        port=server.port,
        interface=Interfaces.ASGI,
        workers=server.workers,
        loop=Loops.uvloop,
        http=HTTPModes.auto,  # HTTP/1.1, and HTTP/2 by prior knowledge or ALPN
        websockets=True,  # upgrades reach the app, which answers 501 (proxy/upgrade.py)
        backpressure=server.max_requests_in_flight,
        http1_settings=HTTP1Settings(
            # hyper also applies it while a kept-alive connection waits for its next
            # request, so it is the idle timeout too.
            header_read_timeout=int(server.header_read_timeout * 1000),
            keep_alive=True,
            max_buffer_size=max(8192, server.max_header_bytes + server.max_url_bytes),
        ),
        http2_settings=HTTP2Settings(max_headers_size=server.max_header_bytes),
        log_enabled=True,
        log_level=_granian_level(server.log_level),
        log_access=False,  # edgeshield writes its own JSON access log
        # After SIGTERM the app drains, cuts off and logs what is left (app.py _drain).
        workers_kill_timeout=DRAIN_SECONDS + 3,
        respawn_failed_workers=True,
        **_granian_tls(settings),
    ).serve()


def _granian_level(level: str) -> Any:
    from granian.log import LogLevels

    return LogLevels(level)


def _granian_tls(settings: Settings) -> dict[str, Any]:
    """Certificate options; none yet on plain HTTP."""
    return {}


def run_uvicorn(settings: Settings) -> None:
    import uvicorn

    from proxy.serve.server_protocol import AuthorityKeepingProtocol

    server = settings.server
    uvicorn.run(
        TARGET,
        factory=True,
        host=server.host,
        port=server.port,
        workers=server.workers,
        loop="uvloop",
        http=AuthorityKeepingProtocol,  # httptools, keeping absolute-form authorities
        lifespan="on",
        # The client address is the peer unless it is in [server] trusted_proxies
        # (proxy/auth/access.py); uvicorn's own handling would believe X-Forwarded-For
        # from 127.0.0.1 and rewrite the peer before edgeshield sees it.
        proxy_headers=False,
        # WebSocket upgrades reach the app, which refuses them with a 501
        # (proxy/upgrade.py); with ws="none" uvicorn would stop reading the connection.
        ws="websockets-sansio",
        access_log=False,  # edgeshield writes its own JSON access log
        server_header=False,
        date_header=False,  # Date comes from the stored response (RFC 9110 6.6.1)
        log_level=server.log_level,
        timeout_graceful_shutdown=DRAIN_SECONDS,
        timeout_keep_alive=int(server.header_read_timeout),
        limit_concurrency=server.max_requests_in_flight,
        h11_max_incomplete_event_size=server.max_header_bytes + server.max_url_bytes,
    )


ENGINES = {"granian": run_granian, "uvicorn": run_uvicorn}
