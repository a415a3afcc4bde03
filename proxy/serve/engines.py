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

import logging
import math
import multiprocessing
import resource
import sys
from typing import Any

from config.schema import ServerSettings, Settings
from config.tls import TlsSettings
from proxy.serve.tls import CertStage, stage_certificates

TARGET = "proxy.serve.app:app_from_environment"
# File descriptors each worker keeps out of reach of client connections.
RESERVED_FDS = 1024
# TLS 1.2 suites for uvicorn's OpenSSL: forward secrecy and AEAD only (the TLS 1.3 ones
# all are).
UVICORN_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"
# Seconds an HTTP/2 client has to answer a PING (hyper's default). Generous: the answer
# comes after the client has read everything sent before the PING.
H2_PING_ACK_SECONDS = 20


def run_granian(settings: Settings) -> None:
    from granian.constants import Interfaces, Loops
    from granian.http import HTTP1Settings, HTTP2Settings
    from granian.server import Server

    # Workers are forks (they start in a fraction of a second, sharing what the parent
    # imported) unless the parent has libvips loaded: its threads do not survive a fork,
    # and the first transform would hang. The config checks no longer load it
    # (transforms/image/__init__.py); a fresh interpreter per worker is the fallback.
    multiprocessing.set_start_method("spawn" if "pyvips" in sys.modules else "fork", force=True)
    server = settings.server
    stage = stage_certificates(server.tls)  # None on plain HTTP (proxy/serve/tls.py)
    engine = Server(
        TARGET,
        factory=True,
        address=server.host,
        port=server.port,
        interface=Interfaces.ASGI,
        workers=server.workers,
        # granian's own runtime and task defaults: its Rust tasks cost ~4 % less per
        # small hit but lose the drain's log lines; the rest gained nothing (benchmarks.md).
        loop=Loops.uvloop,
        http=_granian_http_mode(server),
        websockets=True,  # upgrades reach the app, which answers 501 (proxy/upgrade.py)
        # A permit per accepted connection, held until it closes: past the cap, new
        # connections wait in the listen backlog, unaccepted.
        backpressure=connection_cap(server.max_connections),
        http1_settings=HTTP1Settings(
            # hyper also applies it while a kept-alive connection waits for its next
            # request, so it is the idle timeout too.
            header_read_timeout=int(server.header_read_timeout * 1000),
            keep_alive=True,
            max_buffer_size=max(8192, server.max_header_bytes + server.max_url_bytes),
        ),
        http2_settings=HTTP2Settings(
            max_headers_size=server.max_header_bytes,
            # A PING after header_read_timeout with nothing read, and a close when it is
            # not answered: a dead peer, or a client that sent the preface and went
            # silent, no longer holds its connection (and a permit) forever.
            keep_alive_interval=int(server.header_read_timeout * 1000),
            keep_alive_timeout=H2_PING_ACK_SECONDS,
        ),
        log_enabled=True,
        log_level=_granian_level(server.log_level),
        log_access=False,  # edgeshield writes its own JSON access log
        # After SIGTERM the app drains, cuts off and logs what is left (app.py _drain).
        workers_kill_timeout=math.ceil(server.drain_seconds) + 3,
        respawn_failed_workers=True,
        **_granian_tls(stage),
    )
    if stage is not None:
        stage.attach(engine)  # the certificate reloads on SIGHUP or a change of its files
        _watch_descriptors()
    engine.serve()


def _watch_descriptors() -> None:
    """A TLS listener's handshakes can use up a worker's descriptors for good: reload it
    then (fd_watch.py). The limit is the one connection_cap set, which workers inherit."""
    from proxy.serve import fd_watch

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY:
        fd_watch.start(soft)


def _granian_http_mode(server: ServerSettings) -> Any:
    """`auto` tells HTTP/2 from HTTP/1.1 by the first bytes, TLS or not (whatever ALPN
    chose), and waits for them with no timeout, so a client that sends nothing holds its
    connection until it leaves. HTTP/1.1 alone, where header_read_timeout closes such a
    connection, unless HTTP/2 is asked for: by prior knowledge on a plain listener, by
    ALPN (the default) on TLS."""
    from granian.constants import HTTPModes

    tls = server.tls
    http2 = tls.http2 if tls is not None else server.http2_cleartext
    return HTTPModes.auto if http2 else HTTPModes.http1


def _granian_level(level: str) -> Any:
    from granian.log import LogLevels

    return LogLevels(level)


def _granian_tls(stage: CertStage | None) -> dict[str, Any]:
    """HTTPS from the staged certificate (proxy/serve/tls.py), TLS 1.2 or later
    (granian's own minimum, 1.3, shuts out older clients); ALPN offers h2 and http/1.1
    in the `auto` HTTP mode, http/1.1 alone in `http1`. rustls has no weak cipher suites
    to turn off. The handshake has 10 s (tls-listener's default, not configurable)."""
    if stage is None:
        return {}
    from granian.constants import SSLProtocols

    return {
        "ssl_cert": stage.cert,
        "ssl_key": stage.key,
        "ssl_protocol_min": SSLProtocols.tls12,
    }


def _uvicorn_tls(tls: TlsSettings | None) -> dict[str, Any]:
    """HTTPS on uvicorn: the configured files, read once at start; HTTP/1.1 only."""
    if tls is None:
        return {}
    password = tls.key_password
    return {
        "ssl_certfile": str(tls.cert),
        "ssl_keyfile": str(tls.key),
        "ssl_keyfile_password": password.get_secret_value() if password else None,
        "ssl_ciphers": UVICORN_CIPHERS,
    }


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
        timeout_graceful_shutdown=math.ceil(server.drain_seconds),
        # Whole seconds; server_protocol.py also applies it to reading a request's head.
        timeout_keep_alive=math.ceil(server.header_read_timeout),
        # Counted per connection and per request, the asking one included; past it
        # uvicorn answers 503.
        limit_concurrency=connection_cap(server.max_connections) + 1,
        h11_max_incomplete_event_size=server.max_header_bytes + server.max_url_bytes,
        **_uvicorn_tls(server.tls),
    )


def connection_cap(requested: int) -> int:
    """The connections a worker takes at once: `requested`, lowered if needed so that
    RESERVED_FDS stay free under the open-file limit. The soft RLIMIT_NOFILE is raised to
    the hard one first, as nginx's worker_rlimit_nofile would; workers inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):  # a sandbox may refuse it: keep the soft limit
            pass
    cap = fitting_cap(requested, soft)
    if cap < requested:
        logging.getLogger("edgeshield").warning(
            "max_connections lowered from %d to %d to fit the open-file limit (%d)",
            requested,
            cap,
            soft,
        )
    return cap


def fitting_cap(requested: int, fd_limit: int) -> int:
    """At most `requested`, leaving RESERVED_FDS (a quarter of a small limit) for the
    worker's own files: origin connections, the disk tier, Redis, logs, the listeners."""
    if fd_limit == resource.RLIM_INFINITY:
        return requested
    reserve = min(RESERVED_FDS, fd_limit // 4)
    return max(1, min(requested, fd_limit - reserve))


ENGINES = {"granian": run_granian, "uvicorn": run_uvicorn}
