"""The certificate granian serves, and reloading it without dropping connections.

granian's workers read the certificate and key from files when they start, and on
SIGHUP the parent starts new workers beside the old ones, then stops the old ones
gracefully (each finishes the requests it has in flight). So a reload is: put the new
pair where the workers read it, then SIGHUP. A worker that cannot load its certificate
would fail again and again until granian gives up and exits, so workers never read the
configured files: they read a checked copy in a private folder (`CertStage`), replaced
only by a pair that passed config/tls.py's checks. A bad or half-written replacement is
logged and the current certificate stays. An encrypted key is staged decrypted (in that
folder, mode 0600, removed at exit): granian 2.8 passes the password to a PKCS#8
decoder that refuses the encrypted keys OpenSSL and `cryptography` write (its worker
panics), so it never sees one.

On start-up a thread in the parent checks the two files every `watch_interval` seconds
and sends SIGHUP when they changed and the new pair is good (certbot, a Kubernetes secret
mount). uvicorn reads the files once, at start.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import signal
import tempfile
import threading
from pathlib import Path
from typing import Any

from config.tls import TlsSettings, checked_pair, plain_key

log = logging.getLogger("edgeshield.tls")

Signature = tuple[tuple[int, int, int], ...]


class CertStage:
    """Private copies of the configured certificate and key: the files workers load."""

    def __init__(self, tls: TlsSettings) -> None:
        self.tls = tls
        self.folder = Path(tempfile.mkdtemp(prefix="edgeshield-tls-"))  # mode 0700
        self.cert = self.folder / "cert.pem"
        self.key = self.folder / "key.pem"
        self.seen = _signature(tls)
        atexit.register(self.close)

    def refresh(self) -> bool:
        """Copy the configured pair if it is good; otherwise log why and keep the last."""
        self.seen = _signature(self.tls)
        pair, problems = checked_pair(self.tls)
        if pair is None:
            reasons = "; ".join(f"server.tls.{field}: {reason}" for field, reason in problems)
            log.error("keeping the current TLS certificate: %s", reasons)
            return False
        # The very bytes checked are written: a file swapped meanwhile never reaches a worker.
        password = self.tls.key_password
        _write(self.key, plain_key(pair[1], password.get_secret_value()) if password else pair[1])
        _write(self.cert, pair[0])
        return True

    def changed(self) -> bool:
        return _signature(self.tls) != self.seen

    def attach(self, server: Any) -> None:
        """Refresh on granian's reload (SIGHUP), and watch the files once it serves."""
        server.on_reload(self.refresh)
        if self.tls.watch_interval > 0:
            server.on_startup(self._start_watching)

    def _start_watching(self) -> None:
        threading.Thread(target=self._watch, name="edgeshield-tls-watch", daemon=True).start()

    def _watch(self) -> None:
        stop = threading.Event()  # never set: the thread ends with the process
        while not stop.wait(self.tls.watch_interval):
            if self.changed() and self.refresh():
                log.info("TLS certificate files changed: reloading the workers")
                os.kill(os.getpid(), signal.SIGHUP)

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def stage_certificates(tls: TlsSettings | None) -> CertStage | None:
    """The staged pair for granian, or None on plain HTTP. The files were checked by
    `serve` already (config/tls.py tls_errors)."""
    if tls is None:
        return None
    stage = CertStage(tls)
    if not stage.refresh():
        stage.close()
        raise RuntimeError("the TLS certificate cannot be served (see the log line above)")
    return stage


def _signature(tls: TlsSettings) -> Signature:
    """What changes when either file is rewritten or replaced (a symlink swap too)."""
    out = []
    for path in (tls.cert, tls.key):
        try:
            st = os.stat(path)
        except OSError:
            out.append((0, 0, 0))
            continue
        out.append((st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(out)


def _write(path: Path, data: bytes) -> None:
    """Atomically, readable by this user only (the key is a secret)."""
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(data)
    os.replace(tmp, path)
