"""Telling the app that a granian worker is stopping.

granian's worker serves until every connection has closed and only then runs the ASGI
lifespan shutdown; a response that never ends (a client that stopped reading, an origin
that stalled) holds it until the parent kills the worker, and that request would never
be logged. uvicorn instead cancels what outlives its grace period, then runs the
lifespan shutdown. To drain the same way on both, the worker's SIGTERM/SIGINT handler
(set by granian on the event loop) is chained: granian's shutdown starts as before, and
the app starts its own drain (proxy/serve/app.py EdgeShield.begin_drain).

granian has no hook for this, so `granian._signals.set_loop_signals`, which the worker
calls after loading the app, is wrapped; tests/integration/test_access_log_fields.py
checks the behaviour on each release of granian the project installs.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any


def on_worker_stop(callback: Callable[[], None]) -> None:
    """Call `callback` on the event loop when this granian worker is told to stop."""
    import granian._signals as granian_signals

    original = granian_signals.set_loop_signals

    def set_loop_signals(loop: Any) -> Any:
        event = original(loop)

        def handler(signum: int, frame: object) -> None:
            event.set()  # what granian's own handler does
            callback()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, handler, sig, None)
        return event

    granian_signals.set_loop_signals = set_loop_signals
