"""The container image's install step, without a Docker engine: the Dockerfile's builder
stage runs .ci/container-install.sh on the files it copies; here the same script runs on
the same files into a fresh venv, and `edgeshield serve` from that venv must answer.

What this cannot cover is the base image itself (python:3.11-slim-bookworm); the script
ends with a real WebP/AVIF encode so the image build fails on a base that cannot run
the bundled libvips."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.dockerfile import INSTALL_SCRIPT, copy_build_context, load
from tests.support.ports import free_port, wait_for_port

pytestmark = pytest.mark.slow


def test_install_script_builds_a_venv_that_serves_images(tmp_path: Path) -> None:
    src, venv, workdir = tmp_path / "src", tmp_path / "venv", tmp_path / "run"
    workdir.mkdir()
    builder = load()[0]
    copy_build_context(builder, src)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EDGESHIELD_", "PYTHON"))}
    env.pop("VIRTUAL_ENV", None)

    started = time.monotonic()
    install = subprocess.run(
        ["sh", str(INSTALL_SCRIPT), str(src), str(venv)],
        env={**env, "PYTHON": sys.executable, "PIP_NO_INPUT": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    elapsed = time.monotonic() - started
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    assert "libvips" in install.stdout and ": ok" in install.stdout
    print(f"container-install.sh: {elapsed:.1f} s")  # shown with pytest -s

    # The installed copy runs, not the checkout: nothing here is on the path but the venv.
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import proxy; print(proxy.__file__)"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(where.stdout.strip()).is_relative_to(venv)

    # The embedded demo config (as `make run`), generated into the working directory.
    port = free_port()
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [str(venv / "bin" / "edgeshield"), "serve", "--port", str(port)],
        cwd=workdir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for_port(port, 60)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            health = client.get("/healthz")
            assert (health.status_code, health.text) == (200, "ok\n")
            webp = client.get("/images/landscape-640.jpg", params={"w": 160, "fm": "webp"})
            assert webp.status_code == 200, webp.text
            assert webp.headers["content-type"] == "image/webp"
            assert webp.content[:4] == b"RIFF" and webp.content[8:12] == b"WEBP"
            avif = client.get(
                "/cdn-cgi/image/width=120,format=auto/images/portrait-1080.jpg",
                headers={"accept": "image/avif,image/webp,*/*"},
            )
            assert avif.status_code == 200, avif.text
            assert avif.headers["content-type"] == "image/avif"
            assert avif.content[4:8] == b"ftyp"
    finally:
        # The image's STOPSIGNAL: the server drains and exits by itself.
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            code = proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
            raise
        finally:
            log.close()
    # uvicorn re-raises the signal once it has shut down cleanly (as PID 1 in a container,
    # where a default-action SIGTERM is ignored, that is a plain exit 0); granian exits 0.
    text = (tmp_path / "serve.log").read_text(errors="replace")
    assert code in (0, -signal.SIGTERM), text[-3000:]
    assert "shut down: requests drained, state closed" in text, text[-3000:]
