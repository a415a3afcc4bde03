"""Reloads granian's workers when one is stuck out of file descriptors.

granian's TLS listener accepts connections and runs their handshakes before they count
against max_connections, with no bound on how many (docs/deployment.md, "Connections in
the TLS handshake"). Connections that never send a ClientHello can fill a worker's
open-file limit in seconds. Then every accept fails, and while it fails the listener no
longer times out the handshakes it holds: the worker never recovers by itself, even once
the client has left. A reload does: new workers start beside the stuck one, which is
killed after the drain. A worker that is merely full frees its stalled handshakes within
their 10 s, so only one full for longer than that is taken for stuck.

Runs in granian's parent process, as a thread, for TLS listeners only: a plain listener
never holds more than max_connections, which leaves room under the limit (engines.py).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Iterable

import psutil

log = logging.getLogger("edgeshield")

# Longer than the TLS handshake timeout (10 s), after which a worker that is not stuck
# has freed its stalled handshakes.
STUCK_SECONDS = 15.0
CHECK_SECONDS = 1.0
# Descriptors short of the limit that still count as full: the worker's own files come
# and go while accepts fail.
MARGIN = 16


class StuckWorkers:
    """Which workers have been at the open-file limit for STUCK_SECONDS without a break.
    Pure: fed with samples, it decides; the thread below samples and acts."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.full_since: dict[int, float] = {}
        self.reloaded: set[int] = set()  # stuck workers a reload is already replacing

    def update(self, open_fds: dict[int, int], now: float) -> list[int]:
        """The workers newly found stuck, given each live worker's open descriptors."""
        full = {pid for pid, count in open_fds.items() if count >= self.limit - MARGIN}
        self.full_since = {pid: self.full_since.get(pid, now) for pid in full}
        self.reloaded &= set(open_fds)
        stuck = [
            pid
            for pid, since in self.full_since.items()
            if now - since >= STUCK_SECONDS and pid not in self.reloaded
        ]
        self.reloaded.update(stuck)
        return stuck


def sample(workers: Iterable[psutil.Process]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for worker in workers:
        with contextlib.suppress(psutil.Error):  # exited between the listing and the count
            counts[worker.pid] = worker.num_fds()
    return counts


def watch(limit: int) -> None:
    """Forever: sample this process's workers, and SIGHUP it (granian reloads its
    workers) when one is stuck."""
    state = StuckWorkers(limit)
    parent = psutil.Process()
    while True:
        time.sleep(CHECK_SECONDS)
        try:
            workers = parent.children()
        except psutil.Error:
            continue
        stuck = state.update(sample(workers), time.monotonic())
        if stuck:
            log.error(
                "worker %s out of file descriptors for %.0f s (a flood of connections"
                " that never finish their TLS handshake?): reloading the workers",
                ", ".join(map(str, stuck)),
                STUCK_SECONDS,
            )
            os.kill(os.getpid(), signal.SIGHUP)


def start(limit: int) -> None:
    threading.Thread(target=watch, args=(limit,), name="edgeshield-fd-watch", daemon=True).start()
