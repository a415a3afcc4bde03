"""Process logging: one format everywhere, in the parent and in worker processes."""

from __future__ import annotations

import logging

# The server engine's lines about things edgeshield logs itself, once and in its own words (and
# without the query string, which may carry a token):
SAID_BY_EDGESHIELD = frozenset(
    {
        # An origin body broke off after the head went out: the response is left
        # incomplete on purpose (proxy/pipeline.py logs it).
        "ASGI callable returned without completing response.",
        # A refused WebSocket upgrade, with its query (proxy/upgrade.py records it; the
        # handshake library's "connection rejected (501 ...)" is the one log line).
        '%s - "WebSocket %s" %d',
        "connection rejected (%d %s)",
        # CONNECT (and other Upgrade requests) answered as plain HTTP.
        "Unsupported upgrade request.",
    }
)


# granian logs one line per send to a client that has gone (a stopped download of a large
# object: hundreds of lines); the access log records the request once, as a 499.
SAID_BY_EDGESHIELD_PREFIXES = ("ASGI transport error",)


class _SaidByEdgeshield(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg in SAID_BY_EDGESHIELD:
            return False
        return not str(record.msg).startswith(SAID_BY_EDGESHIELD_PREFIXES)


def configure_logging(level: str = "info") -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True
    )
    # Per-request INFO lines from the HTTP client would double the access log.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    logging.getLogger("pyvips").setLevel(logging.WARNING)  # libvips chatter at INFO
    # Logger filters survive uvicorn's own logging set-up (dictConfig keeps them).
    for name in ("uvicorn.error", "_granian.asgi.io"):
        server_log = logging.getLogger(name)
        if not any(isinstance(f, _SaidByEdgeshield) for f in server_log.filters):
            server_log.addFilter(_SaidByEdgeshield())
