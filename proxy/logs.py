"""Process logging: one format everywhere, in the parent and in worker processes."""

from __future__ import annotations

import logging


def configure_logging(level: str = "info") -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True
    )
    # Per-request INFO lines from the HTTP client would double the access log.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    logging.getLogger("pyvips").setLevel(logging.WARNING)  # libvips chatter at INFO
