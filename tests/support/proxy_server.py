"""A real `edgeshield serve` process on loopback, for integration tests."""

from __future__ import annotations

import functools
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.support.ports import free_port, wait_for_port

REPO_ROOT = Path(__file__).resolve().parents[2]
# The server engines `edgeshield serve --server` offers; the default is the first. Tests of
# what an engine does at the connection level run on both.
ENGINES = ("granian", "uvicorn")
# A line each engine logs once it serves, after the app's startup.
SERVING_LINE = {"granian": "Started worker-1", "uvicorn": "Uvicorn running on"}


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    return json.dumps(str(value))


def proxy_config(
    origin_url: str,
    *,
    cache: Mapping[str, Any] | None = None,
    route: Mapping[str, Any] | None = None,
    server: Mapping[str, Any] | None = None,
    cache_settings: Mapping[str, Any] | None = None,
    origin: Mapping[str, Any] | None = None,
) -> str:
    """TOML for one http origin behind one catch-all route."""
    lines = ["[server]", 'access_log = "off"']
    lines += [f"{k} = {toml_value(v)}" for k, v in (server or {}).items()]
    lines += ["[cache]"] + [f"{k} = {toml_value(v)}" for k, v in (cache_settings or {}).items()]
    lines += ["[origins.main]", 'kind = "http"', f"url = {toml_value(origin_url)}"]
    lines += [f"{k} = {toml_value(v)}" for k, v in (origin or {}).items()]
    lines += ["[[routes]]", 'origin = "main"'] + [
        f"{k} = {toml_value(v)}" for k, v in (route or {}).items()
    ]
    lines += ["[routes.cache]"] + [f"{k} = {toml_value(v)}" for k, v in (cache or {}).items()]
    return "\n".join(lines) + "\n"


def native_token_config(
    origin: Mapping[str, Any], secret: str, playlists: Mapping[str, Any] | None = None
) -> str:
    """One origin (its `[origins.main]` fields) behind one route whose requests need a
    native signed-URL token (key `k1` of `secret`); `playlists`: the route's
    `[routes.auth.playlists]` fields (child tokens in playlists), None for none."""
    lines = ["[server]", 'access_log = "off"', "[auth]", 'signing_kid = "k1"']
    lines += ["[auth.keys.k1]", f"secret = {toml_value(secret)}", "[origins.main]"]
    lines += [f"{k} = {toml_value(v)}" for k, v in origin.items()]
    lines += ["[[routes]]", 'origin = "main"', "[routes.auth]", 'schemes = ["native"]']
    if playlists is not None:
        lines += ["[routes.auth.playlists]"]
        lines += [f"{k} = {toml_value(v)}" for k, v in playlists.items()]
    return "\n".join(lines) + "\n"


def disk_tier_config(origin_url: str, disk: object) -> str:
    """One http origin behind one route, objects over 4 KiB kept on the disk tier at
    `disk` (memory takes only smaller ones)."""
    return f"""
[server]
access_log = "off"
[cache]
memory_max_object_bytes = 4096
[cache.disk]
path = "{disk}"
min_object_bytes = 4096
[origins.main]
kind = "http"
url = "{origin_url}"
[[routes]]
origin = "main"
"""


class ProxyServer:
    def __init__(
        self,
        config_text: str | None,
        *,
        workers: int = 1,
        env: Mapping[str, str] | None = None,
        args: list[str] | None = None,
        cwd: Path | None = None,
        engine: str | None = None,
        scheme: str = "http",
        nofile: int | None = None,
    ) -> None:
        """`config_text` is written to a file for --config; None runs without one
        (`args` then carries e.g. --origin). `cwd` matters for the embedded default.
        `engine` ("granian", "uvicorn") is passed as --server; None: the default.
        `scheme` "https": the main listener serves TLS (its certificate is not checked
        while waiting for readiness). `nofile`: the open-file limit, soft and hard, the
        server starts with (None: this process's)."""
        self.config_text = config_text
        self.args = list(args or [])
        self.cwd = cwd
        self.workers = workers
        self.engine = engine
        self.scheme = scheme
        self.nofile = nofile
        self.env = dict(env or {})
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._dir = Path(tempfile.mkdtemp(prefix="edgeshield-test-"))
        self.log_path = self._dir / "server.log"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> ProxyServer:
        self.port = free_port()
        env = {**os.environ, **self.env}
        env.pop("EDGESHIELD_CONFIG", None)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        cmd = [
            sys.executable,
            "-m",
            "proxy.serve.cli",
            "serve",
            "--port",
            str(self.port),
            *self.args,
        ]
        if self.config_text is not None:
            config = self._dir / "edgeshield.toml"
            config.write_text(self.config_text)
            cmd += ["--config", str(config)]
        if self.workers != 1:
            cmd += ["--workers", str(self.workers)]
        if self.engine is not None:
            cmd += ["--server", self.engine]
        log = self.log_path.open("ab")
        limit = None if self.nofile is None else functools.partial(_limit_files, self.nofile)
        self.proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=self.cwd,
            start_new_session=True,
            preexec_fn=limit,
        )
        try:
            wait_for_port(self.port, timeout)
            with httpx.Client(verify=False) as client:
                for _ in range(200):
                    if client.get(f"{self.url}/readyz").status_code == 200:
                        break
        except Exception:
            self.stop()
            raise RuntimeError(f"edgeshield did not start:\n{self.log()}") from None
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.proc = None


def serve_until_exit(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`edgeshield serve --config config *args` run to its end, for a start that must be
    refused (a hang guard of a minute)."""
    return subprocess.run(
        [sys.executable, "-m", "proxy.serve.cli", "serve", "--config", str(config), *args],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=60,
    )


def _limit_files(count: int) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (count, count))


@contextmanager
def running_proxy(config_text: str | None, **kw: Any) -> Iterator[ProxyServer]:
    server = ProxyServer(config_text, **kw).start()
    try:
        yield server
    finally:
        server.stop()
