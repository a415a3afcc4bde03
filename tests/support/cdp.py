"""Headless Chromium driven over the DevTools protocol, on a pipe (no port, no library).

`--remote-debugging-pipe` makes Chromium read commands from fd 3 and write answers to
fd 4, each a JSON object ended by a NUL byte. `Browser` opens one page, and offers the
few commands the tests need: navigate, evaluate, wait for a condition, screenshot.
Every wait has a deadline, so a page that never gets there fails the test instead of
hanging it.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("EDGESHIELD_CHROMIUM", "/usr/bin/chromium")
FLAGS = (
    "--headless",
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-quic",
    "--disable-dev-shm-usage",  # containers' /dev/shm is often 64 MiB
    "--no-first-run",
    "--no-proxy-server",  # a proxy from the environment must not see this traffic
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--mute-audio",
    "--autoplay-policy=no-user-gesture-required",
)


class CdpError(RuntimeError):
    pass


def chromium_binary() -> str:
    found = shutil.which(CHROMIUM)
    if found is None:
        pytest.fail(
            f"headless Chromium is required for this test and {CHROMIUM} was not found: "
            "install the Debian package (apt-get install -y chromium), or point "
            "EDGESHIELD_CHROMIUM at a Chromium binary"
        )
    return found


class Browser:
    """One Chromium process with one page attached (``session``)."""

    def __init__(self, proc: subprocess.Popen[bytes], to_browser: int, from_browser: int):
        self.proc = proc
        self._out = to_browser
        self._in = from_browser
        self._buf = b""
        self._next_id = 0
        self.session = ""

    def send(self, method: str, timeout: float = 30.0, **params: Any) -> dict[str, Any]:
        """One command on the page's session (or the browser's, before ``open_page``);
        returns its result, raises CdpError on a protocol error or the deadline."""
        self._next_id += 1
        ident = self._next_id
        message: dict[str, Any] = {"id": ident, "method": method, "params": params}
        if self.session:
            message["sessionId"] = self.session
        os.write(self._out, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            for reply in self._messages(deadline, method):
                if reply.get("id") == ident:
                    if "error" in reply:
                        raise CdpError(f"{method}: {reply['error']}")
                    result: dict[str, Any] = reply.get("result", {})
                    return result

    def _messages(self, deadline: float, waiting_for: str) -> Iterator[dict[str, Any]]:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CdpError(f"no answer to {waiting_for} in time")
            ready, _, _ = select.select([self._in], [], [], left)
            if ready:
                chunk = os.read(self._in, 1 << 20)
                if not chunk:
                    raise CdpError(f"chromium closed the pipe (exit {self.proc.poll()})")
                self._buf += chunk
        *whole, self._buf = self._buf.split(b"\0")
        for raw in whole:
            yield json.loads(raw)

    def open_page(self, width: int, height: int) -> None:
        target = self.send("Target.createTarget", url="about:blank")
        attached = self.send("Target.attachToTarget", targetId=target["targetId"], flatten=True)
        self.session = attached["sessionId"]
        self.send("Page.enable")
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=height,
                  deviceScaleFactor=1, mobile=False)  # fmt: skip

    def navigate(self, url: str) -> None:
        answer = self.send("Page.navigate", url=url)
        if answer.get("errorText"):
            raise CdpError(f"navigating to {url}: {answer['errorText']}")

    def evaluate(self, expression: str) -> Any:
        answer = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in answer:
            raise CdpError(f"{expression}: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    def wait_for(self, expression: str, timeout: float, what: str) -> Any:
        """Evaluate ``expression`` until it is truthy; its value, or CdpError naming
        ``what`` and the last value after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.2)
        raise CdpError(f"{what}: still {value!r} after {timeout:.0f} s")

    def screenshot(self, clip: dict[str, float] | None = None) -> bytes:
        params: dict[str, Any] = {"format": "png"}
        if clip is not None:
            params["clip"] = {**clip, "scale": 1}
        return base64.b64decode(self.send("Page.captureScreenshot", **params)["data"])


@contextlib.contextmanager
def chromium(profile: Path, *extra: str) -> Iterator[Browser]:
    """A headless Chromium with a fresh profile, stopped (and reaped) on exit."""
    cmd_read, cmd_write = os.pipe()  # we write commands, Chromium reads them on fd 3
    out_read, out_write = os.pipe()  # Chromium writes answers on fd 4, we read them
    # Out of the way of 3 and 4, so the child's dup2 cannot overwrite one with the other.
    high = [os.dup2(fd, 100 + i, inheritable=True) for i, fd in enumerate((cmd_read, out_write))]
    os.close(cmd_read)
    os.close(out_write)

    def wire() -> None:
        os.dup2(high[0], 3)
        os.dup2(high[1], 4)

    cmd = [
        chromium_binary(),
        *FLAGS,
        f"--user-data-dir={profile}",
        "--remote-debugging-pipe",
        *extra,
        "about:blank",
    ]
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        pass_fds=(3, 4),
        preexec_fn=wire,  # the test process runs no other threads while it forks
    )
    for fd in high:
        os.close(fd)
    try:
        yield Browser(proc, cmd_write, out_read)
    finally:
        proc.kill()
        proc.wait(timeout=30)
        os.close(cmd_write)
        os.close(out_read)
