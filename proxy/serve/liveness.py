"""Whether a process is alive: the workers of this instance find each other's sockets in
a folder (proxy/cluster/listener.py, proxy/purge/siblings.py) and pass over those of
workers that are gone."""

from __future__ import annotations

import os


def alive(pid: int) -> bool:
    """True unless no process has `pid` (another user's counts as alive: its socket
    refuses us, if it is not ours)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
